"""The token lens: a ridge map from a target layer's residual to the explainer's embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from afscope.errors import ConfigError
from afscope.explain.config import ExplainDataConfig, ExplainTrainConfig
from afscope.explain.data import build_task_data
from afscope.explain.inject import find_projector
from afscope.explain.lens import cache_sequences, fit_ridge, fit_token_lens, token_embeddings
from afscope.explain.train import load_explainer, train_explainer
from afscope.extract.store import ActivationCache
from afscope.models import load_model
from explain_tasks import vector_folder


def test_fit_ridge_recovers_a_linear_map():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 8, generator=g) + 3.0  # an offset: the fit centres x
    a = torch.randn(5, 8, generator=g)
    y = (x - x.mean(0)) @ a.T
    w = fit_ridge(x, y, ridge=1e-6)
    assert w.shape == (5, 8)
    torch.testing.assert_close(w, a, atol=1e-3, rtol=1e-3)
    # the penalty shrinks the map
    assert fit_ridge(x, y, ridge=10.0).norm() < 0.5 * a.norm()


def test_cache_sequences_are_the_records_tokens_in_order(token_cache):
    cache = ActivationCache(token_cache / "cache")
    tt = cache.token_topk(1)
    seqs = cache_sequences(token_cache / "cache", max_tokens=10**9)
    assert len(seqs) == len(cache.records())
    first = np.flatnonzero(tt.row == 0)
    np.testing.assert_array_equal(seqs[0], tt.token_id[first[np.argsort(tt.pos[first])]])
    capped = cache_sequences(token_cache / "cache", max_tokens=50)
    assert sum(len(s) for s in capped) == 50


def test_token_lens_of_a_tiny_model_names_the_token(token_cache, tiny_model_dir):
    lm = load_model(str(tiny_model_dir))
    seqs = cache_sequences(token_cache / "cache", max_tokens=4000)
    maps, stats = fit_token_lens(lm, lm, seqs, [0, 1], ridge=0.01)
    assert set(maps) == {0, 1} and maps[1].shape == (32, 32)
    acc = stats["held_out_token_accuracy"]
    vocab = lm.model.get_input_embeddings().weight.shape[0]
    # chance is 1/vocab; the residual of a random 2-layer model still carries its token
    assert acc["1"] > 50 / vocab and acc["0"] >= acc["1"] - 0.05
    assert stats["n_tokens"] == sum(len(s) - 1 for s in seqs)


def test_token_embeddings_by_id_and_through_text(tiny_model_dir):
    lm = load_model(str(tiny_model_dir))
    ids = torch.tensor([5, 7, 5])
    emb = token_embeddings(lm.tokenizer, lm, ids)
    torch.testing.assert_close(emb, lm.model.get_input_embeddings().weight[ids].detach())

    class OtherVocab:  # another tokenizer: each id decodes to text the explainer re-tokenizes
        def get_vocab(self):
            return {"x": 0}

        def decode(self, ids):
            return lm.tokenizer.decode(ids)

    cross = token_embeddings(OtherVocab(), lm, ids)
    assert cross.shape == emb.shape
    torch.testing.assert_close(cross[0], cross[2])


def test_lens_projector_is_fit_frozen_saved_and_reloaded(token_cache, tiny_model_dir, tmp_path):
    data, _ = build_task_data(ExplainDataConfig(
        task="features", targets="tokens", cache=token_cache / "cache", sae=token_cache / "sae",
        out=tmp_path / "tok", test_fraction=0.3, min_active=3))
    cfg = ExplainTrainConfig(data=[data], model=str(tiny_model_dir), out=tmp_path / "tr",
                             max_steps=3, val_fraction=0.0, projection="lens", lr=1e-2)
    lm = load_model(str(tiny_model_dir))
    expected, _ = fit_token_lens(lm, lm, cache_sequences(token_cache / "cache", cfg.lens_tokens),
                                 [1], ridge=cfg.lens_ridge, seed=cfg.seed)
    out, summary = train_explainer(cfg)
    meta = json.loads((out / "explainer.json").read_text())
    proj = meta["projection"]
    assert proj["init"] == "lens" and proj["layers"] == [1]
    assert proj["lens"]["target"] == str(tiny_model_dir)
    assert proj["lens"]["n_tokens"] > 100
    assert 0.0 <= proj["lens"]["held_out_token_accuracy"]["1"] <= 1.0
    assert summary["steps"] == 3
    loaded, _ = load_explainer(out)
    weight = find_projector(loaded.model).maps["L1"].weight.detach()
    # lr 1e-2 would have moved a trainable projector; the lens stays as fit
    torch.testing.assert_close(weight, expected[1], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(weight, torch.eye(32), atol=1e-2)


def test_a_second_explainer_reuses_the_lens_fit_of_the_first(token_cache, tiny_model_dir,
                                                             tmp_path, monkeypatch):
    """One process (the demo, explain scaling) fits a lens once per cache, layers and settings;
    an explainer with other settings of its own (steps, data size) gets the same projector."""
    import afscope.explain.lens as lens

    data, _ = build_task_data(ExplainDataConfig(
        task="features", targets="tokens", cache=token_cache / "cache", sae=token_cache / "sae",
        out=tmp_path / "tok", test_fraction=0.3, min_active=3))
    fits = []
    real = lens.fit_token_lens
    monkeypatch.setattr(lens, "fit_token_lens", lambda *a, **k: fits.append(1) or real(*a, **k))
    weights = []
    for i, (steps, ridge) in enumerate([(2, 0.5), (1, 0.5), (1, 0.25)]):
        out, _ = train_explainer(ExplainTrainConfig(
            data=[data], model=str(tiny_model_dir), out=tmp_path / f"tr{i}", max_steps=steps,
            val_fraction=0.0, projection="lens", lens_ridge=ridge))
        loaded, _ = load_explainer(out)
        weights.append(find_projector(loaded.model).maps["L1"].weight.detach())
    assert len(fits) == 2  # the third run's ridge is another fit
    torch.testing.assert_close(weights[0], weights[1])
    assert not torch.allclose(weights[0], weights[2])


def test_lens_needs_a_cache(tmp_path, tiny_model_dir):
    data = vector_folder(tmp_path, d=32)
    with pytest.raises(ConfigError, match="lens_cache"):
        train_explainer(ExplainTrainConfig(data=[data], model=str(tiny_model_dir),
                                           out=tmp_path / "tr", max_steps=1, val_fraction=0.0,
                                           projection="lens"))


def test_projector_readout_names_the_nearest_embedding(tiny_model_dir):
    from afscope.explain.answers import parse_tokens
    from afscope.explain.evaluate import projector_readout
    from afscope.explain.token_data import token_example
    from afscope.features.tokens import TokenNames

    lm = load_model(str(tiny_model_dir))
    names = TokenNames(lm.tokenizer)
    emb = lm.model.get_input_embeddings().weight.detach()
    ids = [t for t in range(emb.shape[0]) if names.usable(t)][5:8]
    test = [token_example(i, "fires_on", ("x",), 1, {}) for i in range(len(ids))]
    test.append(test[0].model_copy(update={"question_type": "feature_description"}))
    vectors = {f"feature:{i}": 3.0 * emb[t] for i, t in enumerate(ids)}
    preds = projector_readout(lm, test, vectors)
    assert preds[-1] is None  # not a token question
    for p, t in zip(preds, ids):
        got = parse_tokens("fires_on", p)
        assert got[0] == names(t) and len(got) == 3
