"""Published SAEs by release and ``sae_id``, GemmaScope 2 style, where a model hub is reachable.

``gemma-scope-2-27b-it-res`` / ``layer_40_width_16k_l0_medium`` (the SAE of seed 001) names the
file ``resid_post/layer_40_width_16k_l0_medium/params.safetensors`` of the hub repository
``google/gemma-scope-2-27b-it``: the same (repository, file) SAELens's ``pretrained_saes.yaml``
gives, for every GemmaScope 2 release (``res``, ``res-all``, ``mlp``, ``mlp-all``, ``att``,
``att-all``, ``transcoders``, ``transcoders-all``; ids ``layer_<L>_width_<W><k|m>_l0_<size>``, with
``_seed_<n>`` for re-runs and ``_affine`` for transcoders with a skip connection).

The tensors use lower-case names (``w_enc``, ``w_dec``, ``b_enc``, ``b_dec``, ``threshold``); they
are renamed to the SAELens layout and the result is an ordinary JumpReLU :class:`~afscope.sae.SAE`
that reads its input without ``b_dec`` subtraction. What each release reads (SAELens's hook names):

* ``res``/``res-all``: ``blocks.L.hook_resid_post``, the residual stream afscope extracts;
* ``mlp``/``mlp-all``: ``blocks.L.hook_mlp_out``; ``att``/``att-all``: ``blocks.L.attn.hook_z``
  (the heads' outputs before ``o_proj``). They load, with that ``hook_name`` and no ``hook_layer``,
  but :func:`afscope.sae.sae_encoder` refuses them: afscope captures only the residual stream;
* ``transcoders``/``transcoders-all``: refused. A transcoder reads the MLP input and writes the MLP
  output (another space, plus ``W_skip`` when affine); afscope's SAE reconstructs its own input.

Offline, download the file where the hub is reachable and save it with :func:`afscope.sae.save_sae`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from afscope.errors import ArtifactError, ConfigError
from afscope.sae.base import SAE
from afscope.sae.config import SAEConfig

_RELEASE = re.compile(r"^gemma-scope-2-(?P<size>\d+(?:\.\d+)?[bm])-(?P<variant>pt|it)-"
                      r"(?P<site>res|res-all|mlp|mlp-all|att|att-all|transcoders|transcoders-all)$")
_SAE_ID = re.compile(r"^layer_(?P<layer>\d+)_width_(?P<width>\d+[km])_l0_(?P<l0>[a-z]+)"
                     r"(?:_seed_(?P<seed>\d+))?(?P<affine>_affine)?$")


@dataclass(frozen=True)
class _Site:
    folder: str  # first path component in the hub repository
    hook: str  # SAELens hook name, formatted with the layer
    id_prefix: str = ""  # the sae_id starts with it (SAELens ids of the 'transcoders' releases)


_SITES = {
    "res": _Site("resid_post", "blocks.{}.hook_resid_post"),
    "res-all": _Site("resid_post_all", "blocks.{}.hook_resid_post"),
    "mlp": _Site("mlp_out", "blocks.{}.hook_mlp_out"),
    "mlp-all": _Site("mlp_out_all", "blocks.{}.hook_mlp_out"),
    "att": _Site("attn_out", "blocks.{}.attn.hook_z"),
    "att-all": _Site("attn_out_all", "blocks.{}.attn.hook_z"),
    "transcoders": _Site("transcoder", "blocks.{}.hook_mlp_in", id_prefix="transcoder/"),
    "transcoders-all": _Site("transcoder_all", "blocks.{}.hook_mlp_in"),
}
_RENAME = {"w_enc": "W_enc", "w_dec": "W_dec", "b_enc": "b_enc", "b_dec": "b_dec",
           "threshold": "threshold"}
PARAMS_FILE = "params.safetensors"

Download = Callable[[str, str], str]
"""``(repo_id, filename) -> local path`` (default: ``huggingface_hub.hf_hub_download``)."""


@dataclass(frozen=True)
class PretrainedLocation:
    """Where one GemmaScope 2 SAE lives and what it reads."""

    repo: str  # hub repository, google/gemma-scope-2-27b-it
    filename: str  # file in it, resid_post/layer_40_width_16k_l0_medium/params.safetensors
    layer: int  # block index L of the hook
    site: str  # release suffix: res, res-all, mlp, ..., transcoders-all
    hook_name: str  # SAELens hook name, blocks.40.hook_resid_post
    model_name: str  # HF id of the model, google/gemma-3-27b-it

    @property
    def is_transcoder(self) -> bool:
        return self.site.startswith("transcoders")


def _model_name(size: str, variant: str) -> str:
    if (size, variant) == ("270m", "pt"):
        return "google/gemma-3-270m"  # the 270m base model has no -pt suffix on the hub
    return f"google/gemma-3-{size}-{variant}"


def locate(release: str, sae_id: str) -> PretrainedLocation:
    """Parse a GemmaScope 2 release and ``sae_id``; a :class:`ConfigError` says what is expected."""
    m = _RELEASE.match(release)
    if m is None:
        raise ConfigError(f"unknown SAE release {release!r}; expected gemma-scope-2-<size>-"
                          f"<pt|it>-<{'|'.join(_SITES)}>, e.g. gemma-scope-2-27b-it-res")
    site = _SITES[m["site"]]
    rest = sae_id[len(site.id_prefix):] if sae_id.startswith(site.id_prefix) else ""
    s = _SAE_ID.match(rest)
    if s is None or (s["affine"] and not m["site"].startswith("transcoders")):
        affine = "[_affine]" if m["site"].startswith("transcoders") else ""
        raise ConfigError(f"unknown sae_id {sae_id!r} for {release}; expected {site.id_prefix}"
                          f"layer_<L>_width_<W><k|m>_l0_<size>[_seed_<n>]{affine}, e.g. "
                          f"{site.id_prefix}layer_40_width_16k_l0_medium")
    layer = int(s["layer"])
    folder = f"{site.folder}/{rest}"
    return PretrainedLocation(
        repo=f"google/gemma-scope-2-{m['size']}-{m['variant']}",
        filename=f"{folder}/{PARAMS_FILE}", layer=layer, site=m["site"],
        hook_name=site.hook.format(layer), model_name=_model_name(m["size"], m["variant"]))


def is_release_name(name: str) -> bool:
    """True for ``<release>/<sae_id>`` strings this module resolves (any GemmaScope 2 release)."""
    release, _, sae_id = str(name).partition("/")
    try:
        locate(release, sae_id)
    except ConfigError:
        return False
    return True


def hub_location(release: str, sae_id: str) -> tuple[str, str, int]:
    """``(repo_id, filename, layer)`` of a GemmaScope 2 SAE (the hook's block index)."""
    loc = locate(release, sae_id)
    return loc.repo, loc.filename, loc.layer


def _hf_download(repo_id: str, filename: str) -> str:
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo_id=repo_id, filename=filename)


