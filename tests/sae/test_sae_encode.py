"""SAE latents in the activation cache (``extract --sae``) and ``afscope sae train|info``."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sae_helpers import random_sae

from afscope.cli import main
from afscope.data.dataset import Dataset
from afscope.data.synth import generate_corpus
from afscope.errors import ArtifactError, ConfigError
from afscope.extract import ActivationCache, ExtractConfig, extract
from afscope.extract.runner import collect_tokens
from afscope.models import load_model
from afscope.sae import (
    SAETrainConfig,
    extract_with_sae,
    load_sae,
    run_sae_train,
    save_sae,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "synth.jsonl"
    Dataset.from_records(generate_corpus(20, seed=3), "synth").to_jsonl(path)
    return path


@pytest.fixture(scope="module")
def sae_dir(tmp_path_factory, tiny_model_dir):
    sae = random_sae("topk", d_in=32, d_sae=48, k=6)
    sae.cfg = sae.cfg.model_copy(update={"hook_layer": 1})
    return save_sae(sae, tmp_path_factory.mktemp("sae") / "sae")


def _cfg(model_dir, data, out, sae_dir, **kw):
    base = dict(model=str(model_dir), data=data, out=out, layers=[1, 2], pool=["max"],
                chunk_size=8, batch_tokens=512, max_length=64, skip_first=1, sae=[sae_dir],
                token_topk=4)
    base.update(kw)
    return ExtractConfig(**base)


def test_sparse_latents_match_dense_encoding(tiny_model_dir, corpus, sae_dir, tmp_path):
    cache = extract_with_sae(_cfg(tiny_model_dir, corpus, tmp_path / "c", sae_dir))
    assert cache.sae_layers == [1]
    mx, mean = cache.sae_features(1, "max"), cache.sae_features(1, "mean")
    arg = cache.sae_argmax(1)
    assert mx.shape == (20, 48) and mx.dtype == np.float32
    assert (mx.indices == mean.indices).all() and (mx.indptr == arg.indptr).all()
    lm, sae = load_model(str(tiny_model_dir)), load_sae(sae_dir)
    tok = cache.token_topk(1)
    records = [json.loads(x) for x in corpus.read_text().splitlines()]
    for i, r in enumerate(records):
        ids = lm.tokenizer(r["text"], return_tensors="pt", truncation=True,
                           max_length=64).input_ids
        with torch.inference_mode():
            h = lm.model(ids, output_hidden_states=True).hidden_states[2][0, 1:]  # skip_first
            f = sae.encode(h).numpy()  # (T-1, 48)
        np.testing.assert_allclose(mx[i].toarray()[0], f.max(0), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(mean[i].toarray()[0], f.mean(0), rtol=1e-4, atol=1e-5)
        row_arg = arg[i].toarray()[0]
        for j in mx[i].indices:  # position of the max, counted in the full input (sink included)
            assert f[row_arg[j] - 1, j] == pytest.approx(f[:, j].max(), rel=1e-5)
        pos, token_ids, acts = tok.feature_tokens(i, int(mx[i].indices[0]))
        assert pos.tolist() == list(range(1, ids.shape[1]))
        assert token_ids.tolist() == ids[0, 1:].tolist()
        top = np.argsort(-f, axis=1)[:, :4]
        expect = np.where((top == mx[i].indices[0]).any(1), f[:, mx[i].indices[0]], 0)
        np.testing.assert_allclose(acts, expect, rtol=1e-4, atol=1e-5)
    space = cache.feature_space(1, "sae.max")
    assert space["n_features"] == 48 and space["sae"] and space["layer"] == 1


def test_other_sae_weights_refuse_the_cache(tiny_model_dir, corpus, sae_dir, tmp_path):
    out = tmp_path / "c"
    extract_with_sae(_cfg(tiny_model_dir, corpus, out, sae_dir, token_topk=0))
    other = random_sae("relu", d_in=32, d_sae=48)
    other.cfg = other.cfg.model_copy(update={"hook_layer": 1})
    other_dir = save_sae(other, tmp_path / "other")
    with pytest.raises(ArtifactError, match="differs in: latents"):
        extract_with_sae(_cfg(tiny_model_dir, corpus, out, other_dir, token_topk=0))
    assert ActivationCache(out).token_topk(1) is None


def test_wrong_width_and_layer_are_clear_errors(tiny_model_dir, corpus, tmp_path):
    wide = random_sae("relu", d_in=40, d_sae=16)
    wide.cfg = wide.cfg.model_copy(update={"hook_layer": 1})
    bad = save_sae(wide, tmp_path / "wide")
    with pytest.raises(ArtifactError, match="d_in=40 does not match d_model=32"):
        extract_with_sae(_cfg(tiny_model_dir, corpus, tmp_path / "c", bad))
    assert not (tmp_path / "c").exists()
    elsewhere = random_sae("relu", d_in=32, d_sae=16)
    elsewhere.cfg = elsewhere.cfg.model_copy(update={"hook_layer": 3})
    with pytest.raises(ConfigError, match="SAE for layer 3"):
        extract_with_sae(_cfg(tiny_model_dir, corpus, tmp_path / "d",
                              save_sae(elsewhere, tmp_path / "l3")))
    with pytest.raises(ConfigError, match="extract_with_sae"):
        extract(_cfg(tiny_model_dir, corpus, tmp_path / "e", tmp_path / "l3"))
    plain = extract(_cfg(tiny_model_dir, corpus, tmp_path / "f", None, sae=[]))
    with pytest.raises(ArtifactError, match="no SAE latents for layer 1"):
        plain.sae_features(1)


def test_collect_tokens_counts_and_cap(tiny_model_dir, corpus):
    lm = load_model(str(tiny_model_dir))
    ds = Dataset.from_records(generate_corpus(20, seed=3), "synth")
    n_all = sum(min(len(lm.tokenizer(r.text).input_ids), 64) - 1 for r in ds.records)
    x = collect_tokens(lm, ds, 1, max_length=64, max_tokens=10**6)
    assert x.shape == (n_all, 32) and np.isfinite(x).all()
    capped = collect_tokens(lm, ds, 1, max_length=64, max_tokens=50, seed=1)
    assert capped.shape == (50, 32)
    again = collect_tokens(lm, ds, 1, max_length=64, max_tokens=50, seed=1)
    np.testing.assert_array_equal(capped, again)


def test_sae_train_and_info_cli(tiny_model_dir, corpus, tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["sae", "train", "--model", str(tiny_model_dir), "--data",
                                    str(corpus), "--layer", "1", "--d-sae", "64", "--k", "4",
                                    "--epochs", "3", "--max-length", "64", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "explained variance" in res.output and "tokens/s" in res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["layer"] == 1 and metrics["heldout_mean_l0"] <= 4 and metrics["n_tokens"] > 100
    assert 0 < metrics["heldout_explained_variance"] <= 1 and metrics["n_heldout_tokens"] > 0
    sae = load_sae(out / "sae")
    assert sae.cfg.hook_layer == 1 and sae.cfg.d_in == 32 and sae.cfg.k == 4
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["outputs"]["n_tokens"] == metrics["n_tokens"]
    info = CliRunner().invoke(main, ["sae", "info", str(out / "sae")])
    assert info.exit_code == 0
    data = json.loads(info.output)
    assert data["parameters"]["W_enc"] == [32, 64] and data["training_metrics"]["k"] == 4
    res = CliRunner().invoke(main, ["extract", "--model", str(tiny_model_dir), "--data",
                                    str(corpus), "--layers", "1", "--sae", str(out / "sae"),
                                    "--out", str(tmp_path / "cache"), "--max-length", "64"])
    assert res.exit_code == 0, res.output
    assert ActivationCache(tmp_path / "cache").sae_features(1).shape == (20, 64)


def test_sae_train_requires_data(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError, match="field 'data'"):
        run_sae_train(SAETrainConfig(model=str(tiny_model_dir), d_sae=8, k=2, out=tmp_path / "r"))
