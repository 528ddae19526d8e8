"""Sparse latents in the cache: per-sample max/mean per latent (CSR) and per-token top-k.

``extract`` knows nothing of SAEs: it accepts any :class:`LatentEncoder` (an object mapping
activations ``(N, d_in)`` to non-negative latents ``(N, width)``) and stores what the seeds wanted
but could not afford: per sample, the max and mean of every latent over the masked tokens and the
token position of the max, kept sparse because most latents never fire on a sample; and, when asked,
the top-k latents of every masked token (for token highlights in the feature browser).
:func:`afscope.sae.sae_encoder` wraps an SAE as such an encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from afscope.errors import ArtifactError


class LatentEncoder(Protocol):
    """What ``extract`` needs from an SAE: its layer, widths, identity and ``encode``."""

    layer: int
    d_in: int
    width: int

    def identity(self) -> dict[str, Any]:
        """JSON-able description that goes into the cache fingerprint (e.g. the weights' sha256)."""
        ...

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, d_in) -> (N, width)`` non-negative latents."""
        ...


@dataclass
class SampleLatents:
    """One sample's non-zero latents: ids ascending, their max and mean over masked tokens, and
    the token position of the max."""

    indices: np.ndarray  # (nnz,) int32
    max: np.ndarray  # (nnz,) float32
    mean: np.ndarray  # (nnz,) float32
    argmax: np.ndarray  # (nnz,) int32


@dataclass
class TokenLatents:
    """Top-k latents of each masked token of a batch (rows are batch-local)."""

    row: np.ndarray  # (m,) int64 index into the batch
    pos: np.ndarray  # (m,) int32 token position
    token_id: np.ndarray  # (m,) int32
    indices: np.ndarray  # (m, k) int32
    values: np.ndarray  # (m, k) float32


@torch.inference_mode()
def encode_batch(encoder: LatentEncoder, hidden: torch.Tensor, mask: torch.Tensor,
                 input_ids: torch.Tensor, token_topk: int = 0
                 ) -> tuple[list[SampleLatents], TokenLatents | None]:
    """Encode the masked tokens of ``hidden (B, T, d_in)`` and reduce them per sample.

    ``mask (B, T)`` bool selects tokens (every row has one, checked by pooling first). Latents are
    computed for masked tokens only, ``(N_masked, width)`` at a time, so memory scales with the
    batch's token budget, not with the dataset.
    """
    rows, pos = mask.nonzero(as_tuple=True)  # row-major: tokens of row 0 first
    f = encoder.encode(hidden[rows, pos].float()).float()  # (N, width)
    if not bool(torch.isfinite(f).all()):
        raise ArtifactError(f"non-finite latents at layer {encoder.layer}")
    counts = mask.sum(dim=1).tolist()
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).tolist()
    samples: list[SampleLatents] = []
    for part, offset in zip(torch.split(f, counts), offsets):  # part: (n_r, width)
        mx, arg = part.max(dim=0)
        nz = (mx > 0).nonzero(as_tuple=True)[0]
        positions = pos[offset + arg[nz]]
        samples.append(SampleLatents(
            indices=nz.to(torch.int32).cpu().numpy(),
            max=mx[nz].cpu().numpy().astype(np.float32),
            mean=(part[:, nz].sum(dim=0) / part.shape[0]).cpu().numpy().astype(np.float32),
            argmax=positions.to(torch.int32).cpu().numpy()))
    tokens = None
    if token_topk > 0:
        top = torch.topk(f, min(token_topk, f.shape[1]), dim=-1)
        tokens = TokenLatents(
            row=rows.cpu().numpy().astype(np.int64), pos=pos.cpu().numpy().astype(np.int32),
            token_id=input_ids[rows, pos].cpu().numpy().astype(np.int32),
            indices=top.indices.to(torch.int32).cpu().numpy(),
            values=top.values.cpu().numpy().astype(np.float32))
    return samples, tokens


def pack_csr(samples: list[SampleLatents]) -> dict[str, np.ndarray]:
    """Rows in order -> CSR arrays ``indptr (n+1,) int64`` and ``indices/max/mean/argmax (nnz,)``."""
    indptr = np.zeros(len(samples) + 1, dtype=np.int64)
    np.cumsum([len(s.indices) for s in samples], out=indptr[1:])

    def cat(name: str, dtype: Any) -> np.ndarray:
        parts = [getattr(s, name) for s in samples]
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    return {"indptr": indptr, "indices": cat("indices", np.int32), "max": cat("max", np.float32),
            "mean": cat("mean", np.float32), "argmax": cat("argmax", np.int32)}
