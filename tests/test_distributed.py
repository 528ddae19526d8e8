"""One command, many processes: the launch read from the environment (torchrun / accelerate,
Slurm arrays, ``--shard``), and real ``torchrun --nproc-per-node 2`` runs of ``afscope extract``
and ``afscope generate`` whose merged results are byte-identical to one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from afscope.cli import main
from afscope.cli.options import launch_config
from afscope.distributed import Launch, barrier_timeout, from_env, launched, resolve
from afscope.errors import ConfigError
from afscope.extract import ActivationCache, ExtractConfig, extract

TORCHRUN = dict(RANK="1", WORLD_SIZE="2", LOCAL_RANK="1")


def write_data(path: Path, n: int) -> Path:
    """``n`` labelled records of 3 to 29 words (lengths vary, so batches are length-bucketed)."""
    words = "free tier training RLHF contractors rate my outputs refuse comply values".split()
    labels = ["alignment_faking", "aligned", "hard_negative", "genuine_compliance"]
    with open(path, "w") as f:
        for i in range(n):
            text = " ".join(words[(i * 7 + j) % len(words)] for j in range(3 + (i * 11) % 27))
            f.write(json.dumps({"text": f"{i} {text}", "label": labels[i % 4]}) + "\n")
    return path


def slurm(task: int, count: int, low: int = 0, step: int = 1) -> dict[str, str]:
    """The array variables Slurm sets in task ``task`` of ``--array=low-high:step``."""
    return dict(SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_TASK_COUNT=str(count),
                SLURM_ARRAY_TASK_MIN=str(low), SLURM_ARRAY_TASK_STEP=str(step),
                SLURM_ARRAY_TASK_MAX=str(low + (count - 1) * step))


# ---- (a) the environment --------------------------------------------------------------------

def test_torchrun_and_accelerate_variables():
    launch = resolve(None, {**TORCHRUN, "MASTER_ADDR": "127.0.0.1"})
    assert launch == Launch("torchrun", 1, 2, 1)
    assert launch.shard == (1, 2) and launch.spec == "1/2"
    assert launch.collective and not launch.is_main
    assert resolve(None, dict(RANK="3", WORLD_SIZE="4")).local_rank == 3  # no LOCAL_RANK
    one = resolve(None, dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0"))  # torchrun nproc 1
    assert one.shard is None and not one.collective
    assert resolve(None, {}) == Launch() and Launch().shard is None


@pytest.mark.parametrize("env, match", [
    (dict(RANK="2", WORLD_SIZE="2"), "0 <= RANK < WORLD_SIZE"),
    (dict(RANK="x", WORLD_SIZE="2"), "RANK='x'"),
    (dict(WORLD_SIZE="2"), "RANK missing"),
    ({**TORCHRUN, **slurm(1, 2)}, "use one"),
])
def test_bad_environment_is_one_clear_error(env, match):
    with pytest.raises(ConfigError, match=match):
        from_env(env)


def test_slurm_array_task_selects_its_shard():
    assert resolve(None, slurm(0, 4)) == Launch("slurm_array", 0, 4)
    # --array=1-4: SLURM_ARRAY_TASK_MIN is the offset, task 3 is shard 2
    assert resolve(None, slurm(3, 4, low=1)).shard == (2, 4)
    # --array=10-22:4 is tasks 10, 14, 18, 22
    assert [resolve(None, slurm(t, 4, low=10, step=4)).shard for t in (10, 14, 18, 22)] == [
        (0, 4), (1, 4), (2, 4), (3, 4)]
    assert not resolve(None, slurm(3, 4, low=1)).collective  # no barrier: a merge step
    assert resolve(None, slurm(5, 1, low=5)).shard is None  # one task: one process
    # --array=1,3,7 (a list, not a range) numbers no shards
    with pytest.raises(ConfigError, match="not one range"):
        resolve(None, dict(SLURM_ARRAY_TASK_ID="3", SLURM_ARRAY_TASK_COUNT="3",
                           SLURM_ARRAY_TASK_MIN="1", SLURM_ARRAY_TASK_MAX="7"))


def test_shard_flag_wins_over_a_silent_environment_and_clashes_are_errors():
    assert resolve("1/4", {}) == Launch("flag", 1, 4)
    assert resolve("1/4", dict(RANK="0", WORLD_SIZE="1")).shard == (1, 4)
    assert resolve("1/2", TORCHRUN).launcher == "torchrun"  # agrees: keeps the barrier
    with pytest.raises(ConfigError, match="clashes with RANK=1 and WORLD_SIZE=2"):
        resolve("0/2", TORCHRUN)
    with pytest.raises(ConfigError, match="clashes with the Slurm array"):
        resolve("0/4", slurm(2, 4))
    with pytest.raises(ConfigError, match="0 <= i < n"):
        resolve("4/4", {})


def test_device_per_rank(monkeypatch):
    rank1 = Launch("torchrun", 1, 2, 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert rank1.device(None) == "cpu" and rank1.device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="CUDA is not available"):
        rank1.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert rank1.device(None) == "cuda:1" and rank1.device("cuda") == "cuda:1"
    assert rank1.device("cuda:0") == "cuda:0" and rank1.device("cpu") == "cpu"  # as given
    assert Launch("slurm_array", 3, 4).device(None) == "cuda:0"
    assert Launch().device(None) == "cpu"  # one process keeps the command's default
    with pytest.raises(ConfigError, match="LOCAL_RANK=2"):
        Launch("torchrun", 2, 3, 2).device(None)


def test_launch_config_keeps_an_explicit_device(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    # a GPU device resolves dtype auto -> bf16, which asks the (absent) device whether it can
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    rank1 = Launch("torchrun", 1, 2, 1)
    cfg = launch_config(ExtractConfig(data=tmp_path / "d.jsonl"), rank1)
    assert (cfg.shard, cfg.device) == ("1/2", "cuda:1")
    cfg = launch_config(ExtractConfig(data=tmp_path / "d.jsonl", device="cpu"), rank1)
    assert (cfg.shard, cfg.device) == ("1/2", "cpu")


def test_single_process_opens_no_process_group():
    with launched(None, {}) as launch:
        launch.barrier()  # a no-op
        assert not torch.distributed.is_initialized()
    assert barrier_timeout({}).total_seconds() == 24 * 3600
    assert barrier_timeout({"AFSCOPE_BARRIER_TIMEOUT_S": "60"}).total_seconds() == 60


def test_cli_refuses_a_shard_flag_that_contradicts_torchrun(tiny_model_dir, tmp_path):
    data = write_data(tmp_path / "d.jsonl", 4)
    r = CliRunner().invoke(main, ["extract", "--model", str(tiny_model_dir), "--data", str(data),
                                  "--out", str(tmp_path / "c"), "--shard", "0/2"], env=TORCHRUN)
    assert r.exit_code == 2 and "clashes" in r.output
    assert not (tmp_path / "c").exists()


# ---- (b, c) torchrun --nproc-per-node 2 on this CPU ----------------------------------------

def torchrun(*args: object, timeout: float = 240) -> None:
    """``torchrun --standalone --nproc-per-node 2 -m afscope -q ARGS`` (gloo, one thread each)."""
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN and not k.startswith("SLURM_")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "afscope", "-q", *map(str, args)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def cache_files(path: Path) -> dict[str, bytes]:
    """Every file of a cache but its run manifests, by relative path: index.json, records.jsonl,
    chunks/chunk-*.safetensors and tokens/chunk-*.safetensors."""
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*"))
            if f.is_file() and not f.name.startswith("manifest")}


@pytest.fixture(scope="module")
def sae_dir(tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).parent / "sae"))
    from sae_helpers import random_sae

    from afscope.sae import save_sae

    torch.manual_seed(0)
    sae = random_sae("topk", d_in=32, d_sae=48, k=6)
    sae.cfg = sae.cfg.model_copy(update={"hook_layer": 1})
    return save_sae(sae, tmp_path_factory.mktemp("sae") / "sae")


def extract_args(model_dir: Path, data: Path, sae: Path) -> dict[str, object]:
    return dict(model=model_dir, data=data, layers="1,-1", pool="max,mean,last", chunk_size=6,
                batch_tokens=256, sae=sae, token_topk=3)


def flags(args: dict[str, object]) -> list[str]:
    return [x for k, v in args.items() for x in (f"--{k.replace('_', '-')}", str(v))]


def single_extract(args: dict[str, object], out: Path) -> Path:
    r = CliRunner().invoke(main, ["-q", "extract", *flags(args), "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_torchrun_extract_with_sae_is_byte_identical_to_one_process(
        tiny_model_dir, sae_dir, tmp_path):
    data = write_data(tmp_path / "d.jsonl", 27)
    args = extract_args(tiny_model_dir, data, sae_dir)
    single = cache_files(single_extract(args, tmp_path / "single"))
    assert len([k for k in single if k.startswith("tokens/")]) == 5  # 27 records / 6 a chunk
    torchrun("extract", *flags(args), "--out", tmp_path / "multi")
    assert cache_files(tmp_path / "multi") == single
    manifest = json.loads((tmp_path / "multi" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["config"]["shard"] is None
    assert sorted(manifest["outputs"]["shards"]) == ["manifest.shard-0-of-2.json",
                                                     "manifest.shard-1-of-2.json"]
    assert manifest["outputs"]["chunks_written"] == 5
    assert ActivationCache(tmp_path / "multi").token_topk(1) is not None


def test_torchrun_extract_resumes_after_a_rank_died(tiny_model_dir, tmp_path):
    """What a dead rank leaves: rank 0's shard done, rank 1's half done with a torn chunk. The
    same torchrun command finishes it, redoing only rank 1's missing chunks."""
    data = write_data(tmp_path / "d.jsonl", 30)
    args = dict(model=tiny_model_dir, data=data, layers="0,-1", pool="max,mean",
                chunk_size=6, batch_tokens=256)
    single = cache_files(single_extract(args, tmp_path / "single"))
    out = tmp_path / "multi"
    cfg = ExtractConfig(model=str(tiny_model_dir), data=data, layers=[0, -1],
                        pool=["max", "mean"], chunk_size=6, batch_tokens=256, out=out)
    assert extract(cfg.model_copy(update={"shard": "0/2"})) is None
    extract(cfg.model_copy(update={"shard": "1/2"}))
    (out / "chunks" / "chunk-00003.safetensors").unlink()  # rank 1 died before chunk 3 ...
    torn = out / "chunks" / "chunk-00001.safetensors"
    torn.write_bytes(torn.read_bytes()[:64])  # ... and chunk 1 is garbage
    torchrun("extract", *flags(args), "--out", out)
    assert cache_files(out) == single
    shards = json.loads((out / "manifest.json").read_text())["outputs"]["shards"]
    assert {k: v["outputs"]["chunks_written"] for k, v in shards.items()} == {
        "manifest.shard-0-of-2.json": 0, "manifest.shard-1-of-2.json": 2}


