"""Save and load SAEs as SAELens folders: ``cfg.json`` + ``sae_weights.safetensors``.

The writer emits the SAELens keys (``architecture``, ``d_in``, ``d_sae``, ``dtype``, ``k``,
``apply_b_dec_to_input``, ``normalize_activations``) plus ``kind``, ``format_version`` and
``afscope_version``. The reader accepts folders SAELens wrote, including older spellings
(``activation_fn_str``/``activation_fn`` + ``activation_fn_kwargs``, architecture ``standard``,
provenance under ``metadata``). Weights go through safetensors only; nothing is unpickled.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import afscope
from afscope.config import format_validation_error
from afscope.errors import ArtifactError
from afscope.fileio import atomic_dir, atomic_write_json, read_json_object
from afscope.sae.base import ARCHITECTURES, SAE
from afscope.sae.config import SAEConfig

log = logging.getLogger(__name__)

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
KIND = "sae"
FORMAT_VERSION = 1

_ARCH_ALIASES = {"standard": "relu"}
# SAELens keys that carry nothing an inference-time SAE needs: dropped without a warning.
_IGNORED_KEYS = frozenset({
    "kind", "format_version", "afscope_version", "device", "metadata", "model_name", "hook_name",
    "hook_layer", "hook_head_index", "context_size", "prepend_bos", "dataset_path",
    "dataset_trust_remote_code", "sae_lens_training_version", "sae_lens_version",
    "model_from_pretrained_kwargs", "neuronpedia_id", "seqpos_slice", "reshape_activations",
    "finetuning_scaling_factor", "activation_fn_str", "activation_fn", "activation_fn_kwargs",
    "normalize_activations", "exclude_special_tokens", "model_class_name",
})


def save_sae(sae: SAE, folder: str | Path) -> Path:
    """Write ``sae`` to ``folder`` (replaced atomically): ``cfg.json`` + weights safetensors."""
    cfg = sae.cfg
    data: dict[str, Any] = {
        "kind": KIND, "format_version": FORMAT_VERSION, "afscope_version": afscope.__version__,
        "architecture": cfg.architecture, "d_in": cfg.d_in, "d_sae": cfg.d_sae,
        "dtype": cfg.dtype, "apply_b_dec_to_input": cfg.apply_b_dec_to_input,
        "normalize_activations": "none",
    }
    if cfg.k is not None:
        data["k"] = cfg.k
    for key in ("model_name", "hook_name", "hook_layer"):
        if getattr(cfg, key) is not None:
            data[key] = getattr(cfg, key)
    tensors = {n: p.detach().cpu().contiguous() for n, p in sae.named_parameters()}
    with atomic_dir(folder) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        atomic_write_json(tmp / CFG_FILE, data)
    return Path(folder)


def _architecture(raw: dict[str, Any], path: Path) -> tuple[str, int | None]:
    """Architecture name and k from a new (``architecture``) or old (``activation_fn*``) cfg."""
    k = raw.get("k")
    arch = raw.get("architecture")
    act = raw.get("activation_fn_str", raw.get("activation_fn"))
    kwargs = raw.get("activation_fn_kwargs") or {}
    if arch is None or (arch == "standard" and act == "topk"):
        if act is None:
            raise ArtifactError(f"{path}: field 'architecture': missing (and no "
                                f"'activation_fn_str' to infer it from)")
        arch = act
    arch = _ARCH_ALIASES.get(str(arch), str(arch))
    if arch not in ARCHITECTURES:
        raise ArtifactError(f"{path}: field 'architecture': unknown {arch!r}; "
                            f"expected one of {sorted(ARCHITECTURES)}")
    if arch == "topk" and k is None:
        k = kwargs.get("k") if isinstance(kwargs, dict) else None
        if k is None:
            raise ArtifactError(f"{path}: field 'k': required for a topk SAE (also looked in "
                                f"'activation_fn_kwargs')")
    return arch, (k if arch == "topk" else None)


def read_sae_config(folder: str | Path) -> SAEConfig:
    """Parse ``folder/cfg.json`` into an :class:`SAEConfig` (unknown keys logged, not fatal)."""
    path = Path(folder) / CFG_FILE
    if not Path(folder).is_dir():
        raise ArtifactError(f"{folder}: SAE folder not found")
    raw = read_json_object(path, "an SAE folder")
    arch, k = _architecture(raw, path)
    norm = raw.get("normalize_activations")
    if norm not in (None, "none"):
        raise ArtifactError(f"{path}: field 'normalize_activations': {norm!r} is not supported "
                            f"(expected 'none'); normalize inputs before encoding")
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    dtype = str(raw.get("dtype", "float32")).removeprefix("torch.")
    fields: dict[str, Any] = {
        "architecture": arch, "d_in": raw.get("d_in"), "d_sae": raw.get("d_sae"), "k": k,
        "dtype": dtype, "apply_b_dec_to_input": raw.get("apply_b_dec_to_input", True),
    }
    for key in ("model_name", "hook_name", "hook_layer"):
        fields[key] = raw.get(key, meta.get(key))
    unknown = sorted(set(raw) - set(fields) - _IGNORED_KEYS)
    if unknown:
        log.warning("%s: ignoring unknown keys %s", path, unknown)
    try:
        return SAEConfig.model_validate(fields)
    except ValidationError as e:
        raise ArtifactError(format_validation_error(e, str(path))) from None


def load_sae(folder: str | Path, device: str | torch.device = "cpu") -> SAE:
    """Load an SAE folder written by :func:`save_sae` or by SAELens; checks shapes and NaNs."""
    folder = Path(folder)
    cfg = read_sae_config(folder)
    wpath = folder / WEIGHTS_FILE
    if not wpath.is_file():
        raise ArtifactError(f"{wpath}: weights file not found")
    try:
        state = load_file(str(wpath), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ArtifactError(f"{wpath}: cannot read safetensors: {e}") from None
    if "threshold" not in state and "log_threshold" in state:  # SAELens training-time JumpReLU
        state["threshold"] = state.pop("log_threshold").exp()
    sae = SAE(cfg)
    expected = sae.expected_shapes()
    for name, shape in expected.items():
        if name not in state:
            raise ArtifactError(f"{wpath}: tensor {name!r} missing ({cfg.architecture} SAE needs "
                                f"{sorted(expected)})")
        got = tuple(state[name].shape)
        if got != shape:
            raise ArtifactError(f"{wpath}: tensor {name!r} has shape {got}, expected {shape} "
                                f"from {CFG_FILE} (d_in={cfg.d_in}, d_sae={cfg.d_sae})")
        if not torch.isfinite(state[name].float()).all():
            raise ArtifactError(f"{wpath}: tensor {name!r} contains NaN or inf values")
    extra = sorted(set(state) - set(expected))
    if extra:
        log.warning("%s: ignoring unknown tensors %s", wpath, extra)
    sae.load_state_dict({n: state[n] for n in expected})
    return sae.to(device)
