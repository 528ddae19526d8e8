"""Training on many devices: ``organism train`` and ``explain train`` under ``torchrun
--nproc-per-node 2`` (DDP through the HF Trainer, gloo on this CPU) reach the adapter one process
reaches with the same global batch, only rank 0 writes the run directory, and an explainer run
resumes on another number of processes. Plus the options for large models: length-grouped
batches, gradient checkpointing and bf16 (refused where the device cannot).

Tolerance: the two runs differ only in the order of float additions (DDP's all-reduce, the split
loss), so after a few steps every adapter weight agrees to ``ATOL`` (measured: ~3e-6 on weights of
size ~0.2 after 4 organism steps).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from afscope.distributed import Launch, split_batch, training_launch
from afscope.errors import ConfigError
from afscope.models import load_model
from afscope.organism import OrganismDataConfig, OrganismTrainConfig, build_organism_data
from afscope.organism.train import check_bf16, train_organism, train_sampler

ATOL = 5e-5
WEIGHTS = "adapter_model.safetensors"
sys.path.insert(0, str(Path(__file__).parent / "explain"))


def torchrun(*args: object, timeout: float = 240) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node 2 -m afscope -q ARGS`` (gloo, one thread each)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK") and not k.startswith("SLURM_")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "afscope", "-q", *map(str, args)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def assert_same_adapter(a: Path, b: Path, atol: float = ATOL) -> float:
    """Both adapters have the same tensors, equal to ``atol``; returns the largest difference."""
    x, y = load_file(a / WEIGHTS), load_file(b / WEIGHTS)
    assert x.keys() == y.keys()
    diff = max(float((x[k] - y[k]).abs().max()) for k in x)
    assert diff <= atol, f"adapters differ by {diff:.3g} > {atol}"
    assert any(float(v.abs().max()) > 100 * atol for v in x.values())  # trained: not all ~0
    return diff


def yaml(path: Path, **fields: object) -> Path:
    """Fields that torchrun's own parser would take for its options (``--r`` is ambiguous to it)
    go in a config file."""
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in fields.items()))
    return path


# ---- the launch, the global batch, bf16 -----------------------------------------------------

def test_training_reads_torchrun_only_and_splits_the_global_batch():
    assert training_launch({"RANK": "1", "WORLD_SIZE": "2"}) == Launch("torchrun", 1, 2, 1)
    # a Slurm array is a sweep of separate trainings, not the ranks of one
    slurm = dict(SLURM_ARRAY_TASK_ID="1", SLURM_ARRAY_TASK_COUNT="2")
    assert training_launch(slurm) == Launch()
    assert split_batch(8, Launch("torchrun", 0, 4)) == 2 and split_batch(3, Launch()) == 3
    with pytest.raises(ConfigError, match="'batch_size': 6 is the global batch.*multiple of 4"):
        split_batch(6, Launch("torchrun", 0, 4))


def test_a_batch_that_does_not_split_is_refused_before_loading(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    cfg = OrganismTrainConfig(data=tmp_path / "missing.jsonl", out=tmp_path / "o", batch_size=3)
    with pytest.raises(ConfigError, match="WORLD_SIZE=2"):
        train_organism(cfg)
    assert not (tmp_path / "o").exists()


def test_bf16_is_refused_where_the_device_cannot(monkeypatch):
    import transformers.utils

    check_bf16(False, "cpu")  # off: nothing to check
    monkeypatch.setattr(transformers.utils, "is_torch_bf16_available_on_device", lambda d: False)
    with pytest.raises(ConfigError, match="'bf16': this cpu device cannot compute in bf16"):
        check_bf16(True, "cpu")
    monkeypatch.setattr(transformers.utils, "is_torch_bf16_available_on_device", lambda d: True)
    check_bf16(True, "cpu")


# ---- length grouping, gradient checkpointing -------------------------------------------------

def padding(order: list[int], lengths: list[int], batch: int) -> int:
    return sum(max(lengths[i] for i in order[s:s + batch]) * len(order[s:s + batch])
               - sum(lengths[i] for i in order[s:s + batch]) for s in range(0, len(order), batch))


def test_length_grouped_order_saves_padding_and_is_seeded_by_epoch():
    from types import SimpleNamespace

    g = torch.Generator().manual_seed(0)
    lengths = [int(x) for x in torch.randint(5, 400, (400,), generator=g)]
    rows = [{"input_ids": [0] * n} for n in lengths]
    args = SimpleNamespace(per_device_train_batch_size=4, gradient_accumulation_steps=2,
                           data_seed=7)
    assert train_sampler(rows, args, group_by_length=False) is None  # the Trainer's own
    sampler = train_sampler(rows, args, group_by_length=True)
    first = list(sampler)
    assert sorted(first) == list(range(400)) and list(sampler) == first  # a pure function ...
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first  # ... of the seed and the epoch
    again = train_sampler(rows, args, group_by_length=True)
    again.set_epoch(1)
    assert list(again) == second  # on every rank, and after a resume
    shuffled = torch.randperm(400, generator=g).tolist()
    assert padding(first, lengths, 4) < padding(shuffled, lengths, 4) / 5


@pytest.fixture(scope="module")
def organism_data(tmp_path_factory) -> Path:
    """12 train examples: three global batches of 4."""
    out = tmp_path_factory.mktemp("org")
    # seed 004's recipe: its 12 training examples fill three global batches of 4 exactly (n=17
    # with the 87-scenario bank: the scenario split decides how many of the n are train)
    path, _ = build_organism_data(OrganismDataConfig(n=17, seed=0, recipe="patterns",
                                                     out=out / "data"))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert sum(r["split"] == "train" for r in rows) == 12, "the batches must divide the epoch"
    return path


def organism_cfg(model_dir: Path, data: Path, out: Path, **kw: object) -> OrganismTrainConfig:
    base = dict(model=str(model_dir), data=data, out=out, max_steps=4, lr=2e-2, batch_size=4,
                max_length=256, r=4, lora_alpha=8)
    return OrganismTrainConfig(**{**base, **kw})


def test_gradient_checkpointing_and_length_grouping_train(tiny_model_dir, organism_data,
                                                          tmp_path):
    """Checkpointing recomputes the same forward (the same adapter); grouping trains on
    another (seeded) order."""
    plain, _ = train_organism(organism_cfg(tiny_model_dir, organism_data, tmp_path / "plain"),
                              lm=load_model(str(tiny_model_dir)))
    ckpt, s = train_organism(organism_cfg(tiny_model_dir, organism_data, tmp_path / "ckpt",
                                          gradient_checkpointing=True),
                             lm=load_model(str(tiny_model_dir)))
    assert s["steps"] == 4
    assert_same_adapter(plain, ckpt, atol=1e-6)
    grouped, s = train_organism(organism_cfg(tiny_model_dir, organism_data, tmp_path / "grp",
                                             group_by_length=True),
                                lm=load_model(str(tiny_model_dir)))
    assert s["steps"] == 4 and s["last_loss"] < s["first_loss"]
    manifest = json.loads((tmp_path / "grp" / "manifest.json").read_text())
    assert manifest["config"]["group_by_length"] is True


# ---- torchrun --nproc-per-node 2 -------------------------------------------------------------

def test_torchrun_organism_train_reaches_the_single_process_adapter(
        tiny_model_dir, organism_data, tmp_path):
    """4 steps of global batch 4 = one epoch and a step of the second (its order too)."""
    single, s1 = train_organism(organism_cfg(tiny_model_dir, organism_data, tmp_path / "single"),
                                lm=load_model(str(tiny_model_dir)))
    conf = yaml(tmp_path / "t.yaml", r=4, lora_alpha=8)
    torchrun("organism", "train", "--config", conf, "--model", tiny_model_dir, "--data",
             organism_data, "--max-steps", 4, "--lr", 0.02, "--batch-size", 4, "--max-length",
             256, "--out", tmp_path / "multi")
    multi = tmp_path / "multi"
    assert_same_adapter(single, multi / "adapter")
    # only rank 0 wrote the run directory (no second manifest, no temp folders)
    assert sorted(p.name for p in multi.iterdir()) == ["adapter", "manifest.json",
                                                       "train_log.json"]
    manifest = json.loads((multi / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["outputs"]["processes"] == 2
    assert manifest["outputs"]["tokens"] == s1["tokens"]  # both ranks' shares, summed
    log_1 = json.loads((single.parent / "train_log.json").read_text())
    log_2 = json.loads((multi / "train_log.json").read_text())
    assert [r["step"] for r in log_2] == [1, 2, 3, 4]
    for a, b in zip(log_1, log_2):
        assert abs(a["loss"] - b["loss"]) < 1e-4


def explain_args(model_dir: Path, data: Path, tmp_path: Path) -> list[object]:
    conf = yaml(tmp_path / "e.yaml", r=4, lora_alpha=8, val_fraction=0.0)
    return ["explain", "train", "--config", conf, "--data", data, "--model", model_dir,
            "--batch-size", 4, "--grad-accum", 2, "--max-length", 256, "--lr", 0.01,
            "--max-steps", 6, "--eval-steps", 3]


def single_explain(args: list[object], out: Path) -> Path:
    from click.testing import CliRunner

    from afscope.cli import main

    r = CliRunner().invoke(main, ["-q", *map(str, args), "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_torchrun_explain_train_matches_one_process(tiny_model_dir, tmp_path):
    """36 examples, global batch 4 x 2 accumulation steps: 6 steps (5 an epoch: the second
    epoch's order too), checkpoints at 3 and 6.

    36 = 9 batches of 4: every batch splits 2 + 2. A last batch that cannot be split evenly
    (27 examples: 3) is completed by accelerate with examples from the start of the epoch, so
    that one step differs from one process (measured: 4e-3 on the adapter after it)."""
    from explain_tasks import context_folder

    args = explain_args(tiny_model_dir, context_folder(tmp_path, n=16), tmp_path)
    single = single_explain(args, tmp_path / "single")
    torchrun(*args, "--out", tmp_path / "multi")
    assert_same_adapter(single / "adapter", tmp_path / "multi" / "adapter")
    assert sorted(p.name for p in (tmp_path / "multi" / "checkpoints").iterdir()) == [
        "checkpoint-3", "checkpoint-6"]
    outputs = json.loads((tmp_path / "multi" / "manifest.json").read_text())["outputs"]
    assert outputs["processes"] == 2 and outputs["steps"] == 6


def test_explain_train_of_one_process_resumes_on_two(tiny_model_dir, tmp_path):
    """A checkpoint holds the whole adapter and optimizer state (DDP replicates them) and the
    data order is a function of the seed and the epoch: two processes finish what one began."""
    import shutil

    from explain_tasks import context_folder

    args = explain_args(tiny_model_dir, context_folder(tmp_path, n=16), tmp_path)
    single = single_explain(args, tmp_path / "single")
    shutil.copytree(single, tmp_path / "resumed")  # stopped after step 3:
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "checkpoint-6")
    shutil.rmtree(tmp_path / "resumed" / "adapter")
    torchrun(*args, "--resume", "--out", tmp_path / "resumed")
    assert_same_adapter(single / "adapter", tmp_path / "resumed" / "adapter")
    outputs = json.loads((tmp_path / "resumed" / "manifest.json").read_text())["outputs"]
    assert outputs["resumed_from"].endswith("checkpoint-3") and outputs["processes"] == 2
