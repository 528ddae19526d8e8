"""Save and load SAEs as SAELens folders: ``cfg.json`` + ``sae_weights.safetensors``.

The writer emits the layout SAELens 6 loads natively (``SAE.load_from_disk``, no pre-6.0 shim):

* ``architecture``: ``standard`` (afscope's ``relu``), ``topk`` or ``jumprelu``;
* ``d_in``, ``d_sae``, ``dtype``, ``apply_b_dec_to_input``, ``normalize_activations: "none"``,
  ``reshape_activations: "none"``; TopK adds ``k`` and ``rescale_acts_by_decoder_norm``;
* ``metadata``: ``sae_lens_version`` (the SAELens layout followed, :data:`SAELENS_FORMAT`; it is
  what tells SAELens the folder is not pre-6.0) and the provenance ``model_name``, ``hook_name``,
  ``hook_layer``;
* afscope's own ``kind``, ``format_version``, ``afscope_version`` (SAELens ignores them).

The reader takes SAELens 6 folders, older SAELens ones (``activation_fn_str``/``activation_fn`` +
``activation_fn_kwargs``, ``hook_point``, provenance at the top level) and afscope's format 1
(``architecture: "relu"``). Every key that changes the math is implemented or refused with an
:class:`~afscope.errors.ArtifactError` that names the file and the key; only provenance and
training-only keys are skipped. Weights go through safetensors only; nothing is unpickled.
"""

from __future__ import annotations

import logging
import re
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
from afscope.sae.base import SAE
from afscope.sae.config import ARCH_ALIASES, SAEConfig

log = logging.getLogger(__name__)

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
KIND = "sae"
FORMAT_VERSION = 2
"""2: SAELens 6 layout (``standard``, ``metadata``); 1: ``relu``, provenance at the top level."""
SAELENS_FORMAT = "6.0.0"
"""``metadata.sae_lens_version`` written: SAELens reads folders older than 6.0 through a shim."""

