"""Steering vectors: per-layer residual directions with provenance, saved as one safetensors file.

A :class:`SteeringVector` maps a resolved block index to a ``(d_model,)`` float32 direction that the
generation engine adds (times ``alpha``) to the residual stream after that block. The file format is
the ``steering-vectors`` / seed 003 habit made self-describing:

* tensors ``layer.<i>`` of shape ``(d_model,)`` float32, one per layer;
* string metadata ``kind`` (``afscope_steering_vector``), ``format_version``, ``afscope_version``,
  ``model`` (name), ``model_fingerprint`` (:attr:`afscope.models.ModelInfo.fingerprint` or empty),
  ``d_model``, ``layers`` (JSON list of the ``i`` of the tensors), ``site`` (``resid_post``: the
  residual stream after block ``i``, TransformerLens' ``blocks.<i>.hook_resid_post``), ``source``
  (the method: ``diffmean`` / ``refusal`` / ``random`` / ``probe`` / ``sae``), ``created_from`` (JSON provenance) and
  ``norms`` (JSON ``{layer: L2 norm}``).

Any safetensors reader opens it without afscope (``safetensors.numpy.load_file`` gives
``{"layer.<i>": array}``, ``safe_open(...).metadata()`` the fields above).

Loading reads only safetensors (never pickle) and refuses a vector made for another width or, unless
told otherwise, another model: a direction means nothing in a different residual basis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import afscope
from afscope.errors import ArtifactError
from afscope.fileio import atomic_path

KIND = "afscope_steering_vector"
FORMAT_VERSION = 1
VECTOR_FILE = "vector.safetensors"
SOURCES = ("diffmean", "refusal", "random", "probe", "sae")
#: Where a layer's direction is added: the residual stream after that block (afscope.models.hooks).
SITE = "resid_post"
_PREFIX = "layer."


@dataclass(frozen=True)
class SteeringVector:
    """Directions per layer plus what they were made from.

    Parameters
    ----------
    vectors:
        Resolved block index -> ``(d_model,)`` float32 tensor (the residual stream *after* that
        block, as in :mod:`afscope.models.hooks`).
    model:
        Name of the model the directions live in (embedded name, folder or hub id); may be None
        when only the fingerprint is known (a probe records just the fingerprint).
    model_fingerprint:
        :attr:`afscope.models.ModelInfo.fingerprint` of those weights, or None if unknown.
    source:
        One of :data:`SOURCES`.
    created_from:
        JSON-able provenance (dataset content hashes, probe / SAE path and hash, feature index...).
    """

    vectors: dict[int, torch.Tensor]
    model: str | None
    model_fingerprint: str | None
    source: str
    created_from: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.vectors:
            raise ArtifactError("a steering vector needs at least one layer")
        widths = {int(v.shape[-1]) for v in self.vectors.values()}
        if len(widths) != 1 or any(v.dim() != 1 for v in self.vectors.values()):
            raise ArtifactError(f"steering vector: every layer needs one (d_model,) tensor of the "
                                f"same width; got shapes "
                                f"{ {k: tuple(v.shape) for k, v in self.vectors.items()} }")
        if self.source not in SOURCES:
            raise ArtifactError(f"steering vector: source {self.source!r} is not one of "
                                f"{', '.join(SOURCES)}")
        for layer, v in self.vectors.items():
            if not torch.isfinite(v).all():
                raise ArtifactError(f"steering vector: layer {layer} contains NaN or inf values")
        ordered = {int(k): v.detach().to("cpu", torch.float32).contiguous()
                   for k, v in sorted(self.vectors.items())}
        object.__setattr__(self, "vectors", ordered)

    @property
    def layers(self) -> list[int]:
        return list(self.vectors)

    @property
    def d_model(self) -> int:
        return int(next(iter(self.vectors.values())).shape[0])

    @property
    def norms(self) -> dict[int, float]:
        """L2 norm of each layer's direction: what ``alpha`` multiplies."""
        return {k: float(v.norm()) for k, v in self.vectors.items()}

    def at(self, layer: int) -> torch.Tensor:
        """The ``(d_model,)`` direction of ``layer``; ArtifactError naming the stored layers."""
        if layer not in self.vectors:
            raise ArtifactError(f"steering vector ({self.source}) has no direction for layer "
                                f"{layer}; it has layers {self.layers}")
        return self.vectors[layer]

    def check_model(self, info: Any, *, where: str = "steering vector",
                    allow_other_model: bool = False) -> None:
        """Refuse to steer a model of another width, or (unless allowed) other weights.

        ``info`` is an :class:`afscope.models.ModelInfo`.
        """
        if info.d_model != self.d_model:
            raise ArtifactError(f"{where}: width {self.d_model} does not match d_model="
                                f"{info.d_model} of model {info.name}")
        if allow_other_model or self.model_fingerprint is None:
            return
        if self.model_fingerprint != info.fingerprint:
            raise ArtifactError(
                f"{where}: made for model {self.model or '<unknown name>'} (fingerprint "
                f"{self.model_fingerprint[:12]}), not {info.name} ({info.fingerprint[:12]}); "
                "pass --allow-other-model to steer it anyway")

    def metadata(self) -> dict[str, str]:
        """The string metadata written to the safetensors header."""
        return {
            "kind": KIND, "format_version": str(FORMAT_VERSION),
            "afscope_version": afscope.__version__, "model": self.model or "",
            "model_fingerprint": self.model_fingerprint or "", "d_model": str(self.d_model),
            "layers": json.dumps(self.layers), "site": SITE, "source": self.source,
            "created_from": json.dumps(self.created_from, sort_keys=True),
            "norms": json.dumps({str(k): v for k, v in self.norms.items()}, sort_keys=True),
        }

    def save(self, path: str | Path) -> Path:
        """Write to ``path`` (a ``.safetensors`` file) atomically; see :func:`save_vector`."""
        return save_vector(self, path)


