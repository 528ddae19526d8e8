"""``afscope plan``: exact tokens and cache bytes against a real extract of a tiny model, the FLOPs
formula, safetensors sizes, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from tiny_models import build_model

from afscope.cli import main
from afscope.data.dataset import Dataset
from afscope.data.load import load_dataset
from afscope.data.synth import generate_corpus
from afscope.errors import ConfigError
from afscope.extract import ExtractConfig, extract
from afscope.plan import (
    detect_kind,
    estimate_time,
    forward_flops,
    model_shape,
    plan_extract_job,
    safetensors_bytes,
    total,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "synth.jsonl"
    Dataset.from_records(generate_corpus(21, seed=2), "synth").to_jsonl(path)
    return path


def test_model_shape_counts_the_real_parameters(tiny_model_dir, tiny_tokenizer):
    shape = model_shape(str(tiny_model_dir))
    model = build_model("llama", len(tiny_tokenizer))
    assert shape.n_params == sum(p.numel() for p in model.parameters())
    assert shape.block_params == [sum(p.numel() for p in b.parameters())
                                  for b in model.model.layers]
    assert (shape.n_layers, shape.d_model, shape.n_heads, shape.head_dim) == (4, 32, 4, 8)


def test_forward_flops_formula(tiny_model_dir):
    shape = model_shape(str(tiny_model_dir))
    p = sum(shape.block_params[:3])  # blocks 0..2 run for deepest=2
    # batch 1: two rows padded to 3 tokens; batch 2: one row of 5
    want = 2 * p * (2 * 3 + 1 * 5) + 3 * 4 * 4 * 8 * (2 * 6 + 1 * 15)
    assert forward_flops(shape, 2, [[3, 2], [5]]) == want


def test_safetensors_bytes_is_exact(tmp_path):
    from safetensors.numpy import save_file

    tensors = {"L3.max": np.zeros((5, 7), np.float32), "row": np.zeros(5, np.int64),
               "sae.L1.indices": np.zeros(0, np.int32), "Z": np.ones((2, 3), np.int32)}
    meta = {"afscope": json.dumps({"chunk": 12, "fingerprint": "f" * 64}, sort_keys=True)}
    save_file(tensors, str(tmp_path / "x.safetensors"), metadata=meta)
    spec = {"L3.max": ("F32", (5, 7)), "row": ("I64", (5,)), "sae.L1.indices": ("I32", (0,)),
            "Z": ("I32", (2, 3))}
    assert safetensors_bytes(spec, meta) == (tmp_path / "x.safetensors").stat().st_size


@pytest.mark.parametrize("mask,skip", [("all", 1), ("last-2", 0)])
def test_plan_matches_a_real_extract(tiny_model_dir, tiny_tokenizer, corpus, tmp_path, mask, skip):
    cfg = ExtractConfig(model=str(tiny_model_dir), data=corpus, out=tmp_path / "c",
                        layers=[1, -1], pool=["max", "mean", "last"], chunk_size=8,
                        batch_tokens=256, max_length=48, mask=mask, skip_first=skip)
    ds = load_dataset(corpus)
    plan = plan_extract_job(model_shape(str(tiny_model_dir)), tiny_tokenizer, ds.records,
                            layers=cfg.layers, pools=list(cfg.pool), mask=mask, skip_first=skip,
                            max_length=48, batch_tokens=256, chunk_size=8)
    cache = extract(cfg)
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert plan.records == 21
    assert plan.tokens == manifest["outputs"]["tokens"] == int(cache.n_tokens().sum())
    assert plan.padded_tokens >= plan.tokens
    chunks = sorted((tmp_path / "c").rglob("chunk-*.safetensors"))
    assert len(chunks) == math.ceil(21 / 8)
    assert plan.cache_bytes == sum(f.stat().st_size for f in chunks)  # byte for byte
    on_disk = sum(f.stat().st_size for f in (tmp_path / "c").rglob("*") if f.is_file())
    assert on_disk <= plan.cache_bytes_upper < on_disk + 8192
    want_masked = {"all": plan.tokens - 21 * skip, "last-2": 2 * 21}[mask]
    assert plan.masked_tokens == want_masked
    assert plan.weights_bytes == model_shape(str(tiny_model_dir)).n_params * 4
    assert plan.memory_bytes > plan.weights_bytes
    assert plan.flops > 2 * sum(model_shape(str(tiny_model_dir)).block_params) * plan.tokens


def test_sparse_latents_are_bounded_and_token_topk_exact(tiny_model_dir, tiny_tokenizer, corpus,
                                                         tmp_path):
    from afscope.plan import SAEPlan
    from afscope.sae import SAE, SAEConfig, extract_with_sae, save_sae

    sae = SAE(SAEConfig(architecture="topk", d_in=32, d_sae=40, k=3, hook_layer=1))
    folder = save_sae(sae, tmp_path / "sae")
    cfg = ExtractConfig(model=str(tiny_model_dir), data=corpus, out=tmp_path / "c", layers=[1],
                        pool=["max"], chunk_size=8, batch_tokens=256, max_length=48,
                        skip_first=1, sae=[folder], token_topk=2)
    extract_with_sae(cfg)
    plan = plan_extract_job(model_shape(str(tiny_model_dir)), tiny_tokenizer,
                            load_dataset(corpus).records, layers=[1], pools=["max"],
                            skip_first=1, max_length=48, batch_tokens=256, chunk_size=8,
                            saes=[SAEPlan(1, 40, 3)], token_topk=2)
    tokens = sorted((tmp_path / "c" / "tokens").glob("*.safetensors"))
    chunks = sorted((tmp_path / "c" / "chunks").glob("*.safetensors"))
    real_tok = sum(f.stat().st_size for f in tokens)
    real_chunks = sum(f.stat().st_size for f in chunks)
    assert tokens and chunks
    assert plan.cache_bytes - real_tok < real_chunks  # dense part exact, SAE part excluded
    assert plan.cache_bytes_upper >= real_chunks + real_tok
    # the per-token top-k file is exact: dense chunk bytes = plan minus the token files
    plan_dense = plan_extract_job(model_shape(str(tiny_model_dir)), tiny_tokenizer,
                                  load_dataset(corpus).records, layers=[1], pools=["max"],
                                  skip_first=1, max_length=48, batch_tokens=256, chunk_size=8)
    assert plan.cache_bytes - plan_dense.cache_bytes == real_tok


def test_time_and_total():
    from afscope.plan import Plan

    a = estimate_time(Plan(what="a", tokens=1000, padded_tokens=1100, flops=10**12),
                      tokens_per_s=100.0, load_s=5.0)
    assert a.seconds == pytest.approx(15.0)
    b = estimate_time(Plan(what="b", tokens=10, flops=2 * 10**9, memory_bytes=7),
                      flops_per_s=1e9)
    assert b.seconds == pytest.approx(2.0)
    t = total([a, b], "all")
    assert (t.tokens, t.flops, t.seconds, t.memory_bytes) == (1010, 10**12 + 2 * 10**9,
                                                             pytest.approx(17.0), 7)


def test_detect_kind(corpus):
    assert detect_kind({"data": str(corpus)}) == "extract"
    assert detect_kind({"models": [{"name": "x"}], "train": {"data": str(corpus)}}) == "study"
    with pytest.raises(ConfigError, match="neither an extract nor a study"):
        detect_kind({"nonsense": 1})


def test_cli_plan_json(tiny_model_dir, corpus, tmp_path):
    cfg = tmp_path / "ex.yaml"
    cfg.write_text(yaml.safe_dump({"model": str(tiny_model_dir), "data": str(corpus),
                                   "out": str(tmp_path / "c"), "layers": [1],
                                   "chunk_size": 8, "max_length": 48}))
    res = CliRunner().invoke(main, ["plan", "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["total"]["records"] == 21 and out["total"]["seconds"] > 0
    assert "measured here" in out["total"]["rate_source"]
    res = CliRunner().invoke(main, ["plan", "--config", str(cfg), "--tokens-per-s", "100"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["plan", "--config", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2