def refuse_transcoder(loc: PretrainedLocation, name: str) -> None:
    """A transcoder maps the MLP input to the MLP output; afscope's SAE has no such shape."""
    if loc.is_transcoder:
        skip = " with an affine skip connection (W_skip)" if "_affine" in name else ""
        raise ConfigError(f"{name}: a transcoder{skip}, reading blocks.{loc.layer}.hook_mlp_in and "
                          f"writing blocks.{loc.layer}.hook_mlp_out, is not supported: an afscope "
                          f"SAE reconstructs its own input; use a -res or -res-all release")


def load_pretrained_sae(release: str, sae_id: str, *, download: Download | None = None,
                        device: str | torch.device = "cpu") -> SAE:
    """Fetch (or find in the HF cache) and load a GemmaScope 2 SAE as a JumpReLU :class:`SAE`.

    Residual SAEs get ``hook_layer = L``; MLP and attention SAEs keep their own ``hook_name``
    and no ``hook_layer``; transcoders are refused (a :class:`ConfigError`) before any download.
    """
    loc = locate(release, sae_id)
    name = f"{release}/{sae_id}"
    refuse_transcoder(loc, name)
    try:
        path = (download or _hf_download)(loc.repo, loc.filename)
    except Exception as e:  # noqa: BLE001 - hub errors come in many types; one message for all
        raise ArtifactError(f"{name}: cannot fetch {loc.repo}/{loc.filename} ({e}); where "
                            f"the hub is unreachable, download it elsewhere, load it with "
                            f"load_pretrained_sae and save_sae it to a folder") from None
    state = load_file(str(path), device="cpu")
    missing = sorted(set(_RENAME) - set(state))
    if missing:
        raise ArtifactError(f"{path}: not a GemmaScope 2 JumpReLU file, missing {missing}")
    extra = sorted(set(state) - set(_RENAME))
    if extra:
        raise ArtifactError(f"{path}: unexpected tensors {extra} in a GemmaScope 2 SAE "
                            f"(expected {sorted(_RENAME)})")
    d_in, d_sae = state["w_enc"].shape
    residual = loc.site in ("res", "res-all")
    sae = SAE(SAEConfig(architecture="jumprelu", d_in=int(d_in), d_sae=int(d_sae),
                        apply_b_dec_to_input=False, hook_name=loc.hook_name,
                        hook_layer=loc.layer if residual else None, model_name=loc.model_name))
    try:
        sae.load_state_dict({_RENAME[k]: state[k].float() for k in _RENAME})
    except RuntimeError as e:
        raise ArtifactError(f"{path}: tensor shapes do not fit one SAE: {e}") from None
    return sae.to(device)


def resolve_sae(name: str | Path, *, download: Download | None = None,
                device: str | torch.device = "cpu") -> SAE:
    """An SAE folder, or a ``<release>/<sae_id>`` name when no such folder exists."""
    from afscope.sae.io import load_sae

    if not Path(name).exists() and is_release_name(str(name)):
        release, _, sae_id = str(name).partition("/")
        return load_pretrained_sae(release, sae_id, download=download, device=device)
    return load_sae(name, device=device)