def save_vector(vector: SteeringVector, path: str | Path) -> Path:
    """Write ``vector`` as ``layer.<i>`` tensors plus string metadata, through a temp file."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {f"{_PREFIX}{k}": v for k, v in vector.vectors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=vector.metadata())
    return path


def _meta_json(meta: dict[str, str], key: str, path: Path) -> Any:
    try:
        return json.loads(meta.get(key) or "{}")
    except ValueError:
        raise ArtifactError(f"{path}: metadata field {key!r} is not valid JSON") from None


def load_vector(path: str | Path, *, model: Any = None,
                allow_other_model: bool = False) -> SteeringVector:
    """Read a file written by :func:`save_vector`; with ``model`` (a ``ModelInfo``), also check
    that the vector was made for it (:meth:`SteeringVector.check_model`).

    A folder is accepted too and means ``folder/vector.safetensors`` (the run directory of
    ``afscope steer vector``).
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if path.is_dir():
        path = path / VECTOR_FILE
    if not path.is_file():
        raise ArtifactError(f"{path}: steering vector file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iter)
    except (SafetensorError, OSError, ValueError) as e:
        raise ArtifactError(f"{path}: cannot read safetensors: {e}") from None
    if meta.get("kind") != KIND:
        raise ArtifactError(f"{path}: metadata field 'kind': expected {KIND!r}, got "
                            f"{meta.get('kind')!r}")
    version = meta.get("format_version", "")
    if not version.isdigit() or int(version) > FORMAT_VERSION:
        raise ArtifactError(f"{path}: metadata field 'format_version': {version!r} is not "
                            f"supported (this afscope reads <= {FORMAT_VERSION}); upgrade afscope")
    vectors: dict[int, torch.Tensor] = {}
    for name, t in tensors.items():
        index = name.removeprefix(_PREFIX)
        if not name.startswith(_PREFIX) or not index.isdigit():
            raise ArtifactError(f"{path}: tensor {name!r}: expected names 'layer.<int>'")
        vectors[int(index)] = t
    d_model = meta.get("d_model", "")
    try:
        vec = SteeringVector(vectors=vectors, model=meta.get("model") or None,
                             model_fingerprint=meta.get("model_fingerprint") or None,
                             source=meta.get("source", ""),
                             created_from=_meta_json(meta, "created_from", path))
    except ArtifactError as e:
        raise ArtifactError(f"{path}: {e}") from None
    if str(vec.d_model) != d_model:
        raise ArtifactError(f"{path}: metadata field 'd_model' is {d_model!r} but the tensors "
                            f"have width {vec.d_model}")
    if "layers" in meta and _meta_json(meta, "layers", path) != vec.layers:
        raise ArtifactError(f"{path}: metadata field 'layers' is {meta['layers']!r} but the "
                            f"tensors are layers {vec.layers}")
    if model is not None:
        vec.check_model(model, where=str(path), allow_other_model=allow_other_model)
    return vec