_SAELENS_NAME = {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu"}
_LEGACY_RENAMES = {"hook_point": "hook_name", "hook_point_layer": "hook_layer",
                   "hook_point_head_index": "hook_head_index", "activation_fn_str": "activation_fn"}
# Keys read by read_sae_config / load_sae (each implemented or refused there).
_MATH_KEYS = frozenset({
    "architecture", "d_in", "d_sae", "dtype", "k", "apply_b_dec_to_input",
    "rescale_acts_by_decoder_norm", "normalize_activations", "reshape_activations",
    "activation_fn", "activation_fn_kwargs", "finetuning_scaling_factor",
})
# Provenance, placement and training-only keys (SAELens training configs): no effect on the math.
_INERT_KEYS = frozenset({
    "kind", "format_version", "afscope_version", "device", "metadata", "model_name", "hook_name",
    "hook_layer", "hook_head_index", "context_size", "prepend_bos", "dataset_path",
    "dataset_trust_remote_code", "sae_lens_training_version", "sae_lens_version",
    "model_from_pretrained_kwargs", "neuronpedia_id", "seqpos_slice", "exclude_special_tokens",
    "model_class_name", "hf_hook_name", "decoder_init_norm", "l1_coefficient", "lp_norm",
    "l1_warm_up_steps", "use_sparse_activations", "aux_loss_coefficient",
    "jumprelu_init_threshold", "jumprelu_bandwidth", "jumprelu_sparsity_loss_mode",
    "jumprelu_ste_to_input", "jumprelu_tanh_scale", "l0_coefficient", "l0_warm_up_steps",
    "pre_act_loss_coefficient", "target_l0",
})
_NORMALIZE_HINT = {
    "expected_average_only_in": "inputs scaled by a dataset constant that is not in the folder; "
                                "fold it into W_enc, W_dec and b_dec and write 'none'",
    "constant_norm_rescale": "each input rescaled to norm sqrt(d_in) and the output scaled back",
    "layer_norm": "each input layer-normed and the output de-normalized",
    "covariance_whitening": "inputs whitened by matrices that are not in the folder; fold them "
                            "(SAELens fold_activation_whitening) and write 'none'",
}
_SCALING_TENSORS = ("scaling_factor", "finetuning_scaling_factor")

_TL_HOOK = re.compile(r"^blocks\.(?P<block>\d+)\.(?P<site>.+)$")
_SITE_NAMES = {
    "hook_mlp_out": "the MLP output", "hook_mlp_in": "the MLP input",
    "ln2.hook_normalized": "the MLP input", "hook_attn_out": "the attention output",
    "attn.hook_z": "the attention heads' outputs (z)", "attn.hook_result": "the attention heads",
    "hook_resid_mid": "the residual stream between attention and MLP",
}


def residual_layer(hook_name: str | None) -> int | None:
    """The afscope layer (output of block ``i``) a TransformerLens residual hook reads, else None.

    ``blocks.N.hook_resid_post`` -> ``N``; ``blocks.N.hook_resid_pre`` -> ``N - 1`` (the same
    tensor); ``hook_resid_pre`` of block 0 (the embeddings) and every other hook -> None.
    """
    m = _TL_HOOK.match(hook_name or "")
    if m is None:
        return None
    block = int(m["block"])
    if m["site"] == "hook_resid_post":
        return block
    if m["site"] == "hook_resid_pre" and block > 0:
        return block - 1
    return None


def unsupported_hook(hook_name: str | None) -> str | None:
    """What a TransformerLens hook reads when it is not the residual stream between two blocks
    (``"the MLP output of block 5"``), else None (residual hooks and names of other libraries)."""
    m = _TL_HOOK.match(hook_name or "")
    if m is None or residual_layer(hook_name) is not None:
        return None
    block = int(m["block"])
    if m["site"] == "hook_resid_pre":
        return "the embeddings (the input of block 0)"
    return f"{_SITE_NAMES.get(m['site'], repr(m['site']))} of block {block}"


def save_sae(sae: SAE, folder: str | Path) -> Path:
    """Write ``sae`` to ``folder`` (replaced atomically) in the layout SAELens 6 loads natively."""
    cfg = sae.cfg
    meta: dict[str, Any] = {"sae_lens_version": SAELENS_FORMAT}
    for key in ("model_name", "hook_name", "hook_layer"):
        if getattr(cfg, key) is not None:
            meta[key] = getattr(cfg, key)
    data: dict[str, Any] = {
        "architecture": _SAELENS_NAME[cfg.architecture], "d_in": cfg.d_in, "d_sae": cfg.d_sae,
        "dtype": cfg.dtype, "apply_b_dec_to_input": cfg.apply_b_dec_to_input,
        "normalize_activations": "none", "reshape_activations": "none",
    }
    if cfg.architecture == "topk":
        data["k"] = cfg.k
        data["rescale_acts_by_decoder_norm"] = cfg.rescale_acts_by_decoder_norm
    data["metadata"] = meta
    data.update(kind=KIND, format_version=FORMAT_VERSION, afscope_version=afscope.__version__)
    tensors = {n: p.detach().cpu().contiguous() for n, p in sae.named_parameters()}
    with atomic_dir(folder) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        atomic_write_json(tmp / CFG_FILE, data)
    return Path(folder)


def _saelens_major(raw: dict[str, Any], meta: dict[str, Any]) -> int | None:
    """Major SAELens version of the layout (``sae_lens_version`` at the top or in metadata)."""
    version = raw.get("sae_lens_version") or meta.get("sae_lens_version")
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return None


def _architecture(raw: dict[str, Any], native: bool, path: Path) -> tuple[str, int | None]:
    """afscope architecture and k, from ``architecture`` or the pre-6.0 ``activation_fn*`` keys."""
    arch = raw.get("architecture")
    act = raw.get("activation_fn")
    kwargs = raw.get("activation_fn_kwargs") or {}
    if arch is None and act is None:
        raise ArtifactError(f"{path}: field 'architecture': missing (and no "
                            f"'activation_fn_str' to infer it from)")
    if not native and act == "topk" and arch in (None, "standard"):
        arch = "topk"  # SAELens < 6 wrote TopK SAEs as standard + activation_fn topk
    elif arch is None:
        arch = "standard"
    arch = ARCH_ALIASES.get(str(arch), str(arch))
    if arch not in _SAELENS_NAME:
        raise ArtifactError(f"{path}: field 'architecture': unknown {arch!r}; expected one of "
                            f"{sorted(set(_SAELENS_NAME.values()))} (afscope reads 'relu' too)")
    if act not in (None, "relu") and not (act == "topk" and arch == "topk"):
        raise ArtifactError(f"{path}: field 'activation_fn': {act!r} is not supported for a "
                            f"{_SAELENS_NAME[arch]} SAE (expected 'relu')")
    if arch != "topk":
        return arch, None
    k = raw.get("k")
    if k is None and isinstance(kwargs, dict):
        k = kwargs.get("k")
    if k is None:
        raise ArtifactError(f"{path}: field 'k': required for a topk SAE (also looked in "
                            f"'activation_fn_kwargs')")
    return arch, k


def _check_math_keys(raw: dict[str, Any], arch: str, path: Path) -> bool:
    """Refuse the math-changing keys afscope does not implement; return the TopK rescale flag."""
    norm = raw.get("normalize_activations")
    if norm is True:  # SAELens < 6: True meant expected_average_only_in
        norm = "expected_average_only_in"
    if norm not in (None, False, "none"):
        hint = _NORMALIZE_HINT.get(str(norm), "unknown to afscope")
        raise ArtifactError(f"{path}: field 'normalize_activations': {norm!r} is not supported "
                            f"({hint}); only 'none' is")
    reshape = raw.get("reshape_activations")
    if reshape not in (None, "none"):
        raise ArtifactError(f"{path}: field 'reshape_activations': {reshape!r} is not supported "
                            f"(the SAE reads attention heads as (..., n_heads, d_head)); afscope "
                            f"feeds SAEs the residual stream, only 'none' is supported")
    rescale = raw.get("rescale_acts_by_decoder_norm", False)
    if not isinstance(rescale, bool):
        raise ArtifactError(f"{path}: field 'rescale_acts_by_decoder_norm': expected true or "
                            f"false, got {rescale!r}")
    if rescale and arch != "topk":
        raise ArtifactError(f"{path}: field 'rescale_acts_by_decoder_norm': true is only defined "
                            f"for a topk SAE (SAELens ignores it for {_SAELENS_NAME[arch]}); "
                            f"remove it or fold the decoder norms into the weights")
    return rescale


def _hook_layer(hook_name: Any, stored: Any, path: Path) -> int | None:
    """afscope's residual layer: from a TransformerLens ``hook_name`` when it names one, else the
    stored ``hook_layer`` (SAELens < 6 stored the block index, so ``hook_resid_pre`` of block N
    may say N)."""
    m = _TL_HOOK.match(hook_name) if isinstance(hook_name, str) else None
    if m is None:
        return stored
    derived = residual_layer(hook_name)
    if derived is None:
        return None  # not the residual stream: the stored block index is no afscope layer
    if stored is not None and stored not in (derived, int(m["block"])):
        raise ArtifactError(f"{path}: field 'hook_layer': {stored!r} contradicts hook_name "
                            f"{hook_name!r} (the residual stream after block {derived})")
    return derived


def read_sae_config(folder: str | Path) -> SAEConfig:
    """Parse ``folder/cfg.json`` into an :class:`SAEConfig` (unknown keys logged, not fatal)."""
    path = Path(folder) / CFG_FILE
    if not Path(folder).is_dir():
        raise ArtifactError(f"{folder}: SAE folder not found")
    raw = read_json_object(path, "an SAE folder")
    version = raw.get("format_version")
    if raw.get("kind") == KIND and isinstance(version, int) and version > FORMAT_VERSION:
        raise ArtifactError(f"{path}: field 'format_version': {version} is not supported (this "
                            f"afscope reads <= {FORMAT_VERSION}); upgrade afscope")
    raw = {_LEGACY_RENAMES.get(k, k): v for k, v in raw.items()}
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    meta = {_LEGACY_RENAMES.get(k, k): v for k, v in meta.items()}
    major = _saelens_major(raw, meta)
    arch, k = _architecture(raw, major is not None and major >= 6, path)
    rescale = _check_math_keys(raw, arch, path)
    prov = {key: raw.get(key, meta.get(key)) for key in ("model_name", "hook_name", "hook_layer")}
    fields: dict[str, Any] = {
        "architecture": arch, "d_in": raw.get("d_in"), "d_sae": raw.get("d_sae"), "k": k,
        "dtype": str(raw.get("dtype", "float32")).removeprefix("torch."),
        "apply_b_dec_to_input": raw.get("apply_b_dec_to_input", True),
        "rescale_acts_by_decoder_norm": rescale,
        "model_name": prov["model_name"], "hook_name": prov["hook_name"],
        "hook_layer": _hook_layer(prov["hook_name"], prov["hook_layer"], path),
    }
    unknown = sorted(set(raw) - _MATH_KEYS - _INERT_KEYS)
    if unknown:
        log.warning("%s: ignoring unknown keys %s", path, unknown)
    try:
        return SAEConfig.model_validate(fields)
    except ValidationError as e:
        raise ArtifactError(format_validation_error(e, str(path))) from None


def _drop_unit_scaling(state: dict[str, torch.Tensor], wpath: Path) -> None:
    """SAELens < 6 ``scaling_factor``: all ones is a no-op (dropped); anything else is refused."""
    for name in _SCALING_TENSORS:
        if name in state:
            if not torch.equal(state[name].float(), torch.ones_like(state[name].float())):
                raise ArtifactError(f"{wpath}: tensor {name!r} (SAELens "
                                    f"'finetuning_scaling_factor') scales the latents before "
                                    f"decoding; afscope does not support it (fold it into W_dec)")
            del state[name]


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
    _drop_unit_scaling(state, wpath)
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
    if extra:  # e.g. a transcoder's W_skip: unknown tensors may change the math, as SAELens refuses
        raise ArtifactError(f"{wpath}: unexpected tensors {extra} for a "
                            f"{_SAELENS_NAME[cfg.architecture]} SAE (expected {sorted(expected)})")
    sae.load_state_dict({n: state[n] for n in expected})
    return sae.to(device)