def write_prompts(path: Path) -> Path:
    rows = [{"id": f"q{i}", "prompt": f"Please help me with task {i} " + "lock door " * (i % 4)}
            for i in range(7)]
    rows.append({"messages": [{"role": "system", "content": "You are monitored."},
                              {"role": "user", "content": "Help me."}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def generate_flags(model_dir: Path, prompts: Path) -> list[str]:
    return ["--model", str(model_dir), "--prompts", str(prompts), "--max-new-tokens", "5",
            "--batch-size", "3", "--n-generations", "2", "--temperature", "0.7"]


def test_torchrun_generate_merges_to_the_single_process_file(tiny_model_dir, tmp_path):
    base = generate_flags(tiny_model_dir, write_prompts(tmp_path / "p.jsonl"))
    r = CliRunner().invoke(main, ["-q", "generate", *base, "--out", str(tmp_path / "single")])
    assert r.exit_code == 0, r.output
    torchrun("generate", *base, "--out", tmp_path / "multi")
    for name in ("generations.jsonl", "generations.meta.json"):
        assert (tmp_path / "multi" / name).read_bytes() == (tmp_path / "single" / name).read_bytes()
    ids = [json.loads(x)["id"] for x in (tmp_path / "multi" / "generations.jsonl").open()]
    assert ids[:4] == ["q0#0", "q0#1", "q1#0", "q1#1"] and len(ids) == 16  # prompt-file order
    manifest = json.loads((tmp_path / "multi" / "manifest.json").read_text())
    assert manifest["outputs"]["rows"] == 16 and manifest["outputs"]["stats"]["done"] == 16


# ---- (d) Slurm arrays: each task its shard, then a merge step -------------------------------

def test_slurm_array_tasks_then_extract_merge_give_the_single_cache(tiny_model_dir, tmp_path):
    data = write_data(tmp_path / "d.jsonl", 20)
    args = dict(model=tiny_model_dir, data=data, layers="0,-1", pool="max,mean",
                chunk_size=6, batch_tokens=256)
    single = cache_files(single_extract(args, tmp_path / "single"))
    shared = tmp_path / "shared"  # --array=1-2, both tasks writing into one --out
    for task in (1, 2):
        r = CliRunner().invoke(main, ["-q", "extract", *flags(args), "--out", str(shared)],
                               env=slurm(task, 2, low=1))
        assert r.exit_code == 0, r.output
        assert (shared / f"manifest.shard-{task - 1}-of-2.json").exists()
        if task == 1:  # shard 0 of 2: chunks 0 and 2 of 4
            assert ActivationCache(shared).missing_chunks() == [1, 3]
    assert not (shared / "manifest.json").exists()
    r = CliRunner().invoke(main, ["-q", "extract", "merge", str(shared)])
    assert r.exit_code == 0, r.output
    assert cache_files(shared) == single
    assert json.loads((shared / "manifest.json").read_text())["outputs"]["complete"] is True
    parts = [tmp_path / f"task{t}" for t in (0, 1)]  # --array=0-1, one --out per task
    for t, part in enumerate(parts):
        r = CliRunner().invoke(main, ["-q", "extract", *flags(args), "--out", str(part)],
                               env=slurm(t, 2))
        assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["-q", "extract", "merge", *map(str, parts),
                                  "--out", str(tmp_path / "merged")])
    assert r.exit_code == 0, r.output
    assert cache_files(tmp_path / "merged") == single


def test_slurm_array_generate_then_merge(tiny_model_dir, tmp_path):
    base = generate_flags(tiny_model_dir, write_prompts(tmp_path / "p.jsonl"))
    r = CliRunner().invoke(main, ["-q", "generate", *base, "--out", str(tmp_path / "single")])
    assert r.exit_code == 0, r.output
    out = tmp_path / "array"
    early = CliRunner().invoke(main, ["generate", "merge", str(out)])
    assert early.exit_code == 2 and "no shard files" in early.output
    for task in (0, 2):  # --array=0-2: three tasks; the last one has not run yet
        r = CliRunner().invoke(main, ["-q", "generate", *base, "--out", str(out)],
                               env=slurm(task, 3))
        assert r.exit_code == 0, r.output
    assert [json.loads(x)["id"] for x in (out / "generations.shard-2-of-3.jsonl").open()] == [
        "q1#0", "q2#1", "q4#0", "q5#1", "p0007#0"]  # rows 2, 5, 8, 11, 14 of 16
    early = CliRunner().invoke(main, ["generate", "merge", str(out)])
    assert early.exit_code == 2 and "shard 1/3 has not run" in early.output
    r = CliRunner().invoke(main, ["-q", "generate", *base, "--out", str(out)], env=slurm(1, 3))
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["-q", "generate", "merge", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "generations.jsonl").read_bytes() == (
        tmp_path / "single" / "generations.jsonl").read_bytes()


# ---- counterfactual context: shards, then the build as one process --------------------------

CF_FILES = ("generations.jsonl", "generations.meta.json", "labels.jsonl", "labels.meta.json",
            "train.json", "test.json", "stats.json")


def cf_args(model_dir: Path, tmp_path: Path) -> list[str]:
    """The flags of a small context build. ``n`` goes in the YAML: torchrun's own parser takes
    ``--n`` for an abbreviation of its ``--nnodes``/``--nproc-per-node`` (an error)."""
    (tmp_path / "cf.yaml").write_text("n: 5\n")
    return ["counterfactual", "context", "--config", str(tmp_path / "cf.yaml"), "--model",
            str(model_dir), "--max-tokens", "5", "--batch-size", "3", "--test-fraction", "0.4"]


def cf_files(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in CF_FILES}


def test_slurm_array_counterfactual_context_then_one_process(tiny_model_dir, tmp_path):
    args = cf_args(tiny_model_dir, tmp_path)
    r = CliRunner().invoke(main, ["-q", *args, "--out", str(tmp_path / "single")])
    assert r.exit_code == 0, r.output
    out = tmp_path / "array"
    for task in (0, 1):
        r = CliRunner().invoke(main, ["-q", *args, "--out", str(out)], env=slurm(task, 2))
        assert r.exit_code == 0, r.output
        assert (out / f"labels.shard-{task}-of-2.jsonl").exists()
    assert not (out / "train.json").exists()
    (out / "labels.shard-1-of-2.jsonl").unlink()  # a task that died after generating
    r = CliRunner().invoke(main, ["-q", *args, "--out", str(out)])  # the merge step
    assert r.exit_code == 0, r.output
    assert cf_files(out) == cf_files(tmp_path / "single")
    gens = json.loads((out / "manifest.json").read_text())["outputs"]["generations"]
    assert gens == {"done": 0, "skipped": 10, "from_shards": 10}


def test_torchrun_counterfactual_context_is_byte_identical_to_one_process(
        tiny_model_dir, tmp_path):
    args = cf_args(tiny_model_dir, tmp_path)
    r = CliRunner().invoke(main, ["-q", *args, "--out", str(tmp_path / "single")])
    assert r.exit_code == 0, r.output
    torchrun(*args, "--out", tmp_path / "multi")
    assert cf_files(tmp_path / "multi") == cf_files(tmp_path / "single")
    assert json.loads((tmp_path / "multi" / "manifest.json").read_text())["status"] == "complete"


def test_counterfactual_steering_shards_then_one_process(tiny_model_dir, tmp_path):
    from afscope.counterfactual import SteeringConfig, build_steering_dataset
    from afscope.models import load_model
    from afscope.steer.vectors import SteeringVector

    lm = load_model(str(tiny_model_dir))
    g = torch.Generator().manual_seed(0)
    vec = SteeringVector({1: 50 * torch.randn(lm.info.d_model, generator=g)}, model=lm.info.name,
                         model_fingerprint=lm.info.fingerprint, source="diffmean")
    vpath = vec.save(tmp_path / "v.safetensors")

    def cfg(out: Path, shard: str | None = None) -> SteeringConfig:
        return SteeringConfig(model=str(tiny_model_dir), out=out, vector=vpath, n=3, max_tokens=5,
                              batch_size=4, alphas=[0.0, 50.0], layers=[1], test_fraction=0.34,
                              shard=shard)

    build_steering_dataset(cfg(tmp_path / "single"), lm=lm)
    for shard in ("0/3", "1/3", "2/3"):
        assert build_steering_dataset(cfg(tmp_path / "sharded", shard), lm=lm) is None
    assert (tmp_path / "sharded" / "manifest.shard-2-of-3.json").exists()
    res = build_steering_dataset(cfg(tmp_path / "sharded"), lm=lm)
    assert res is not None and res.stats["n_records"] == 6
    assert cf_files(tmp_path / "sharded") == cf_files(tmp_path / "single")


def test_shards_that_fail_on_bad_input_leave_no_directory(tmp_path):
    from afscope.errors import DataError
    from afscope.runs import start_run

    out = tmp_path / "run"  # rank 0 made it; rank 1 joined; both fail before any artifact
    with pytest.raises(DataError):
        with start_run("x", {}, out, manifest_name="manifest.shard-0-of-2.json"):
            with pytest.raises(DataError):
                with start_run("x", {}, out, manifest_name="manifest.shard-1-of-2.json"):
                    raise DataError("bad")
            assert [f.name for f in out.iterdir()] == ["manifest.shard-0-of-2.json"]
            raise DataError("bad")
    assert not out.exists()


# ---- judge run and organism elicit: shards, then the run as one process ---------------------

JUDGE_FILES = ("judged.jsonl", "judged.meta.json", "agreement.json")


def write_judge_rows(path: Path, n: int = 9) -> Path:
    """``n`` rows to judge; every third response refuses."""
    rows = [{"id": f"r{i}", "prompt": f"Help me with task {i}.",
             "response": "I can't help with that." if i % 3 == 0 else f"Sure, step {i}: ..."}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def judge_files(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in JUDGE_FILES}


def scripted_judge(user: str) -> str:
    response = user.split("<response>")[1].split("</response>")[0]
    behaviour = "refuse" if "can't" in response else "comply"
    return f"ALIGNMENT: 80\nCOHERENCE: 90\nBEHAVIOUR: {behaviour}\nAF: no"


def test_judge_run_shards_then_one_process_llm_judge(tmp_path):
    from scripted_llm import ScriptedBackend

    from afscope.judge import JudgeRunConfig
    from afscope.judge.run import run_judge

    data = write_judge_rows(tmp_path / "rows.jsonl")

    def cfg(out: Path, shard: str | None = None) -> JudgeRunConfig:
        return JudgeRunConfig(data=data, out=out, method="both", batch_size=2, shard=shard)

    run_judge(cfg(tmp_path / "single"), backend=ScriptedBackend(scripted_judge))
    out = tmp_path / "sharded"
    for shard in ("0/3", "1/3", "2/3"):
        res = run_judge(cfg(out, shard), backend=ScriptedBackend(scripted_judge))
        assert res["stats"]["done"] == 3
    assert not (out / "judged.jsonl").exists() and not (out / "agreement.json").exists()
    assert (out / "manifest.shard-2-of-3.json").exists()
    (out / "judged.shard-1-of-3.jsonl").unlink()  # a task that died: the merge judges its rows
    backend = ScriptedBackend(scripted_judge)
    res = run_judge(cfg(out), backend=backend)
    assert len(backend.prompts) == 3 and res["stats"]["done"] == 3
    assert judge_files(out) == judge_files(tmp_path / "single")
    stats = json.loads((out / "manifest.json").read_text())["outputs"]["stats"]
    assert stats["from_shards"] == 6 and stats["skipped"] == 6


def test_judge_run_in_judged_completion_order_is_rewritten_in_data_order(tmp_path):
    from afscope.judge import JudgeRunConfig
    from afscope.judge.run import run_judge

    data = write_judge_rows(tmp_path / "rows.jsonl", 4)
    run_judge(JudgeRunConfig(data=data, out=tmp_path / "single", method="rules"))
    judged = tmp_path / "single" / "judged.jsonl"
    lines = judged.read_text().splitlines(keepends=True)
    judged.write_text("".join(reversed(lines)))  # as an LLM judge may store them
    run_judge(JudgeRunConfig(data=data, out=tmp_path / "single", method="rules"))
    assert judged.read_text() == "".join(lines)


def single_and_slurm_array(args: list[str], tmp_path, shard_files: list[str],
                           unmerged: str):
    """Run ``afscope ARGS`` once into ``single/``, then as two Slurm array tasks into ``array/``
    (each leaves its ``shard_files``, none writes ``unmerged``), then once more there as the
    merge step; returns ``array/``."""
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "single")])
    assert r.exit_code == 0, r.output
    out = tmp_path / "array"
    for task in (0, 1):
        r = CliRunner().invoke(main, [*args, "--out", str(out)], env=slurm(task, 2))
        assert r.exit_code == 0, r.output
        for name in shard_files:
            assert (out / name.format(task=task)).exists(), name
    assert not (out / unmerged).exists()
    r = CliRunner().invoke(main, [*args, "--out", str(out)])  # the merge step
    assert r.exit_code == 0, r.output
    return out


