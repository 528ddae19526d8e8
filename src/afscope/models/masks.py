"""Token masks: which positions of a padded batch a pooled activation is taken over.

Works for left and right padding alike: positions are ranked among the *valid* tokens of each row.
Kinds: ``all``; ``response`` (valid tokens from ``response_start`` on, e.g. after the prompt);
``last``; ``last-K`` (the last K valid tokens).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from afscope.errors import ConfigError

_LAST_K = re.compile(r"^last-(\d+)$")


@dataclass(frozen=True)
class MaskSpec:
    kind: str
    k: int = 1

    @classmethod
    def parse(cls, text: str) -> MaskSpec:
        if text in ("all", "response", "last"):
            return cls(text)
        m = _LAST_K.match(text)
        if m and int(m.group(1)) > 0:
            return cls("last_k", int(m.group(1)))
        raise ConfigError(f"token mask {text!r}: expected all, response, last or last-K (K > 0)")


def token_mask(attention_mask: torch.Tensor, spec: MaskSpec,
               response_start: torch.Tensor | None = None, *, skip_first: int = 0) -> torch.Tensor:
    """Bool mask (B, T) of the positions to pool over.

    ``attention_mask``: (B, T) 0/1. ``response_start``: (B,) index, among the valid tokens of each
    row, of the first response token (required for ``response``). ``skip_first`` drops the first
    valid tokens of each row from ``all``/``response``/``last-K``: position 0 is an attention sink
    whose residual norm is orders of magnitude larger (SmolLM2: ~2e4 vs ~1e2 elsewhere), so it
    decides a max-pool in about half of the dimensions.
    """
    valid = attention_mask.bool()
    rank = valid.long().cumsum(dim=1) - 1  # (B, T): index among valid tokens
    n_valid = valid.sum(dim=1, keepdim=True)  # (B, 1)
    if spec.kind != "last":
        valid = valid & (rank >= skip_first)
    if spec.kind == "all":
        return valid
    if spec.kind == "last":
        return valid & (rank == n_valid - 1)
    if spec.kind == "last_k":
        return valid & (rank >= n_valid - spec.k)
    if spec.kind == "response":
        if response_start is None:
            raise ConfigError("token mask 'response' needs records with a prompt")
        return valid & (rank >= response_start.to(rank.device).unsqueeze(1))
    raise ConfigError(f"unknown token mask kind {spec.kind!r}")
