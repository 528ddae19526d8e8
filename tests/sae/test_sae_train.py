"""train_sae: a TopK SAE recovers synthetic sparse structure, deterministically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from afscope.errors import DataError
from afscope.sae import SAETrainConfig, evaluate_sae, load_sae, save_sae, train_sae


def sparse_data(n: int = 2000, d: int = 32, m: int = 64, seed: int = 0) -> np.ndarray:
    """``(n, d)`` rows that are positive combinations of 1-3 of ``m`` random unit directions."""
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(m, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    codes = np.zeros((n, m))
    for i in range(n):
        idx = rng.choice(m, size=rng.integers(1, 4), replace=False)
        codes[i, idx] = rng.uniform(0.5, 2.0, size=len(idx))
    return (codes @ dirs).astype(np.float32)


CFG = SAETrainConfig(d_sae=64, k=4, lr=1e-2, epochs=30, batch_size=128, seed=0)


@pytest.fixture(scope="module")
def trained():
    x = sparse_data()
    return x, *train_sae(x, CFG, model_name="synthetic", hook_layer=0)


def test_topk_recovers_sparse_structure(trained) -> None:
    x, sae, metrics = trained
    assert metrics["explained_variance"] > 0.8
    assert 1.0 <= metrics["mean_l0"] <= 4.0
    assert 0.0 <= metrics["dead_fraction"] < 0.5
    assert metrics["tokens_per_s"] > 0 and metrics["steps"] == 30 * 16
    assert sae.cfg.architecture == "topk" and sae.cfg.k == 4 and sae.cfg.d_in == 32
    assert sae.cfg.model_name == "synthetic"
    norms = sae.W_dec.detach().norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    assert evaluate_sae(sae, x) == {k: metrics[k] for k in
                                    ("explained_variance", "mean_l0", "dead_fraction")}


def test_deterministic_for_seed(trained) -> None:
    x, sae, _ = trained
    again, _ = train_sae(torch.from_numpy(x), CFG)
    for name, p in sae.state_dict().items():
        assert torch.equal(again.state_dict()[name], p), name
    other, _ = train_sae(x, CFG.model_copy(update={"seed": 1, "epochs": 1}))
    assert not torch.equal(other.W_dec, sae.W_dec)


def test_trained_sae_round_trips(trained, tmp_path: Path) -> None:
    x, sae, _ = trained
    save_sae(sae, tmp_path / "sae")
    loaded = load_sae(tmp_path / "sae")
    xt = torch.from_numpy(x[:100])
    assert torch.equal(loaded.encode(xt), sae.encode(xt))


def test_auxk_disabled_runs() -> None:
    x = sparse_data(n=256)
    cfg = CFG.model_copy(update={"auxk_alpha": 0.0, "epochs": 2})
    _, metrics = train_sae(x, cfg)
    assert np.isfinite(metrics["final_loss"])


def test_bad_inputs() -> None:
    with pytest.raises(DataError, match=r"\(n, d_in\)"):
        train_sae(np.zeros(5, np.float32), CFG)
    bad = sparse_data(n=10)
    bad[2, 3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        train_sae(bad, CFG)
    with pytest.raises(ValueError, match="'k'"):
        SAETrainConfig(d_sae=4, k=8)