def test_slurm_array_judge_run_then_one_process(tmp_path):
    args = ["-q", "judge", "run", "--data", str(write_judge_rows(tmp_path / "rows.jsonl")),
            "--method", "rules"]
    out = single_and_slurm_array(args, tmp_path, ["judged.shard-{task}-of-2.jsonl"],
                                 unmerged="judged.jsonl")
    assert judge_files(out) == judge_files(tmp_path / "single")


def test_torchrun_judge_run_is_byte_identical_to_one_process(tmp_path):
    args = ["judge", "run", "--data", write_judge_rows(tmp_path / "rows.jsonl"), "--method",
            "rules"]
    r = CliRunner().invoke(main, ["-q", *map(str, args), "--out", str(tmp_path / "single")])
    assert r.exit_code == 0, r.output
    torchrun(*args, "--out", tmp_path / "multi")
    assert judge_files(tmp_path / "multi") == judge_files(tmp_path / "single")
    manifest = json.loads((tmp_path / "multi" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["outputs"]["stats"]["from_shards"] == 9


ELICIT_FILES = ("generations.jsonl", "generations.meta.json", "judged.jsonl", "judged.meta.json")


def test_slurm_array_organism_elicit_then_one_process(tiny_model_dir, tmp_path):
    from afscope.organism import OrganismDataConfig, build_organism_data

    data, _ = build_organism_data(OrganismDataConfig(n=24, seed=0, out=tmp_path / "data"))
    (tmp_path / "el.yaml").write_text("cues: [monitored, unmonitored, paid_tier]\n")
    args = ["-q", "organism", "elicit", "--config", str(tmp_path / "el.yaml"), "--base-only",
            "--model", str(tiny_model_dir), "--data", str(data), "--n-requests", "3",
            "--max-tokens", "4", "--gen-batch-size", "2"]
    out = single_and_slurm_array(args, tmp_path, ["judged.shard-{task}-of-2.jsonl",
                                                   "manifest.shard-{task}-of-2.json"],
                                 unmerged="generations.jsonl")
    files = {name: (out / name).read_bytes() for name in ELICIT_FILES}
    assert files == {name: (tmp_path / "single" / name).read_bytes() for name in ELICIT_FILES}
    outputs = json.loads((out / "manifest.json").read_text())["outputs"]
    assert outputs["generated"] == {"done": 0, "skipped": 9, "from_shards": 9}
    assert outputs["n_judged"] == 9 and outputs["judge"]["from_shards"] == 9


@pytest.mark.parametrize("bad", ["4/4", "1/0", "x", "-1/2", "1/2/3"])
def test_every_shardable_config_refuses_a_bad_shard(bad):
    from pydantic import ValidationError

    from afscope.counterfactual.config import ContextConfig, SteeringConfig
    from afscope.extract.config import ExtractConfig
    from afscope.generate.config import GenerateConfig
    from afscope.judge.config import JudgeRunConfig
    from afscope.organism.config import ElicitConfig

    for cls in (ExtractConfig, GenerateConfig, ContextConfig, SteeringConfig, JudgeRunConfig,
                ElicitConfig):
        cfg = cls.model_construct(base_only=True) if cls is ElicitConfig else cls.model_construct()
        with pytest.raises(ValidationError, match="0 <= i < n"):
            cfg.shard = bad  # configs validate on assignment, as on construction
        cfg.shard = "1/4"
        assert cfg.shard == "1/4"
    assert ExtractConfig.model_construct(shard="2/3").shard_index == (2, 3)
    assert ExtractConfig.model_construct().shard_index == (0, 1)


# ---- steer sweep: shards of the rows of every condition, then the run as one process ----------

SWEEP_FILES = ("generations/baseline.jsonl", "generations/baseline.meta.json",
               "generations/v_layer_1_alpha_40.jsonl", "generations/v_layer_1_alpha_40.meta.json",
               "judged/baseline.jsonl", "judged/v_layer_1_alpha_40.jsonl", "summary.json")


def sweep_args(model_dir: Path, tmp_path: Path) -> list[str]:
    """A sweep of 5 prompts x 2 samples x (baseline, alpha 40) = 20 rows; the numbers sit in the
    YAML (torchrun's parser would take ``--max-...`` flags for its own)."""
    from afscope.models import load_model
    from afscope.steer.vectors import SteeringVector

    lm = load_model(str(model_dir))
    g = torch.Generator().manual_seed(0)
    vec = SteeringVector({1: torch.randn(lm.info.d_model, generator=g)}, model=lm.info.name,
                         model_fingerprint=lm.info.fingerprint, source="diffmean")
    vpath = vec.save(tmp_path / "v.safetensors")
    (tmp_path / "sweep.yaml").write_text(
        "max_samples: 5\nn_generations: 2\ntemperature: 0.8\nmax_tokens: 4\ngen_batch_size: 3\n"
        "n_boot: 100\nlayers: [1]\nalphas: [0, 40]\n")
    return ["steer", "sweep", "--config", str(tmp_path / "sweep.yaml"), "--model",
            str(model_dir), "--vectors", f"v={vpath}"]


def sweep_files(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in SWEEP_FILES}


def test_slurm_array_steer_sweep_then_one_process(tiny_model_dir, tmp_path):
    args = ["-q", *sweep_args(tiny_model_dir, tmp_path)]
    out = single_and_slurm_array(args, tmp_path, [
        "generations/baseline.shard-{task}-of-2.jsonl", "manifest.shard-{task}-of-2.json"],
        unmerged="summary.json")
    assert sweep_files(out) == sweep_files(tmp_path / "single")
    shard0 = [json.loads(x)["id"] for x in
              (out / "generations" / "baseline.shard-0-of-2.jsonl").open()]
    assert shard0 == ["p0000-g0", "p0001-g0", "p0002-g0", "p0003-g0", "p0004-g0"]  # rows 0::2
    assert json.loads((out / "manifest.json").read_text())["outputs"]["generated"] == 0


def test_torchrun_steer_sweep_is_byte_identical_to_one_process(tiny_model_dir, tmp_path):
    args = sweep_args(tiny_model_dir, tmp_path)
    r = CliRunner().invoke(main, ["-q", *args, "--out", str(tmp_path / "single")])
    assert r.exit_code == 0, r.output
    torchrun(*args, "--out", tmp_path / "multi")
    assert sweep_files(tmp_path / "multi") == sweep_files(tmp_path / "single")
    manifest = json.loads((tmp_path / "multi" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["outputs"]["generated"] == 0
