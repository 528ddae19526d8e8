"""Steering during generation: add ``alpha * v`` to the residual stream, per row, at chosen positions.

Rows of one batch may carry different steering (other vectors, layers, alphas or positions), so a
sweep's conditions share batches. For each hooked block the engine builds a ``(B, D)`` delta (zero
for rows not steered there) and two masks: which prompt positions get it in the prefill forward
(``(B, T)``) and which rows get it on every generated token (``(B,)``). The first forward through a
block is the prefill; later ones each see one new token (KV cache).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from afscope.errors import ConfigError
from afscope.fileio import sha256_bytes
from afscope.models.hooks import edit_residual

Positions = Literal["prompt", "generated", "both", "last"]
POSITIONS: tuple[str, ...] = ("prompt", "generated", "both", "last")


@dataclass(frozen=True)
class Steering:
    """Add ``alpha * vectors[i]`` after block ``i`` (resolved index; ``(d_model,)`` tensors).

    ``positions``: ``"prompt"`` (every non-pad prompt token), ``"generated"`` (each new token),
    ``"both"``, or ``"last"`` (the last prompt token and each new token: seed 000's hook).
    """

    vectors: dict[int, torch.Tensor]
    alpha: float = 1.0
    positions: Positions = "both"
    _key: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.positions not in POSITIONS:
            raise ConfigError(f"steering: field 'positions': expected one of {POSITIONS}, "
                              f"got {self.positions!r}")
        if not self.vectors:
            raise ConfigError("steering: no vectors given")
        for layer, v in self.vectors.items():
            if v.ndim != 1:
                raise ConfigError(f"steering: layer {layer}: expected a (d_model,) vector, got "
                                  f"shape {tuple(v.shape)}")
            if not torch.isfinite(v).all():
                raise ConfigError(f"steering: layer {layer}: the vector has non-finite values")

    def key(self) -> str:
        """A content hash of vectors, alpha and positions: the identity of a steered condition."""
        if not self._key:
            h = [f"{self.alpha!r}|{self.positions}"]
            for layer in sorted(self.vectors):
                v = self.vectors[layer].detach().to("cpu", torch.float32).contiguous()
                h.append(f"{layer}:{sha256_bytes(v.numpy().tobytes())}")
            object.__setattr__(self, "_key", sha256_bytes("\n".join(h).encode())[:16])
        return self._key


def check_width(steering: Steering, d_model: int) -> None:
    for layer, v in steering.vectors.items():
        if v.shape[0] != d_model:
            raise ConfigError(f"steering: layer {layer}: vector width {v.shape[0]} differs from the "
                              f"model's d_model {d_model}")


@contextlib.contextmanager
def steer_batch(model: nn.Module, rows: Sequence[Steering | None], attention: torch.Tensor
                ) -> Iterator[None]:
    """Hooks for one left-padded batch (``attention``: (B, T) prompt mask) with per-row steering."""
    layers = sorted({i for s in rows if s is not None for i in s.vectors})
    if not layers:
        yield
        return
    B, T = attention.shape
    # Built once in float32 on the inputs' device, then cast per hooked block to the dtype and
    # device of the hidden state it edits (bf16 models; blocks on other GPUs under device_map).
    device = next(model.parameters()).device
    prompt_mask = torch.zeros(B, T, dtype=torch.float32)
    gen_rows = torch.zeros(B, dtype=torch.float32)
    for r, s in enumerate(rows):
        if s is None:
            continue
        if s.positions in ("prompt", "both"):
            prompt_mask[r] = attention[r].to("cpu", torch.float32)
        elif s.positions == "last":
            prompt_mask[r, T - 1] = 1.0
        if s.positions in ("generated", "both", "last"):
            gen_rows[r] = 1.0
    prompt_mask, gen_rows = prompt_mask.to(device), gen_rows.to(device)
    deltas: dict[int, torch.Tensor] = {}
    for i in layers:
        d = torch.zeros(B, _width(rows, i), dtype=torch.float32)
        for r, s in enumerate(rows):
            if s is not None and i in s.vectors:
                d[r] = s.alpha * s.vectors[i].detach().to("cpu", torch.float32)
        deltas[i] = d.to(device)
    calls = dict.fromkeys(layers, 0)
    placed: dict[tuple[int, torch.device, torch.dtype], tuple[torch.Tensor, ...]] = {}

    def on(i: int, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(prompt (B, T, 1), generated (B, 1, 1), delta (B, 1, D))`` in ``h``'s place."""
        key = (i, h.device, h.dtype)
        if key not in placed:
            placed[key] = tuple(x.to(h.device, h.dtype) for x in (
                prompt_mask[:, :, None], gen_rows[:, None, None], deltas[i][:, None, :]))
        return placed[key]

    def make(i: int):
        def fn(h: torch.Tensor) -> torch.Tensor:  # h: (B, t, D)
            first = calls[i] == 0
            calls[i] += 1
            prompt, gen, delta = on(i, h)
            if first and h.shape[1] == T:
                return h + prompt * delta
            return h + gen * delta

        return fn

    with edit_residual(model, {i: make(i) for i in layers}):
        yield


def _width(rows: Sequence[Steering | None], layer: int) -> int:
    return next(s.vectors[layer].shape[0] for s in rows if s is not None and layer in s.vectors)
