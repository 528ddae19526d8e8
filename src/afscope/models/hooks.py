"""Read and write the residual stream at named layers, always behind context managers.

Layer ``i`` means the residual stream *after* decoder block ``i`` (0-based), i.e.
``hidden_states[i + 1]`` of ``output_hidden_states=True``. Layers may be given as an int, a
negative int (``-1`` = last block) or a float fraction of depth in ``[0, 1]``
(``round(f * (n_layers - 1))``). Hooks are removed in ``finally`` on exit, also on exceptions.

``record_residual(..., stop=True)`` stops the forward pass right after the deepest requested block
(the remaining blocks and the LM head never run), which is most of the saving of ``extract``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from afscope.errors import ConfigError

LayerSpec = int | float | str


class StopForward(Exception):
    """Raised by a hook to end a forward pass early; swallowed by :func:`record_residual`."""


_LAYER_PATHS = ("model.layers", "model.language_model.layers", "model.model.layers",
                "language_model.model.layers", "transformer.h", "gpt_neox.layers", "layers")


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The list of decoder blocks of an HF causal LM (llama, gemma3, mistral, qwen, gpt2, ...)."""
    for path in _LAYER_PATHS:
        obj: Any = model
        for attr in path.split("."):
            obj = getattr(obj, attr, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList) and len(obj) > 0:
            return obj
    raise ConfigError(f"cannot find the decoder layers of {type(model).__name__}; "
                      f"looked at {', '.join(_LAYER_PATHS)}")


def resolve_layer(spec: LayerSpec, n_layers: int) -> int:
    """Turn an int / negative int / fraction (or their string forms) into a block index."""
    value: int | float = spec  # type: ignore[assignment]
    if isinstance(spec, str):
        try:
            value = float(spec) if any(c in spec for c in ".eE") else int(spec)
        except ValueError:
            raise ConfigError(f"layer {spec!r}: expected an int, a negative int or a fraction "
                              "like 0.5") from None
    if isinstance(value, bool):
        raise ConfigError(f"layer {spec!r}: expected a number")
    if isinstance(value, float):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"layer {spec!r}: a fractional layer must be in [0, 1]")
        return int(round(value * (n_layers - 1)))
    idx = value + n_layers if value < 0 else value
    if not 0 <= idx < n_layers:
        raise ConfigError(f"layer {spec!r} is out of range for a model with {n_layers} layers")
    return int(idx)


def resolve_layers(specs: Sequence[LayerSpec], n_layers: int) -> list[int]:
    """Resolve and de-duplicate, keeping the ascending order that the cache stores."""
    return sorted({resolve_layer(s, n_layers) for s in specs})


def _hidden(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _replace_hidden(output: Any, hidden: torch.Tensor) -> Any:
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


@contextlib.contextmanager
def record_residual(model: nn.Module, layers: Sequence[int], *, stop: bool = False,
                    detach: bool = True) -> Iterator[dict[int, torch.Tensor]]:
    """Capture the residual stream after each block in ``layers``.

    Yields a dict filled during the forward pass: ``{layer: (B, T, D) tensor}``. With ``stop=True``
    the forward pass ends after the deepest layer: statements after the forward call inside the
    ``with`` block are skipped, so make the forward call the block's last statement.
    """
    blocks = decoder_layers(model)
    acts: dict[int, torch.Tensor] = {}
    deepest = max(layers)
    handles = []

    def make_hook(i: int) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            h = _hidden(output)
            acts[i] = h.detach() if detach else h
            if stop and i == deepest:
                raise StopForward

        return hook

    try:
        for i in sorted(set(layers)):
            handles.append(blocks[i].register_forward_hook(make_hook(i)))
        yield acts
    except StopForward:
        pass
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def edit_residual(model: nn.Module, edits: dict[int, Callable[[torch.Tensor], torch.Tensor]]
                  ) -> Iterator[None]:
    """Replace the residual stream after block ``i`` by ``edits[i](hidden)`` (hidden: (B, T, D))."""
    blocks = decoder_layers(model)
    handles = []

    def make_hook(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[..., Any]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
            return _replace_hidden(output, fn(_hidden(output)))

        return hook

    try:
        for i, fn in edits.items():
            handles.append(blocks[i].register_forward_hook(make_hook(fn)))
        yield
    finally:
        for h in handles:
            h.remove()


def add_to_residual(model: nn.Module, vectors: dict[int, torch.Tensor], *, alpha: float = 1.0,
                    positions: torch.Tensor | None = None) -> contextlib.AbstractContextManager:
    """Add ``alpha * vectors[i]`` (shape (D,)) after block ``i``; ``positions`` is an optional
    (B, T) bool mask of the token positions to change (all positions when None).

    The vectors may live anywhere (CPU, float32): each hook puts ``alpha * v`` on the device and
    dtype of the hidden state it edits, so sharded (``device_map``) and bf16 models work too."""

    def make(v: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        cache: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

        def fn(h: torch.Tensor) -> torch.Tensor:
            key = (h.device, h.dtype)
            if key not in cache:  # scaled in float32, cast once per device/dtype (not per step)
                cache[key] = (alpha * v.detach().to(h.device, torch.float32)).to(h.dtype)
            delta = cache[key]
            if positions is None:
                return h + delta
            return h + positions.to(h.device).unsqueeze(-1).to(h.dtype) * delta

        return fn

    return edit_residual(model, {i: make(v) for i, v in vectors.items()})
