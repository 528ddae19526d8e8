"""Continuous tokens: vectors enter the explainer at placeholder positions of its prompt.

Two modes (after arXiv 2511.08579 / seed 000):

* ``replace``: the input embedding at each placeholder is replaced by the (projected) vector,
  rescaled to the mean norm of the explainer's token embeddings;
* ``add``: the (projected) vector, rescaled to the norm of the residual stream at that position,
  is added after block ``inject_layer`` (an early layer).

Only the *direction* of a vector is used (both modes rescale it), so a vector's scale in the target
model never has to match the explainer's. When the target's width differs from the explainer's, a
:class:`VectorProjector` maps it: one full-rank linear map per target layer, trained with the LoRA
adapter (it is registered as a module of the model and saved by peft via ``modules_to_save``).

Edits apply to the forward pass that sees the whole prompt (training, or the prefill of
generation); the cached decoding steps that follow see one token at a time and are left alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from afscope.errors import ConfigError
from afscope.models.hooks import decoder_layers, edit_residual

#: attribute name of the projector on the explainer's base model (peft ``modules_to_save``).
PROJECTOR_ATTR = "afscope_projector"
MODES: tuple[str, ...] = ("replace", "add")


class VectorProjector(nn.Module):
    """Per target layer, a full-rank ``Linear(d_target -> d_explainer)`` without bias.

    Initialised to the identity when the widths match, else with a seeded orthogonal matrix
    (which keeps directions apart). ``forward(vectors (N, d_target), layers (N,)) -> (N, d_expl)``.
    """

    def __init__(self, layers: Sequence[int], d_target: int, d_explainer: int, seed: int = 0
                 ) -> None:
        super().__init__()
        self.d_target, self.d_explainer = int(d_target), int(d_explainer)
        gen = torch.Generator().manual_seed(seed)
        maps = {}
        for layer in sorted(set(int(x) for x in layers)):
            lin = nn.Linear(d_target, d_explainer, bias=False)
            with torch.no_grad():
                if d_target == d_explainer:
                    lin.weight.copy_(torch.eye(d_target))
                else:
                    w = torch.empty(d_explainer, d_target)
                    nn.init.orthogonal_(w, generator=gen)
                    lin.weight.copy_(w)
            maps[f"L{layer}"] = lin
        self.maps = nn.ModuleDict(maps)

    @property
    def layers(self) -> list[int]:
        return [int(k[1:]) for k in self.maps]

    def forward(self, vectors: torch.Tensor, layers: torch.Tensor) -> torch.Tensor:
        w = next(iter(self.maps.values())).weight
        vectors = vectors.to(w.device, w.dtype)  # inputs follow the projector's place
        layers = layers.to(w.device)
        out = vectors.new_zeros(vectors.shape[0], self.d_explainer)
        for layer in layers.unique().tolist():
            key = f"L{layer}"
            if key not in self.maps:
                raise ConfigError(f"no projection for target layer {layer}; the projector has "
                                  f"layers {self.layers}")
            rows = layers == layer
            out = out.index_put((rows.nonzero(as_tuple=True)[0],), self.maps[key](vectors[rows]))
        return out


def find_projector(model: nn.Module) -> nn.Module | None:
    """The projector registered in ``model`` (possibly wrapped by peft), or None."""
    for name, module in model.named_modules():
        if name.endswith(PROJECTOR_ATTR) and not isinstance(module, VectorProjector):
            return module  # peft's ModulesToSaveWrapper: calls the trained copy
    for name, module in model.named_modules():
        if isinstance(module, VectorProjector):
            return module
    return None


def attach_projector(model: nn.Module, projector: VectorProjector) -> None:
    """Register ``projector`` on ``model`` (before peft wraps it) so it trains and saves with it.

    It moves to the device of the model's inputs but keeps its own dtype (float32 by default: it
    trains in full, like the LoRA weights, also when the model is bf16)."""
    projector.to(next(model.parameters()).device)
    setattr(model, PROJECTOR_ATTR, projector)


@dataclass
class VectorBatch:
    """The continuous tokens of one padded batch.

    ``vectors (B, K, d_target)``, ``layers (B, K)`` target layer of each vector, ``positions (B, K)``
    token index in the padded batch (``-1`` = no vector in that slot).
    """

    vectors: torch.Tensor
    layers: torch.Tensor
    positions: torch.Tensor

    @property
    def empty(self) -> bool:
        return bool((self.positions < 0).all())

    def shifted(self, offsets: torch.Tensor) -> VectorBatch:
        """Positions moved right by ``offsets (B,)`` (left padding), pad slots kept at -1."""
        pos = torch.where(self.positions >= 0, self.positions + offsets[:, None], self.positions)
        return VectorBatch(self.vectors, self.layers, pos)


def embedding_norm(model: nn.Module, n_ids: int = 4096) -> float:
    """Mean L2 norm of the explainer's input-embedding *outputs* (the scale of a ``replace``
    token), over ``n_ids`` evenly spaced token ids: measured on the module's output, not its
    weight, because some embeddings scale it (Gemma multiplies by sqrt(d_model))."""
    emb = model.get_input_embeddings()
    vocab = emb.weight.shape[0]
    ids = torch.linspace(0, vocab - 1, min(n_ids, vocab)).long().to(emb.weight.device)
    with torch.no_grad():
        return float(emb(ids[None, :])[0].float().norm(dim=-1).mean())


def _directions(batch: VectorBatch, projector: nn.Module | None, d_model: int,
                like: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Index ``(rows, cols)`` of the filled slots and their unit directions ``(N, d_model)``
    (float32: the caller scales them, then casts), both on the device of ``like``."""
    rows, slots = (batch.positions >= 0).nonzero(as_tuple=True)
    v = batch.vectors[rows, slots].float()
    if projector is not None:
        v = projector(v, batch.layers[rows, slots]).float()
    elif v.shape[-1] != d_model:
        raise ConfigError(f"vector width {v.shape[-1]} differs from the explainer's d_model "
                          f"{d_model} and no projection is configured (set projection: linear)")
    v = v.to(like.device)
    v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    cols = batch.positions[rows, slots]
    return (rows.to(like.device), cols.to(like.device)), v


