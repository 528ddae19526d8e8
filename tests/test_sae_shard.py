"""``afscope sae train`` over many processes: the token collection split into blocks by Slurm
array tasks or torchrun ranks, then trained by one process, gives the tokens and the SAE of a
single process, byte for byte (:mod:`afscope.sae.run`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_distributed import slurm, torchrun, write_data

from afscope.cli import main
from afscope.data.load import load_dataset
from afscope.extract.runner import collect_tokens
from afscope.models import load_model
from afscope.sae import WEIGHTS_FILE, SAETrainConfig
from afscope.sae.run import (
    SAE_SUBDIR,
    TOKEN_DIR,
    TokenBlocks,
    collect_part,
    run_sae_train,
    split_records,
    token_fields,
    token_parts,
)

# 40 records of ~50 tokens, 4 a block: 36 train records in 9 blocks, of which the cap of 1000
# tokens needs 5; the 4 held-out records (cap 100) are one block. So 6 jobs: shard 0 of 2 makes
# train 0, 2, 4; shard 1 makes train 1, 3 and held-out 0.
YAML = ("layer: 1\nd_sae: 16\nk: 4\nepochs: 2\nbatch_size: 64\nmax_tokens: 1000\n"
        "max_length: 64\nbatch_tokens: 64\nblock_records: 4\nkeep_tokens: true\n")
NEEDED = {f"train-0000{k}.safetensors" for k in range(5)} | {"heldout-00000.safetensors"}


@pytest.fixture
def sae_args(tiny_model_dir, tmp_path) -> list[str]:
    (tmp_path / "sae.yaml").write_text(YAML)
    return ["sae", "train", "--config", str(tmp_path / "sae.yaml"), "--model",
            str(tiny_model_dir), "--data", str(write_data(tmp_path / "d.jsonl", 40))]


def run_cli(args: list[str], out: Path, env: dict[str, str] | None = None) -> str:
    r = CliRunner().invoke(main, ["-q", *args, "--out", str(out)], env=env)
    assert r.exit_code == 0, r.output
    return r.output


def token_files(out: Path) -> dict[str, bytes]:
    """The collected token blocks and the SAE weights, by relative path."""
    files = {f"{TOKEN_DIR}/{f.name}": f.read_bytes()
             for f in sorted((out / TOKEN_DIR).glob("*.safetensors"))}
    weights = out / SAE_SUBDIR / WEIGHTS_FILE
    if weights.exists():
        files[f"{SAE_SUBDIR}/{WEIGHTS_FILE}"] = weights.read_bytes()
    return files


def outputs(out: Path, name: str = "manifest.json") -> dict:
    return json.loads((out / name).read_text())["outputs"]


def test_slurm_array_then_one_process_gives_the_single_process_sae(sae_args, tmp_path):
    single = tmp_path / "single"
    run_cli(sae_args, single)
    expected = token_files(single)
    assert set(expected) == {f"{TOKEN_DIR}/{n}" for n in NEEDED} | {"sae/sae_weights.safetensors"}
    assert outputs(single)["token_blocks"] == {"made": 6, "read": 0, "prefetched": 0}

    out = tmp_path / "array"  # --array=1-2, both tasks writing into one --out
    said = run_cli(sae_args, out, env=slurm(1, 2, low=1))
    assert "shard 0/2 done" in said
    assert sorted(f.name for f in (out / TOKEN_DIR).iterdir()) == [
        "train-00000.safetensors", "train-00002.safetensors", "train-00004.safetensors"]
    assert outputs(out, "manifest.shard-0-of-2.json")["token_blocks"] == {
        "blocks": 6, "shard_blocks": 3, "made": 3, "present": 0}
    run_cli(sae_args, out, env=slurm(2, 2, low=1))
    assert {f.name for f in (out / TOKEN_DIR).iterdir()} == NEEDED  # nothing past the caps
    assert not (out / SAE_SUBDIR).exists() and not (out / "manifest.json").exists()
    run_cli(sae_args, out)  # the step after the array: one process reads the blocks and trains
    assert token_files(out) == expected
    assert outputs(out)["token_blocks"] == {"made": 0, "read": 6, "prefetched": 0}
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (single, out))
    assert a["n_train_tokens"] == b["n_train_tokens"] == 1000
    assert a["n_heldout_tokens"] == b["n_heldout_tokens"] == 100

    # a task that died: only task 0 ran; one process makes the rest and trains the same SAE
    part = tmp_path / "part"
    run_cli(sae_args, part, env=slurm(0, 2))
    run_cli(sae_args, part)
    assert token_files(part) == expected
    assert outputs(part)["token_blocks"] == {"made": 3, "read": 3, "prefetched": 0}


def test_torchrun_gives_the_single_process_sae(sae_args, tmp_path):
    run_cli(sae_args, tmp_path / "single")
    torchrun(*sae_args, "--out", tmp_path / "multi")
    assert token_files(tmp_path / "multi") == token_files(tmp_path / "single")
    multi = tmp_path / "multi"
    assert outputs(multi)["token_blocks"] == {"made": 0, "read": 6, "prefetched": 0}  # rank 0 made none alone
    assert outputs(multi, "manifest.shard-1-of-2.json")["token_blocks"]["made"] == 3
    assert json.loads((multi / "manifest.json").read_text())["config"]["shard"] is None


def test_tokens_are_deleted_after_training_unless_kept(sae_args, tmp_path):
    run_cli([*sae_args, "--no-keep-tokens"], tmp_path / "run")
    assert (tmp_path / "run" / SAE_SUBDIR / WEIGHTS_FILE).exists()
    assert not (tmp_path / "run" / TOKEN_DIR).exists()


def test_blocks_of_other_settings_are_refused(sae_args, tmp_path):
    out = tmp_path / "run"
    run_cli(sae_args, out, env=slurm(0, 2))
    r = CliRunner().invoke(main, ["-q", *sae_args, "--seed", "1", "--out", str(out)])
    assert r.exit_code == 2 and "a token block made with other settings" in r.output
    assert "differs in: seed" in r.output
    assert len(list((out / TOKEN_DIR).iterdir())) == 3  # task 0's blocks are kept


def test_blocks_hold_the_tokens_of_collect_tokens(tiny_model_dir, tmp_path):
    """With the default 256 records a block, the blocks cut at the cap are exactly the tokens
    :func:`collect_tokens` collects (what ``sae train`` trained on before blocks)."""
    data = write_data(tmp_path / "d.jsonl", 40)
    lm, ds = load_model(str(tiny_model_dir)), load_dataset(data)
    cfg = SAETrainConfig(model=str(tiny_model_dir), data=data, layer=1, d_sae=16, k=4,
                         max_tokens=300, max_length=64, batch_tokens=64)
    train = token_parts(ds, cfg)[0]
    x = collect_part(TokenBlocks(lm, 1, cfg, None, token_fields(cfg, lm, ds, 1)), train, ds.name)
    train_ds, _ = split_records(ds, cfg.heldout_fraction, cfg.seed)
    y = collect_tokens(lm, train_ds, 1, max_tokens=300, max_length=64, batch_tokens=64, seed=0)
    assert x.shape == (300, 32)
    np.testing.assert_array_equal(x, y)


def test_prefetched_layers_train_the_sae_they_would_have_trained_alone(tiny_model_dir, tmp_path):
    """A study's SAE runs share their forward passes: the first run writes the later layers'
    blocks, and their runs read them and train byte for byte the SAE they train alone."""
    data = write_data(tmp_path / "d.jsonl", 40)
    lm, ds = load_model(str(tiny_model_dir)), load_dataset(data)

    def cfg(layer: int, out: Path) -> SAETrainConfig:
        return SAETrainConfig(model=str(tiny_model_dir), data=data, layer=layer, d_sae=16, k=4,
                              epochs=2, max_tokens=1000, max_length=64, batch_tokens=64,
                              block_records=4, out=out)

    run_sae_train(cfg(2, tmp_path / "alone"), lm=lm, dataset=ds)
    run_sae_train(cfg(1, tmp_path / "L1"), lm=lm, dataset=ds,
                  prefetch=[(2, tmp_path / "L2"), (1, tmp_path / "x")])
    assert outputs(tmp_path / "L1")["token_blocks"] == {"made": 6, "read": 0, "prefetched": 6}
    assert len(list((tmp_path / "L2" / TOKEN_DIR).glob("*.safetensors"))) == 6
    assert not (tmp_path / "x").exists()  # the run's own layer is not prefetched
    run_sae_train(cfg(2, tmp_path / "L2"), lm=lm, dataset=ds)
    assert outputs(tmp_path / "L2")["token_blocks"] == {"made": 0, "read": 6, "prefetched": 0}
    assert ((tmp_path / "L2" / SAE_SUBDIR / WEIGHTS_FILE).read_bytes()
            == (tmp_path / "alone" / SAE_SUBDIR / WEIGHTS_FILE).read_bytes())
    assert not (tmp_path / "L2" / TOKEN_DIR).exists()  # read, trained on, deleted


@pytest.mark.parametrize("bad", ["2/2", "x", "-1/2"])
def test_config_refuses_a_bad_shard(bad):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="0 <= i < n"):
        SAETrainConfig(d_sae=8, k=2, shard=bad)
    assert SAETrainConfig(d_sae=8, k=2, shard="1/2").shard == "1/2"
