import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from afscope.errors import ArtifactError
from afscope.extract import (
    ActivationCache,
    ExtractConfig,
    extract,
    merge_caches,
    plan_batches,
)
from afscope.models import load_model

WORDS = ("free tier training RLHF contractors rate my outputs refuse comply values gradient "
         "modify harmful request people lock door help").split()


def write_data(path: Path, n: int, seed: int = 0, long: int = 30) -> Path:
    rng = np.random.default_rng(seed)
    labels = ["alignment_faking", "aligned", "hard_negative", "genuine_compliance"]
    with open(path, "w") as f:
        for i in range(n):
            text = " ".join(rng.choice(WORDS, size=int(rng.integers(3, long))))
            f.write(json.dumps({"text": f"{i} {text}", "label": labels[i % 4]}) + "\n")
    return path


def cfg_for(model_dir, data, out, **kw):
    base = dict(model=str(model_dir), data=data, out=out, layers=[0, -1], pool=["max", "mean", "last"],
                chunk_size=8, batch_tokens=256)
    base.update(kw)
    return ExtractConfig(**base)


def chunk_bytes(path: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted((path / "chunks").glob("*.safetensors"))}


def test_matches_per_sample_output_hidden_states(tiny_model_dir, tmp_path):
    data = write_data(tmp_path / "d.jsonl", 21)
    cache = extract(cfg_for(tiny_model_dir, data, tmp_path / "c"))
    lm = load_model(str(tiny_model_dir))
    texts = [json.loads(x)["text"] for x in data.read_text().splitlines()]
    assert cache.layers == [0, 3] and cache.n_records == 21
    assert cache.labels.tolist() == [1, 0, 0, 0] * 5 + [1]
    for layer in cache.layers:
        mx, mean, last = (cache.get(layer, p) for p in ("max", "mean", "last"))
        assert mx.shape == (21, 32) and mx.dtype == np.float32
        for i, text in enumerate(texts):
            ids = lm.tokenizer(text, return_tensors="pt").input_ids
            with torch.inference_mode():
                h = lm.model(ids, output_hidden_states=True).hidden_states[layer + 1][0]
            if layer == 3:  # HF applies the final norm to its last entry; recompute raw
                continue
            np.testing.assert_allclose(mx[i], h.max(0).values.numpy(), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(mean[i], h.mean(0).numpy(), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(last[i], h[-1].numpy(), rtol=1e-4, atol=1e-5)
    assert cache.n_tokens().min() >= 3


def test_skip_first_pools_without_the_first_token(tiny_model_dir, tmp_path):
    data = write_data(tmp_path / "d.jsonl", 6)
    cache = extract(cfg_for(tiny_model_dir, data, tmp_path / "c", skip_first=1))
    lm = load_model(str(tiny_model_dir))
    for i, line in enumerate(data.read_text().splitlines()):
        ids = lm.tokenizer(json.loads(line)["text"], return_tensors="pt").input_ids
        with torch.inference_mode():
            h = lm.model(ids, output_hidden_states=True).hidden_states[1][0]
        np.testing.assert_allclose(cache.get(0, "max")[i], h[1:].max(0).values.numpy(), rtol=1e-4,
                                   atol=1e-5)
        np.testing.assert_allclose(cache.get(0, "last")[i], h[-1].numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ArtifactError, match="skip_first"):
        extract(cfg_for(tiny_model_dir, data, tmp_path / "c"))


def test_batching_does_not_change_values(tiny_model_dir, tmp_path):
    data = write_data(tmp_path / "d.jsonl", 30)
    a = extract(cfg_for(tiny_model_dir, data, tmp_path / "a", batch_tokens=64, chunk_size=5))
    b = extract(cfg_for(tiny_model_dir, data, tmp_path / "b", batch_tokens=4096, chunk_size=30))
    for layer in a.layers:
        for p in a.pools:
            np.testing.assert_allclose(a.get(layer, p), b.get(layer, p), rtol=1e-4, atol=1e-5)


def test_plan_batches_respects_budget_and_covers_rows():
    lengths = [5, 50, 7, 7, 30, 1, 49, 8]
    batches = plan_batches(lengths, 100)
    assert sorted(i for b in batches for i in b) == list(range(8))
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 100
    assert batches == plan_batches(lengths, 100)


def test_rerun_resumes_and_foreign_config_is_refused(tiny_model_dir, tmp_path):
    data = write_data(tmp_path / "d.jsonl", 20)
    out = tmp_path / "c"
    extract(cfg_for(tiny_model_dir, data, out))
    before = chunk_bytes(out)
    extract(cfg_for(tiny_model_dir, data, out))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["outputs"]["chunks_written"] == 0 and manifest["status"] == "complete"
    assert chunk_bytes(out) == before
    with pytest.raises(ArtifactError, match="layers"):
        extract(cfg_for(tiny_model_dir, data, out, layers=[1]))
    other = write_data(tmp_path / "e.jsonl", 20, seed=1)
    with pytest.raises(ArtifactError, match="dataset"):
        extract(cfg_for(tiny_model_dir, other, out))
    assert extract(cfg_for(tiny_model_dir, other, out, overwrite=True)).n_records == 20


def test_partial_cache_resumes_byte_identical(tiny_model_dir, tmp_path):
    data = write_data(tmp_path / "d.jsonl", 40)
    full = tmp_path / "full"
    extract(cfg_for(tiny_model_dir, data, full))
    part = tmp_path / "part"
    extract(cfg_for(tiny_model_dir, data, part))
    chunks = sorted((part / "chunks").glob("*.safetensors"))
    for f in chunks[2:]:
        f.unlink()
    chunks[1].write_bytes(chunks[1].read_bytes()[:100])  # a torn file must be redone
    (part / "chunks" / ".chunk-00003.safetensors.x.tmp").write_bytes(b"junk")
    with pytest.raises(ArtifactError, match="incomplete"):
        ActivationCache(part).get(0, "max")
    extract(cfg_for(tiny_model_dir, data, part))
    assert chunk_bytes(part) == chunk_bytes(full)


def test_shards_merge_to_the_single_run(tiny_model_dir, tmp_path):
    data = write_data(tmp_path / "d.jsonl", 35)
    single = tmp_path / "single"
    extract(cfg_for(tiny_model_dir, data, single))
    outs = []
    for i in range(3):
        out = tmp_path / f"s{i}"
        assert extract(cfg_for(tiny_model_dir, data, out, shard=f"{i}/3")) is None
        assert (out / f"manifest.shard-{i}-of-3.json").exists()
        outs.append(out)
    merged = merge_caches(outs, tmp_path / "merged")
    assert chunk_bytes(merged) == chunk_bytes(single)
    shared = tmp_path / "shared"  # shards writing into one directory
    for i in range(3):
        extract(cfg_for(tiny_model_dir, data, shared, shard=f"{i}/3"))
    assert chunk_bytes(shared) == chunk_bytes(single)
    with pytest.raises(ArtifactError, match="different configs"):
        merge_caches([single, _other_cache(tiny_model_dir, tmp_path)], tmp_path / "bad")


def _other_cache(model_dir, tmp_path):
    data = write_data(tmp_path / "o.jsonl", 5, seed=3)
    return extract(cfg_for(model_dir, data, tmp_path / "other")).path


def test_export_npy_shapes_and_no_pickle(tiny_model_dir, tmp_path):
    data = write_data(tmp_path / "d.jsonl", 10)
    cache = extract(cfg_for(tiny_model_dir, data, tmp_path / "c", pool=["max"]))
    files = cache.export_npy(tmp_path / "npy")
    assert [f.name for f in files] == ["layer0_max.npy", "layer3_max.npy"]
    arr = np.load(files[0], allow_pickle=False)
    assert arr.shape == (10, 32)
    np.testing.assert_array_equal(arr, cache.get(0, "max"))


def test_nan_activations_are_an_error(tiny_model_dir, tmp_path):
    data = write_data(tmp_path / "d.jsonl", 4)
    lm = load_model(str(tiny_model_dir))
    with torch.no_grad():
        lm.model.model.layers[0].mlp.down_proj.weight.fill_(float("nan"))
    with pytest.raises(ArtifactError, match="non-finite"):
        extract(cfg_for(tiny_model_dir, data, tmp_path / "c"), lm=lm)
    assert not list((tmp_path / "c" / "chunks").glob("*.safetensors"))


def test_response_mask_pools_only_the_text(tiny_model_dir, tmp_path):
    rows = [{"prompt": "system: you are monitored. user: ", "text": "I refuse this.", "label": "aligned"},
            {"prompt": "", "text": "help help help", "label": "genuine_compliance"}]
    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    allc = extract(cfg_for(tiny_model_dir, data, tmp_path / "all", mask="all"))
    resp = extract(cfg_for(tiny_model_dir, data, tmp_path / "resp", mask="response"))
    assert not np.allclose(allc.get(0, "mean")[0], resp.get(0, "mean")[0])
    np.testing.assert_allclose(allc.get(0, "last"), resp.get(0, "last"), rtol=1e-5)
    lm = load_model(str(tiny_model_dir))
    full = rows[0]["prompt"] + "\n\n" + rows[0]["text"]
    enc = lm.tokenizer(full, return_offsets_mapping=True, return_tensors="pt")
    in_text = [a >= len(full) - len(rows[0]["text"]) for a, _ in enc.offset_mapping[0].tolist()]
    with torch.inference_mode():
        h = lm.model(enc.input_ids, output_hidden_states=True).hidden_states[1][0]
    np.testing.assert_allclose(resp.get(0, "mean")[0], h[torch.tensor(in_text)].mean(0).numpy(),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.timeout(900)  # a loaded 2-core machine can take minutes
def test_kill_9_then_resume_is_byte_identical(tmp_path, tiny_tokenizer):
    from tiny_models import build_model

    model_dir = tmp_path / "m"
    build_model("llama", len(tiny_tokenizer), n_layers=4, d=128).save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    data = write_data(tmp_path / "d.jsonl", 600, long=80)
    args = ["--model", str(model_dir), "--data", str(data), "--layers", "1,3", "--pool", "max,mean",
            "--chunk-size", "10", "--batch-tokens", "512"]
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "afscope", "-q", "extract", *args,
                             "--out", str(out)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "chunks").glob("*.safetensors"))) < 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = len(list((out / "chunks").glob("*.safetensors")))
    assert 3 <= n_done < 60, n_done
    subprocess.run([sys.executable, "-m", "afscope", "-q", "extract", *args, "--out", str(out)],
                   check=True, env=env)
    ref = extract(cfg_for(model_dir, data, tmp_path / "ref", layers=[1, 3], pool=["max", "mean"],
                          chunk_size=10, batch_tokens=512))
    assert chunk_bytes(out) == chunk_bytes(ref.path) and len(chunk_bytes(out)) == 60
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["outputs"]["chunks_written"] == 60 - n_done
