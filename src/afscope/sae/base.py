"""The SAE module: SAELens parameter names, one activation per architecture, a registry.

Parameters (SAELens names and layouts, so state dicts load unchanged)::

    W_enc (d_in, d_sae)   b_enc (d_sae,)   W_dec (d_sae, d_in)   b_dec (d_in,)
    threshold (d_sae,)    jumprelu only

``encode``: ``pre = (x - b_dec * apply_b_dec_to_input) @ W_enc + b_enc`` then the architecture's
activation; ``decode``: ``f @ W_dec + b_dec``. A TopK SAE with ``rescale_acts_by_decoder_norm``
(SAELens TopK) multiplies ``pre`` by the decoder row norms ``n = ||W_dec[i]||`` before choosing the
top k and decodes ``(f / n) @ W_dec + b_dec``: it behaves as if ``W_dec`` had unit rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from afscope.errors import ConfigError
from afscope.sae.config import SAEConfig

Activation = Callable[[torch.Tensor, "SAE"], torch.Tensor]
"""``(pre (..., d_sae), sae) -> acts (..., d_sae)``."""


@dataclass(frozen=True)
class ArchSpec:
    """A registered architecture: its activation and the parameters it adds to the base four."""

    activation: Activation
    extra_params: tuple[str, ...] = ()


ARCHITECTURES: dict[str, ArchSpec] = {}


def register_architecture(name: str, activation: Activation,
                          extra_params: tuple[str, ...] = ()) -> None:
    """Add an architecture; a name registered twice (or not lower-case) is a ConfigError."""
    if name != name.lower():
        raise ConfigError(f"SAE architecture name must be lower-case, got {name!r}")
    if name in ARCHITECTURES:
        raise ConfigError(f"SAE architecture {name!r} is already registered")
    ARCHITECTURES[name] = ArchSpec(activation, tuple(extra_params))


def relu_activation(pre: torch.Tensor, sae: SAE) -> torch.Tensor:
    """``relu(pre)``: the standard (L1-trained) SAE."""
    return torch.relu(pre)


def topk_activation(pre: torch.Tensor, sae: SAE) -> torch.Tensor:
    """Keep the k largest pre-activations per row, then relu (as SAELens' ``TopK``).

    At most k entries per row are non-zero (fewer when fewer than k are positive). Same result
    as taking the top k of ``relu(pre)``.
    """
    k = sae.cfg.k
    assert k is not None  # guaranteed by SAEConfig validation
    top = torch.topk(pre, k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))


def jumprelu_activation(pre: torch.Tensor, sae: SAE) -> torch.Tensor:
    """``relu(pre) * (pre > threshold)`` (GemmaScope; equals ``pre * (pre > t)`` for t >= 0)."""
    return torch.relu(pre) * (pre > sae.threshold)


register_architecture("relu", relu_activation)
register_architecture("topk", topk_activation)
register_architecture("jumprelu", jumprelu_activation, extra_params=("threshold",))


_DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16,
           "float16": torch.float16}


def torch_dtype(name: str) -> torch.dtype:
    """``"float32"`` -> ``torch.float32`` (the names of :data:`afscope.sae.config.SAEDType`)."""
    return _DTYPES[name]


class SAE(nn.Module):
    """A sparse autoencoder with SAELens parameter names; parameters start at zero.

    Build with ``SAE(cfg)`` and fill with ``load_state_dict``, or use
    :func:`afscope.sae.load_sae` / :func:`afscope.sae.train_sae`.
    """

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        if cfg.architecture not in ARCHITECTURES:
            raise ConfigError(f"field 'architecture': unknown {cfg.architecture!r}; "
                              f"expected one of {sorted(ARCHITECTURES)}")
        self.cfg = cfg
        self.spec = ARCHITECTURES[cfg.architecture]
        dt = torch_dtype(cfg.dtype)
        self.W_enc = nn.Parameter(torch.zeros(cfg.d_in, cfg.d_sae, dtype=dt))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae, dtype=dt))
        self.W_dec = nn.Parameter(torch.zeros(cfg.d_sae, cfg.d_in, dtype=dt))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in, dtype=dt))
        for name in self.spec.extra_params:  # per-latent vectors (threshold)
            self.register_parameter(name, nn.Parameter(torch.zeros(cfg.d_sae, dtype=dt)))

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every parameter this config needs (what a weights file must hold)."""
        return {name: tuple(p.shape) for name, p in self.named_parameters()}

    def encode_pre(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activations ``(..., d_in) -> (..., d_sae)``."""
        x = x.to(self.W_enc.dtype)
        if self.cfg.apply_b_dec_to_input:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def decoder_norms(self) -> torch.Tensor:
        """``||W_dec[i]||`` per latent, ``(d_sae,)`` (no clamp, as SAELens's TopK rescale)."""
        return self.W_dec.norm(dim=-1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent activations ``(..., d_in) -> (..., d_sae)``, non-negative and sparse."""
        pre = self.encode_pre(x)
        if self.cfg.rescale_acts_by_decoder_norm:  # rank latents as if W_dec had unit rows
            pre = pre * self.decoder_norms()
        return self.spec.activation(pre, self)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``(..., d_sae) -> (..., d_in)``."""
        f = f.to(self.W_dec.dtype)
        if self.cfg.rescale_acts_by_decoder_norm:  # undo the encoder's scaling
            f = f * self.decoder_norms().reciprocal()
        return f @ self.W_dec + self.b_dec

    def decoder_directions(self) -> torch.Tensor:
        """What one unit of each latent adds to the reconstruction, ``(d_sae, d_in)``.

        ``W_dec``, or ``W_dec`` with unit rows for a TopK SAE with
        ``rescale_acts_by_decoder_norm`` (its latents are measured in unit-norm directions).
        """
        if self.cfg.rescale_acts_by_decoder_norm:
            return self.W_dec / self.decoder_norms().unsqueeze(-1)
        return self.W_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x))``: ``(..., d_in) -> (..., d_in)``."""
        return self.decode(self.encode(x))

    @torch.no_grad()
    def set_decoder_norm_to_unit_norm(self) -> None:
        """Rescale each row of ``W_dec`` (one latent's direction) to unit L2 norm."""
        self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8))
