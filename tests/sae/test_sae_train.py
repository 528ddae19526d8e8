"""train_sae: held-out metrics, AuxK scaled by the dead count, a dead window in tokens, the
decoder-parallel gradient removed, determinism, and recovery of a synthetic sparse dictionary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from afscope.errors import DataError
from afscope.sae import SAETrainConfig, evaluate_sae, load_sae, save_sae, train_sae
from afscope.sae.train import (
    DeadLatents,
    _SelectedPre,
    auxk_loss,
    default_dead_tokens,
    remove_parallel_grad,
)


def sparse_data(n: int = 2000, d: int = 32, m: int = 64, seed: int = 0,
                dirs_seed: int = 0, use: slice = slice(None)) -> np.ndarray:
    """``(n, d)`` rows, each a positive combination of 1-3 of ``m`` random unit directions
    (only the directions ``use`` of them; the directions depend on ``dirs_seed`` only)."""
    dirs = np.random.default_rng(dirs_seed).normal(size=(m, d))
    dirs = (dirs / np.linalg.norm(dirs, axis=1, keepdims=True))[use]
    rng = np.random.default_rng(seed)
    codes = np.zeros((n, len(dirs)))
    for i in range(n):
        idx = rng.choice(len(dirs), size=rng.integers(1, 4), replace=False)
        codes[i, idx] = rng.uniform(0.5, 2.0, size=len(idx))
    return (codes @ dirs).astype(np.float32)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These problems are tiny: on a shared 2-core machine extra threads only add waiting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


CFG = SAETrainConfig(d_sae=64, k=4, lr=1e-2, epochs=30, batch_size=128, seed=0)
N_HELDOUT = 200  # 10% of sparse_data()'s 2000 rows


@pytest.fixture(scope="module")
def trained():
    x = sparse_data()
    return x, *train_sae(x, CFG, model_name="synthetic", hook_layer=0)


def test_topk_recovers_sparse_dictionary_on_heldout(trained) -> None:
    x, sae, metrics = trained
    assert metrics["heldout_explained_variance"] > 0.85
    assert 1.0 <= metrics["heldout_mean_l0"] <= 4.0
    assert 0.0 <= metrics["heldout_dead_fraction"] < 0.5
    assert metrics["n_train_tokens"] == 1800 and metrics["n_heldout_tokens"] == N_HELDOUT
    assert metrics["budget_tokens"] == 1800 * 30 and metrics["steps"] == 30 * 15
    assert metrics["tokens_per_s"] > 0 and np.isfinite(metrics["final_loss"])
    assert sae.cfg.architecture == "topk" and sae.cfg.k == 4 and sae.cfg.d_in == 32
    assert sae.cfg.model_name == "synthetic"
    norms = sae.W_dec.detach().norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    # the reported held-out numbers are evaluate_sae on the last 10% of the rows
    assert evaluate_sae(sae, x[-N_HELDOUT:]) == pytest.approx({
        k: metrics[f"heldout_{k}"] for k in ("explained_variance", "mean_l0", "dead_fraction")})


def test_heldout_rows_are_never_trained_on(trained) -> None:
    x, sae, metrics = trained
    # training on the first 90% alone, with the rest passed as held-out, gives the same SAE:
    # the held-out rows did not touch the weights (nor b_dec's mean init)
    same, m2 = train_sae(x[:-N_HELDOUT], CFG, heldout=x[-N_HELDOUT:])
    for name, p in sae.state_dict().items():
        assert torch.equal(same.state_dict()[name], p), name
    assert m2["heldout_explained_variance"] == metrics["heldout_explained_variance"]


def test_heldout_metrics_differ_from_train_metrics() -> None:
    # held-out texts use 16 directions the training texts never use: train EV stays high,
    # held-out EV shows the SAE does not generalize to them
    train = sparse_data(n=1200, use=slice(0, 48))
    held = sparse_data(n=200, seed=1, use=slice(48, 64))
    cfg = CFG.model_copy(update={"epochs": 15})
    _, m = train_sae(train, cfg, heldout=held)
    assert m["n_heldout_tokens"] == 200 and m["n_train_tokens"] == 1200
    assert m["train_explained_variance"] > 0.85
    assert m["heldout_explained_variance"] < m["train_explained_variance"] - 0.2


def test_selected_pre_gradient_matches_dense_autograd() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    b_dec, W_enc, b_enc = (torch.randn(*s, generator=gen, dtype=torch.float64,
                                       requires_grad=True) for s in ((5,), (5, 9), (9,)))
    pre = ((x - b_dec) @ W_enc + b_enc).detach()
    idx = torch.topk(pre, 3, dim=-1).indices
    w = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    (_SelectedPre.apply(x - b_dec.detach(), b_dec, W_enc, b_enc, pre, idx) * w).sum().backward()
    sparse_grads = [p.grad.clone() for p in (b_dec, W_enc, b_enc)]
    for p in (b_dec, W_enc, b_enc):
        p.grad = None
    (((x - b_dec) @ W_enc + b_enc).gather(1, idx) * w).sum().backward()
    for got, p in zip(sparse_grads, (b_dec, W_enc, b_enc)):
        torch.testing.assert_close(got, p.grad)


def test_parallel_gradient_removed() -> None:
    gen = torch.Generator().manual_seed(0)
    W = torch.nn.Parameter(torch.randn(16, 8, generator=gen))
    with torch.no_grad():
        W.div_(W.norm(dim=-1, keepdim=True))
    grad = torch.randn(16, 8, generator=gen)
    W.grad = grad.clone()
    remove_parallel_grad(W)
    parallel = (W.grad * W.detach()).sum(-1)
    assert parallel.abs().max() < 1e-6
    # only the parallel part went: what is left is the original minus its projection
    expected = grad - (grad * W.detach()).sum(-1, keepdim=True) * W.detach()
    torch.testing.assert_close(W.grad, expected)


def test_dead_latents_counted_by_token_window() -> None:
    dead = DeadLatents(4, window=100)
    dead.update(torch.tensor([0]), 60)
    assert not dead.mask.any()
    dead.update(torch.tensor([[1, 1]]), 30)
    assert not dead.mask.any()  # latents 2 and 3: 90 tokens < 100
    dead.update(torch.tensor([1]), 10)
    assert dead.mask.tolist() == [False, False, True, True]  # 100 tokens without firing
    assert dead.since_fired.tolist() == [40, 0, 100, 100]
    # the window is in tokens: one batch of 100 counts as much as ten of 10
    other = DeadLatents(4, window=100)
    for _ in range(10):
        other.update(torch.tensor([0, 1]), 10)
    assert other.mask.tolist() == [False, False, True, True]


def test_dead_window_sized_to_the_run(trained) -> None:
    _, _, metrics = trained
    assert metrics["dead_tokens"] == default_dead_tokens(1800 * 30) == 1800 * 30 // 10
    assert default_dead_tokens(10**12) == 10_000_000 and default_dead_tokens(3) == 1
    _, m = train_sae(sparse_data(n=300), CFG.model_copy(update={"epochs": 1,
                                                                "dead_tokens": 123}))
    assert m["dead_tokens"] == 123


def test_auxk_scaled_by_number_of_dead_latents() -> None:
    gen = torch.Generator().manual_seed(0)
    W_dec = torch.randn(10, 4, generator=gen)
    resid = torch.randn(3, 4, generator=gen)
    idx = torch.tensor([[1, 2]] * 3)
    pre = torch.rand(3, 2, generator=gen)
    sst = torch.tensor(7.0)
    fvu = ((torch.nn.functional.embedding_bag(idx, W_dec, per_sample_weights=pre, mode="sum")
            - resid) ** 2).sum() / sst
    assert float(auxk_loss(resid, idx, pre, W_dec, n_dead=0, k_aux=4, sst=sst)) == 0.0
    torch.testing.assert_close(auxk_loss(resid, idx, pre, W_dec, n_dead=2, k_aux=4, sst=sst),
                               fvu / 2)
    torch.testing.assert_close(auxk_loss(resid, idx, pre, W_dec, n_dead=8, k_aux=4, sst=sst), fvu)


def test_auxk_has_no_effect_when_no_latent_is_dead() -> None:
    x = sparse_data(n=400)
    never_dead = CFG.model_copy(update={"epochs": 3, "dead_tokens": 10**9})
    a, _ = train_sae(x, never_dead)
    b, _ = train_sae(x, never_dead.model_copy(update={"auxk_alpha": 0.0}))
    for name, p in a.state_dict().items():
        assert torch.equal(b.state_dict()[name], p), name
    # with a tiny window some latents are dead at once, and AuxK changes the result
    c, m = train_sae(x, never_dead.model_copy(update={"dead_tokens": 1}))
    assert not torch.equal(c.W_enc, a.W_enc) and np.isfinite(m["final_loss"])


def test_grad_clipping_applies_above_the_threshold_only() -> None:
    x = sparse_data(n=400)
    cfg = CFG.model_copy(update={"epochs": 2, "max_grad_norm": None})
    free, _ = train_sae(x, cfg)
    loose, _ = train_sae(x, cfg.model_copy(update={"max_grad_norm": 1e9}))
    tight, _ = train_sae(x, cfg.model_copy(update={"max_grad_norm": 1e-4}))
    assert torch.equal(free.W_enc, loose.W_enc)
    assert not torch.equal(free.W_enc, tight.W_enc)


def test_deterministic_for_seed(trained) -> None:
    x, sae, metrics = trained
    again, m2 = train_sae(torch.from_numpy(x), CFG, model_name="synthetic", hook_layer=0)
    for name, p in sae.state_dict().items():
        assert torch.equal(again.state_dict()[name], p), name
    drop = ("tokens_per_s",)
    assert {k: v for k, v in m2.items() if k not in drop} == {
        k: v for k, v in metrics.items() if k not in drop}
    other, _ = train_sae(x, CFG.model_copy(update={"seed": 1, "epochs": 1}))
    assert not torch.equal(other.W_dec, sae.W_dec)


def test_trained_sae_round_trips(trained, tmp_path: Path) -> None:
    x, sae, _ = trained
    save_sae(sae, tmp_path / "sae")
    loaded = load_sae(tmp_path / "sae")
    xt = torch.from_numpy(x[:100])
    assert torch.equal(loaded.encode(xt), sae.encode(xt))


def test_bad_inputs() -> None:
    with pytest.raises(DataError, match=r"\(n, d_in\)"):
        train_sae(np.zeros(5, np.float32), CFG)
    bad = sparse_data(n=10)
    bad[2, 3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        train_sae(bad, CFG)
    with pytest.raises(DataError, match="width 16"):
        train_sae(sparse_data(n=50), CFG, heldout=np.zeros((5, 16), np.float32))
    with pytest.raises(DataError, match="too few"):
        train_sae(sparse_data(n=1), CFG)
    with pytest.raises(ValueError, match="'k'"):
        SAETrainConfig(d_sae=4, k=8)
    with pytest.raises(ValueError, match="heldout_fraction"):
        SAETrainConfig(d_sae=8, heldout_fraction=0.0)
