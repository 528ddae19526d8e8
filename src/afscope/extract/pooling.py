"""Per-sample pooling of a padded batch of activations over a token mask."""

from __future__ import annotations

import torch

from afscope.errors import ArtifactError


def pool(hidden: torch.Tensor, mask: torch.Tensor, kinds: list[str]) -> dict[str, torch.Tensor]:
    """Pool ``hidden`` (B, T, D) over ``mask`` (B, T) bool: returns ``{kind: (B, D) float32}``.

    Every row must have at least one selected token.
    """
    if not bool(mask.any(dim=1).all()):
        raise ArtifactError("a sample has no tokens under the token mask (empty response?)")
    h = hidden.float()
    m = mask.unsqueeze(-1)  # (B, T, 1)
    out: dict[str, torch.Tensor] = {}
    for kind in kinds:
        if kind == "max":
            out[kind] = h.masked_fill(~m, float("-inf")).amax(dim=1)
        elif kind == "mean":
            out[kind] = (h * m).sum(dim=1) / mask.sum(dim=1, keepdim=True)
        elif kind == "last":
            t = mask.shape[1]
            last = t - 1 - mask.flip(dims=[1]).long().argmax(dim=1)  # (B,)
            out[kind] = h[torch.arange(h.shape[0]), last]
        else:
            raise ArtifactError(f"unknown pooling {kind!r}")
    return out