@contextlib.contextmanager
def inject(model: nn.Module, batch: VectorBatch | None, *, mode: str = "replace",
           inject_layer: int = 1, embed_norm: float | None = None,
           seq_len: int | None = None) -> Iterator[None]:
    """Hooks that put ``batch``'s vectors at their positions for the next forward pass(es).

    ``seq_len``: the full prompt length; only a forward over that many tokens is edited (the
    prefill), so cached generation steps pass through. Default: every forward is edited.
    """
    if mode not in MODES:
        raise ConfigError(f"injection mode {mode!r}: expected one of {list(MODES)}")
    if batch is None or batch.empty:
        yield
        return
    projector = find_projector(model)
    emb = model.get_input_embeddings()
    d_model = emb.weight.shape[1]

    def applies(h: torch.Tensor) -> bool:
        return seq_len is None or h.shape[1] == seq_len

    if mode == "replace":
        scale = embed_norm if embed_norm is not None else embedding_norm(model)

        def hook(_m: nn.Module, _i: object, out: torch.Tensor) -> torch.Tensor:
            if not applies(out):
                return out
            idx, v = _directions(batch, projector, d_model, out)
            return out.index_put(idx, (scale * v).to(out.dtype))

        handle = emb.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()
        return

    n_layers = len(decoder_layers(model))
    if not 0 <= inject_layer < n_layers:
        raise ConfigError(f"inject_layer {inject_layer}: the explainer has {n_layers} layers")

    def add(h: torch.Tensor) -> torch.Tensor:
        if not applies(h):
            return h
        idx, v = _directions(batch, projector, d_model, h)
        norms = h[idx].detach().float().norm(dim=-1, keepdim=True)  # (N, 1), fp32 for bf16 h
        return h.index_put(idx, (norms * v).to(h.dtype), accumulate=True)

    with edit_residual(model, {inject_layer: add}):
        yield
