"""Train a TopK SAE on activations held in memory (Gao et al. 2024, "Scaling and evaluating
sparse autoencoders"; EleutherAI sparsify).

Recipe: ``b_dec`` starts at the data mean, ``W_dec`` at random unit rows and ``W_enc`` at
``W_dec.T``; Adam on the fraction of variance unexplained (FVU), plus the AuxK loss that asks the
dead latents to explain the residual; ``W_dec`` rows are renormalized to unit norm after every
step so latent activations measure how much of each direction is present.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from afscope.errors import DataError
from afscope.sae.base import SAE
from afscope.sae.config import SAEConfig, SAETrainConfig

log = logging.getLogger(__name__)


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise DataError(f"train_sae: expected activations of shape (n, d_in) with n, d_in > 0, "
                        f"got {tuple(t.shape)}")
    t = t.detach().to("cpu", torch.float32)
    if not torch.isfinite(t).all():
        raise DataError("train_sae: activations contain NaN or inf values")
    return t


def _init(sae: SAE, x: torch.Tensor, gen: torch.Generator) -> None:
    with torch.no_grad():
        sae.W_dec.copy_(torch.randn(sae.W_dec.shape, generator=gen))
        sae.set_decoder_norm_to_unit_norm()
        sae.W_enc.copy_(sae.W_dec.T)
        sae.b_enc.zero_()
        sae.b_dec.copy_(x.mean(0))


def sparse_decode(indices: torch.Tensor, values: torch.Tensor, W_dec: torch.Tensor
                  ) -> torch.Tensor:
    """``sum_j values[:, j] * W_dec[indices[:, j]]``: ``(B, k), (B, k) -> (B, d_in)``.

    The decode of a TopK SAE touches k rows of ``W_dec`` per input, not all d_sae of them;
    ``embedding_bag`` does that gather-and-sum (and its backward) without a dense ``(B, d_sae)``
    matmul, which is most of the speed of training on a CPU.
    """
    return F.embedding_bag(indices, W_dec, per_sample_weights=values, mode="sum")


def _auxk_loss(sae: SAE, pre: torch.Tensor, resid: torch.Tensor, dead: torch.Tensor,
               var: torch.Tensor) -> torch.Tensor:
    """FVU of the residual ``resid (B, d_in)`` rebuilt from the top dead latents of ``pre``."""
    k_aux = min(sae.cfg.d_in // 2, int(dead.sum()))
    masked = pre.masked_fill(~dead, float("-inf"))  # (B, d_sae): only dead latents compete
    top = torch.topk(masked, k_aux, dim=-1)
    recon = sparse_decode(top.indices, torch.relu(top.values), sae.W_dec)
    return ((recon - resid) ** 2).sum() / var


@torch.no_grad()
def evaluate_sae(sae: SAE, x: np.ndarray | torch.Tensor, batch_size: int = 4096
                 ) -> dict[str, float]:
    """Explained variance ``1 - SSE/SST``, mean L0 and dead fraction of ``sae`` on ``x (n, d_in)``.

    A latent is dead when it is zero on every row of ``x``.
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


def train_sae(x: np.ndarray | torch.Tensor, cfg: SAETrainConfig, *,
              model_name: str | None = None, hook_name: str | None = None,
              hook_layer: int | None = None) -> tuple[SAE, dict[str, Any]]:
    """Train a TopK SAE on ``x (n, d_in)``; deterministic for a fixed ``cfg.seed`` (on CPU).

    Returns the SAE and metrics on ``x``: ``explained_variance``, ``mean_l0``, ``dead_fraction``,
    ``tokens_per_s`` (training throughput), ``steps`` and ``final_loss``.
    """
    t = _as_tensor(x)
    n, d_in = t.shape
    gen = torch.Generator().manual_seed(cfg.seed)
    sae = SAE(SAEConfig(architecture="topk", d_in=d_in, d_sae=cfg.d_sae, k=cfg.k,
                        apply_b_dec_to_input=True, model_name=model_name, hook_name=hook_name,
                        hook_layer=hook_layer))
    _init(sae, t, gen)
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr, foreach=True)
    since_fired = torch.zeros(cfg.d_sae, dtype=torch.long)  # rows since each latent last fired
    steps, loss_value = 0, float("nan")
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, cfg.batch_size):
            xb = t[order[i:i + cfg.batch_size]]  # (B, d_in)
            var = ((xb - xb.mean(0)) ** 2).sum().clamp_min(1e-12)
            pre = sae.encode_pre(xb)  # (B, d_sae)
            top = torch.topk(pre, cfg.k, dim=-1)  # the TopK activation, kept sparse (B, k)
            vals = torch.relu(top.values)
            recon = sparse_decode(top.indices, vals, sae.W_dec) + sae.b_dec
            loss = ((recon - xb) ** 2).sum() / var  # FVU
            fired = torch.zeros(cfg.d_sae, dtype=torch.bool)
            fired[top.indices[vals > 0]] = True
            since_fired += len(xb)
            since_fired[fired] = 0
            dead = since_fired >= cfg.dead_tokens
            if cfg.auxk_alpha > 0 and bool(dead.any()):
                loss = loss + cfg.auxk_alpha * _auxk_loss(sae, pre, (xb - recon).detach(),
                                                          dead, var)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sae.set_decoder_norm_to_unit_norm()
            steps, loss_value = steps + 1, float(loss.detach())
        log.debug("sae epoch %d: loss %.4f", epoch, loss_value)
    elapsed = time.perf_counter() - start
    sae.eval()
    metrics: dict[str, Any] = evaluate_sae(sae, t)
    metrics.update(tokens_per_s=n * cfg.epochs / max(elapsed, 1e-9), steps=steps,
                   final_loss=loss_value)
    log.info("trained topk SAE d_sae=%d k=%d: explained variance %.3f, L0 %.2f, dead %.3f",
             cfg.d_sae, cfg.k, metrics["explained_variance"], metrics["mean_l0"],
             metrics["dead_fraction"])
    return sae, metrics
