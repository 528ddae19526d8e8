"""Train a TopK SAE on activations held in memory.

References: Gao et al. 2024, "Scaling and evaluating sparse autoencoders" (the TopK paper; App.
A-B); EleutherAI sparsify (``sparse_coder.py``, ``trainer.py``); SAELens (``training/
sae_trainer.py``, ``saes/topk_sae.py``). The recipe, with the defaults of
:class:`~afscope.sae.SAETrainConfig`:

- **Held-out**: explained variance, L0 and dead fraction are measured on tokens the SAE was not
  trained on (``heldout=``, or the last ``heldout_fraction`` of the rows), next to the same
  metrics on as many training tokens (``train_*``) so the two compare.
- **Init**: ``b_dec`` at the training mean, ``W_dec`` random unit rows, ``W_enc = W_dec.T``.
- **Loss**: fraction of variance unexplained (FVU, ``SSE / SST`` of the batch: scale free) plus
  ``auxk_alpha`` x AuxK: the ``k_aux`` (``d_in // 2``) largest pre-activations among the *dead*
  latents rebuild the main residual; its FVU is scaled by ``min(1, n_dead / k_aux)`` so a few
  dead latents weigh little and none weigh nothing.
- **Dead**: a latent is dead when it fired on none of the last ``dead_tokens`` training tokens
  (a window in tokens, default ``min(10M, budget / 10)`` so short runs can find dead latents).
- **Step**: the component of ``W_dec``'s gradient parallel to each (unit) row is removed, the
  global gradient norm is clipped to ``max_grad_norm``, Adam steps, the rows are renormalized;
  the learning rate decays linearly to 0 over the last ``lr_decay_fraction`` of the steps.
- **Sparse backward**: only the k chosen latents (and the ``k_aux`` dead ones) receive gradient,
  so the backward pass and the decoder cost ``O(B k d_in)``; the encoder's forward matmul is the
  one dense ``O(B d_sae d_in)`` product per step. This is most of the speed on a CPU.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from afscope.errors import DataError
from afscope.sae.base import SAE
from afscope.sae.config import SAEConfig, SAETrainConfig

log = logging.getLogger(__name__)

DEAD_WINDOW_MAX = 10_000_000
"""Gao et al.'s and sparsify's dead window, in tokens: the cap of the default window."""
DEAD_WINDOW_FRACTION = 10
"""The default window is the token budget over this (so it fits a short run)."""


def _as_tensor(x: np.ndarray | torch.Tensor, what: str = "activations") -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise DataError(f"train_sae: expected {what} of shape (n, d_in) with n, d_in > 0, "
                        f"got {tuple(t.shape)}")
    t = t.detach().to("cpu", torch.float32)
    if not all(bool(torch.isfinite(t[i:i + 65536]).all()) for i in range(0, len(t), 65536)):
        raise DataError(f"train_sae: {what} contain NaN or inf values")
    return t


def _latent_major(idx: torch.Tensor, values: torch.Tensor, d_sae: int) -> torch.Tensor:
    """The sparse ``(d_sae, B)`` matrix with ``values[b, j]`` at ``(idx[b, j], b)``, as CSR.

    Sorted by a float key: torch's integer sort (what COO ``coalesce`` and ``embedding_bag``'s
    backward use) is a parallel radix sort that stalls for ~100 ms on a busy 2-core machine,
    where the float sort takes ~2 ms. The key ``latent * B + row`` is exact in float64.
    """
    B, m = idx.shape
    flat = idx.reshape(-1)
    rows = torch.arange(B).repeat_interleave(m)
    order = torch.argsort(flat.double() * B + rows)
    crow = torch.zeros(d_sae + 1, dtype=torch.long)
    crow[1:] = torch.bincount(flat, minlength=d_sae).cumsum(0)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": used as documented
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, rows[order], values.reshape(-1)[order],
                                       (d_sae, B), check_invariants=False)


def _row_major(idx: torch.Tensor, d_sae: int, dtype: torch.dtype) -> torch.Tensor:
    """The ``(B, d_sae)`` CSR pattern of ``idx (B, m)`` (zeros; m entries per row, no sort)."""
    B, m = idx.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.arange(0, B * m + 1, m), idx.reshape(-1),
                                       torch.zeros(B * m, dtype=dtype), (B, d_sae),
                                       check_invariants=False)


class _SparseDecode(torch.autograd.Function):
    """``out[b] = sum_j vals[b, j] * W_dec[idx[b, j]]``: ``(B, m), (B, m) -> (B, d_in)``.

    Forward is ``embedding_bag``; the backward is written out so that it needs no integer sort:
    ``d vals`` is a sampled matmul (``grad @ W_dec.T`` at the m chosen latents only) and
    ``d W_dec`` a sparse ``(d_sae, B) @ (B, d_in)`` product. Both cost ``O(B m d_in)``.
    """

    @staticmethod
    def forward(ctx: Any, idx: torch.Tensor, vals: torch.Tensor, W_dec: torch.Tensor
                ) -> torch.Tensor:
        ctx.save_for_backward(idx, vals, W_dec)
        return F.embedding_bag(idx, W_dec, per_sample_weights=vals, mode="sum")

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        idx, vals, W_dec = ctx.saved_tensors
        d_sae = W_dec.shape[0]
        grad_vals = grad_W = None
        if ctx.needs_input_grad[1]:
            pattern = _row_major(idx, d_sae, grad.dtype)
            grad_vals = torch.sparse.sampled_addmm(pattern, grad, W_dec.T, beta=0.0)
            grad_vals = grad_vals.values().reshape(idx.shape)
        if ctx.needs_input_grad[2]:
            grad_W = torch.sparse.mm(_latent_major(idx, vals, d_sae), grad)  # (d_sae, d_in)
        return None, grad_vals, grad_W


def sparse_decode(indices: torch.Tensor, values: torch.Tensor, W_dec: torch.Tensor
                  ) -> torch.Tensor:
    """``sum_j values[:, j] * W_dec[indices[:, j]]``: ``(B, k), (B, k) -> (B, d_in)``.

    Touches the k rows of ``W_dec`` each input uses (forward and backward), never a dense
    ``(B, d_sae)`` matmul.
    """
    return _SparseDecode.apply(indices, values, W_dec)


class _SelectedPre(torch.autograd.Function):
    """The pre-activations ``pre[b, idx[b, j]]`` of ``pre = (x - b_dec) @ W_enc + b_enc``.

    ``pre (B, d_sae)`` is computed once without autograd (it is needed whole for the top-k);
    this function returns the selected entries ``(B, m)`` and gives ``b_dec``, ``W_enc`` and
    ``b_enc`` the gradient of those entries only: ``O(B m d_in)`` instead of the dense
    ``O(B d_sae d_in)`` of differentiating the full matmul (sparsify's fused encoder does the
    same for the top-k latents; here the AuxK latents get their encoder gradient too).
    """

    @staticmethod
    def forward(ctx: Any, xc: torch.Tensor, b_dec: torch.Tensor, W_enc: torch.Tensor,
                b_enc: torch.Tensor, pre: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(xc, W_enc, idx)
        return pre.gather(1, idx)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        xc, W_enc, idx = ctx.saved_tensors
        d_sae = W_enc.shape[1]
        grad_W = torch.sparse.mm(_latent_major(idx, g, d_sae), xc).T  # (d_in, d_sae)
        per_latent = g.new_zeros(d_sae).index_add_(0, idx.reshape(-1), g.reshape(-1))
        grad_b_dec = -(W_enc @ per_latent)  # xc = x - b_dec
        return None, grad_b_dec, grad_W, per_latent, None, None


def remove_parallel_grad(W_dec: torch.Tensor) -> None:
    """Remove from ``W_dec.grad (d_sae, d_in)`` its component along each row of ``W_dec``.

    With unit-norm rows, that component only changes a row's norm, which the renormalization
    after the step undoes: removing it first keeps Adam's statistics for the useful part
    (Gao et al. App. A.3; sparsify ``remove_gradient_parallel_to_decoder_directions``).
    """
    if W_dec.grad is None:
        return
    with torch.no_grad():
        w, grad = W_dec.detach(), W_dec.grad
        coef = torch.linalg.vecdot(grad, w) / w.norm(dim=-1).square().clamp_min(1e-16)
        grad.addcmul_(coef.unsqueeze(1), w, value=-1.0)  # grad -= coef * w, row by row


class DeadLatents:
    """Counts, per latent, the training tokens since it last fired; dead = ``>= window``.

    A window in tokens (not steps) means the same thing at every batch size, as in sparsify's
    ``dead_feature_threshold``; a latent that fired in a batch restarts at 0.
    """

    def __init__(self, d_sae: int, window: int) -> None:
        self.window = window
        self.since_fired = torch.zeros(d_sae, dtype=torch.long)

    def update(self, fired: torch.Tensor, n_tokens: int) -> None:
        """``fired``: indices (any shape) of the latents active on the last ``n_tokens``."""
        self.since_fired += n_tokens
        self.since_fired[fired.reshape(-1)] = 0

    @property
    def mask(self) -> torch.Tensor:
        """``(d_sae,)`` bool: the dead latents."""
        return self.since_fired >= self.window


def auxk_loss(resid: torch.Tensor, aux_idx: torch.Tensor, aux_pre: torch.Tensor,
              W_dec: torch.Tensor, n_dead: int, k_aux: int, sst: torch.Tensor) -> torch.Tensor:
    """AuxK: FVU of ``resid (B, d_in)`` rebuilt by the top dead latents, x ``min(1, n_dead/k_aux)``.

    ``aux_idx, aux_pre (B, min(k_aux, n_dead))`` are those latents and their pre-activations;
    ``sst`` the batch's total sum of squares (the main loss's denominator). Zero when
    ``n_dead == 0``: no dead latent, no pressure.
    """
    if n_dead == 0:
        return resid.new_zeros(())
    recon = sparse_decode(aux_idx, torch.relu(aux_pre), W_dec)  # no b_dec: resid has none
    return min(1.0, n_dead / k_aux) * ((recon - resid) ** 2).sum() / sst


def default_dead_tokens(budget: int) -> int:
    """``min(10M, budget / 10)`` tokens (at least 1)."""
    return max(1, min(DEAD_WINDOW_MAX, budget // DEAD_WINDOW_FRACTION))


def _init(sae: SAE, x: torch.Tensor, gen: torch.Generator) -> None:
    with torch.no_grad():
        sae.W_dec.copy_(torch.randn(sae.W_dec.shape, generator=gen))
        sae.set_decoder_norm_to_unit_norm()
        sae.W_enc.copy_(sae.W_dec.T)
        sae.b_enc.zero_()
        sae.b_dec.copy_(x.mean(0))


@torch.no_grad()
def evaluate_sae(sae: SAE, x: np.ndarray | torch.Tensor, batch_size: int = 4096
                 ) -> dict[str, float]:
    """Explained variance ``1 - SSE/SST``, mean L0 and dead fraction of ``sae`` on ``x (n, d_in)``.

    ``SST`` is taken around ``x``'s own mean. A latent is dead when it is zero on every row of
    ``x``, so the dead fraction falls as ``n`` grows: compare it at equal ``n``.
    """
    t = _as_tensor(x)
    mean = t.mean(0)
    sse = sst = l0 = 0.0
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    for i in range(0, len(t), batch_size):
        xb = t[i:i + batch_size]
        f = sae.encode(xb)
        sse += float(((sae.decode(f).float() - xb) ** 2).sum())
        sst += float(((xb - mean) ** 2).sum())
        active = f != 0
        l0 += float(active.sum())
        fired |= active.any(0)
    return {
        "explained_variance": 1.0 - sse / sst if sst > 0 else float("nan"),
        "mean_l0": l0 / len(t),
        "dead_fraction": float((~fired).float().mean()),
    }


def _split(t: torch.Tensor, heldout: np.ndarray | torch.Tensor | None, fraction: float
           ) -> tuple[torch.Tensor, torch.Tensor]:
    if heldout is not None:
        h = _as_tensor(heldout, "held-out activations")
        if h.shape[1] != t.shape[1]:
            raise DataError(f"train_sae: held-out activations have width {h.shape[1]}, "
                            f"training ones {t.shape[1]}")
        return t, h
    n_heldout = max(1, round(len(t) * fraction))
    if n_heldout >= len(t):
        raise DataError(f"train_sae: {len(t)} rows are too few to hold out {fraction:.0%}")
    # the last rows: collect_tokens keeps each text's tokens together, so this is (but for one
    # text at the boundary) a split by text
    return t[:-n_heldout], t[-n_heldout:]


def train_sae(x: np.ndarray | torch.Tensor, cfg: SAETrainConfig, *,
              heldout: np.ndarray | torch.Tensor | None = None,
              model_name: str | None = None, hook_name: str | None = None,
              hook_layer: int | None = None) -> tuple[SAE, dict[str, Any]]:
    """Train a TopK SAE on ``x (n, d_in)``; deterministic for a fixed ``cfg.seed`` (on CPU).

    ``heldout (m, d_in)``: tokens to evaluate on, never trained on (best from other texts than
    ``x``); when ``None`` the last ``cfg.heldout_fraction`` of ``x``'s rows are held out.

    Returns the SAE and its metrics: ``heldout_explained_variance``, ``heldout_mean_l0``,
    ``heldout_dead_fraction`` (on the held-out tokens); ``train_explained_variance``,
    ``train_mean_l0``, ``train_dead_fraction`` (on as many training tokens, drawn at random);
    ``dead_fraction_window`` (dead by the training window at the end), ``dead_tokens`` (that
    window), ``n_train_tokens``, ``n_heldout_tokens``, ``budget_tokens`` (tokens trained on,
    epochs included), ``tokens_per_s`` (training throughput), ``steps``, ``final_loss``.
    """
    train, held = _split(_as_tensor(x), heldout, cfg.heldout_fraction)
    n, d_in = train.shape
    gen = torch.Generator().manual_seed(cfg.seed)
    sae = SAE(SAEConfig(architecture="topk", d_in=d_in, d_sae=cfg.d_sae, k=cfg.k,
                        apply_b_dec_to_input=True, model_name=model_name, hook_name=hook_name,
                        hook_layer=hook_layer))
    _init(sae, train, gen)
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr, fused=True)  # one kernel per tensor
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    decay_steps = round(total_steps * cfg.lr_decay_fraction)
    budget = n * cfg.epochs
    dead = DeadLatents(cfg.d_sae, cfg.dead_tokens or default_dead_tokens(budget))
    k_aux = cfg.k_aux or max(1, d_in // 2)
    steps, loss_value = 0, float("nan")
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, cfg.batch_size):
            for group in opt.param_groups:
                group["lr"] = _lr_at(steps, total_steps, decay_steps, cfg.lr)
            loss = _step_loss(sae, train[order[i:i + cfg.batch_size]], cfg.k, dead, k_aux,
                              cfg.auxk_alpha)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            _update(sae, opt, cfg.max_grad_norm)
            steps, loss_value = steps + 1, float(loss.detach())
        log.debug("sae epoch %d: loss %.4f", epoch, loss_value)
    elapsed = time.perf_counter() - start
    sae.eval()
    metrics: dict[str, Any] = {
        f"heldout_{k}": v for k, v in evaluate_sae(sae, held, cfg.batch_size).items()}
    sample = train[torch.randperm(n, generator=gen)[:len(held)]]
    metrics.update({f"train_{k}": v for k, v in evaluate_sae(sae, sample, cfg.batch_size).items()})
    metrics.update(dead_fraction_window=float(dead.mask.float().mean()),
                   dead_tokens=dead.window, n_train_tokens=n, n_heldout_tokens=len(held),
                   budget_tokens=budget, tokens_per_s=budget / max(elapsed, 1e-9), steps=steps,
                   final_loss=loss_value)
    log.info("trained topk SAE d_sae=%d k=%d on %d tokens x %d epochs: held-out explained "
             "variance %.3f (train %.3f), L0 %.2f, dead %.3f on %d held-out tokens; dead by "
             "the %d-token window %.3f", cfg.d_sae, cfg.k, n, cfg.epochs,
             metrics["heldout_explained_variance"], metrics["train_explained_variance"],
             metrics["heldout_mean_l0"], metrics["heldout_dead_fraction"], len(held),
             dead.window, metrics["dead_fraction_window"])
    return sae, metrics


def _lr_at(step: int, total: int, decay: int, lr: float) -> float:
    """``lr``, then linearly down towards 0 over the last ``decay`` of ``total`` steps."""
    return lr if step < total - decay else lr * (total - step) / decay


def _update(sae: SAE, opt: torch.optim.Optimizer, max_grad_norm: float | None) -> None:
    """Drop the decoder-parallel gradient, clip the global norm, step, renormalize the rows."""
    remove_parallel_grad(sae.W_dec)
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(sae.parameters(), max_grad_norm, foreach=True)
    opt.step()
    sae.set_decoder_norm_to_unit_norm()


def _step_loss(sae: SAE, xb: torch.Tensor, k: int, dead: DeadLatents, k_aux: int,
               auxk_alpha: float) -> torch.Tensor:
    """FVU + ``auxk_alpha`` x AuxK of one batch ``xb (B, d_in)``; updates ``dead``."""
    dead_mask = dead.mask  # from the tokens before this batch, as sparsify
    n_dead = int(dead_mask.sum()) if auxk_alpha > 0 else 0
    xc = xb - sae.b_dec.detach()
    with torch.no_grad():
        pre = torch.addmm(sae.b_enc, xc, sae.W_enc)  # (B, d_sae): the one dense product
        top_idx = torch.topk(pre, k, dim=-1, sorted=False).indices  # (B, k)
        if n_dead:
            aux_idx = torch.topk(pre.masked_fill(~dead_mask, float("-inf")),
                                 min(k_aux, n_dead), dim=-1, sorted=False).indices
    vals = torch.relu(_SelectedPre.apply(xc, sae.b_dec, sae.W_enc, sae.b_enc, pre, top_idx))
    recon = sparse_decode(top_idx, vals, sae.W_dec) + sae.b_dec
    sst = ((xb - xb.mean(0)) ** 2).sum().clamp_min(1e-12)
    loss = ((recon - xb) ** 2).sum() / sst  # FVU
    dead.update(top_idx[vals.detach() > 0], len(xb))
    if n_dead:
        aux_pre = _SelectedPre.apply(xc, sae.b_dec, sae.W_enc, sae.b_enc, pre, aux_idx)
        loss = loss + auxk_alpha * auxk_loss((xb - recon).detach(), aux_idx, aux_pre,
                                             sae.W_dec, n_dead, k_aux, sst)
    return loss
