"""Published SAEs by release and ``sae_id``, GemmaScope 2 style, where a model hub is reachable.

``gemma-scope-2-27b-it-res`` / ``layer_40_width_16k_l0_medium`` (the SAE of seed 001) names the
file ``resid_post/layer_40_width_16k_l0_medium/params.safetensors`` of the hub repository
``google/gemma-scope-2-27b-it``. Its tensors use lower-case names (``w_enc``, ``w_dec``, ``b_enc``,
``b_dec``, ``threshold``); they are renamed to the SAELens layout and the result is an ordinary
JumpReLU :class:`~afscope.sae.SAE` that reads the raw residual stream (no ``b_dec`` subtraction).
Offline, download the file where the hub is reachable and save it with :func:`afscope.sae.save_sae`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file

from afscope.errors import ArtifactError, ConfigError
from afscope.sae.base import SAE
from afscope.sae.config import SAEConfig

_RELEASE = re.compile(r"^gemma-scope-2-(?P<size>[0-9.]+[bm])-(?P<variant>pt|it)-(?P<site>res|res-all)$")
_SAE_ID = re.compile(r"^layer_(?P<layer>\d+)_width_(?P<width>\d+k)_l0_(?P<l0>[a-z0-9]+)$")
_SITES = {"res": "resid_post", "res-all": "resid_post_all"}
_RENAME = {"w_enc": "W_enc", "w_dec": "W_dec", "b_enc": "b_enc", "b_dec": "b_dec",
           "threshold": "threshold"}
PARAMS_FILE = "params.safetensors"

Download = Callable[[str, str], str]
"""``(repo_id, filename) -> local path`` (default: ``huggingface_hub.hf_hub_download``)."""


def is_release_name(name: str) -> bool:
    """True for ``<release>/<sae_id>`` strings this module resolves."""
    release, _, sae_id = str(name).partition("/")
    return bool(_RELEASE.match(release) and _SAE_ID.match(sae_id))


def hub_location(release: str, sae_id: str) -> tuple[str, str, int]:
    """``(repo_id, filename, layer)`` of a GemmaScope 2 SAE."""
    m, s = _RELEASE.match(release), _SAE_ID.match(sae_id)
    if m is None:
        raise ConfigError(f"unknown SAE release {release!r}; expected gemma-scope-2-<size>-"
                          f"<pt|it>-<res|res-all>, e.g. gemma-scope-2-27b-it-res")
    if s is None:
        raise ConfigError(f"unknown sae_id {sae_id!r} for {release}; expected "
                          f"layer_<L>_width_<W>k_l0_<size>, e.g. layer_40_width_16k_l0_medium")
    repo = f"google/gemma-scope-2-{m['size']}-{m['variant']}"
    return repo, f"{_SITES[m['site']]}/{sae_id}/{PARAMS_FILE}", int(s["layer"])


def _hf_download(repo_id: str, filename: str) -> str:
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo_id=repo_id, filename=filename)


def load_pretrained_sae(release: str, sae_id: str, *, download: Download | None = None,
                        device: str | torch.device = "cpu") -> SAE:
    """Fetch (or find in the HF cache) and load a GemmaScope 2 SAE as a JumpReLU :class:`SAE`."""
    repo, filename, layer = hub_location(release, sae_id)
    try:
        path = (download or _hf_download)(repo, filename)
    except Exception as e:  # noqa: BLE001 - hub errors come in many types; one message for all
        raise ArtifactError(f"{release}/{sae_id}: cannot fetch {repo}/{filename} ({e}); where "
                            f"the hub is unreachable, download it elsewhere, load it with "
                            f"load_pretrained_sae and save_sae it to a folder") from None
    state = load_file(str(path), device="cpu")
    missing = sorted(set(_RENAME) - set(state))
    if missing:
        raise ArtifactError(f"{path}: not a GemmaScope 2 JumpReLU file, missing {missing}")
    d_in, d_sae = state["w_enc"].shape
    sae = SAE(SAEConfig(architecture="jumprelu", d_in=int(d_in), d_sae=int(d_sae),
                        apply_b_dec_to_input=False, hook_layer=layer,
                        hook_name=f"blocks.{layer}.hook_resid_post",
                        model_name=repo.replace("google/gemma-scope-2-", "gemma-3-")))
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
