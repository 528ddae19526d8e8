"""SAEs as latent encoders of the activation cache (``afscope extract --sae DIR``)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from afscope.errors import ConfigError
from afscope.extract import ActivationCache, ExtractConfig, extract
from afscope.fileio import sha256_file
from afscope.models.device import tensor_device
from afscope.sae.base import SAE
from afscope.sae.io import WEIGHTS_FILE, load_sae, unsupported_hook
from afscope.sae.pretrained import Download, is_release_name, locate, refuse_transcoder, resolve_sae


class SAEEncoder:
    """An SAE bound to a layer, in the shape :func:`afscope.extract.extract` asks for.

    ``identity`` (architecture, width, weights sha256) goes into the cache fingerprint, so a cache
    encoded with other weights is refused; ``source`` (the folder) only names the SAE in messages.
    """

    def __init__(self, sae: SAE, layer: int, sha256: str | None = None,
                 source: str | None = None) -> None:
        if sae.W_enc.dtype in (torch.float16, torch.bfloat16):
            sae = sae.float()  # encode in float32 whatever the model's dtype: top-k ties, thresholds
        self.sae = sae.eval()
        self.layer = layer
        self.d_in = sae.cfg.d_in
        self.width = sae.cfg.d_sae
        self.source = source or f"SAE for layer {layer}"
        self._identity: dict[str, Any] = {"architecture": sae.cfg.architecture,
                                          "d_sae": sae.cfg.d_sae, "sha256": sha256}
        if sae.cfg.rescale_acts_by_decoder_norm:  # caches from before afscope implemented it differ
            self._identity["rescale_acts_by_decoder_norm"] = True

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, d_in) -> (N, d_sae)`` float32, on ``x``'s device.

        The SAE follows the activations: it moves (once) to the device they come from, so a
        model on a GPU, or sharded over several, never sends per-token activations to the host.
        """
        if self.sae.W_enc.device != x.device:
            self.sae.to(x.device)
        return self.sae.encode(x.float())


def _state_sha256(sae: SAE) -> str:
    h = hashlib.sha256()
    for name, p in sorted(sae.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _refuse_non_residual(source: str | Path, hook_name: str | None) -> None:
    """afscope captures the residual stream after a block; an SAE of another stream would be fed
    the wrong activations, whatever layer it is bound to."""
    what = unsupported_hook(hook_name)
    if what is not None:
        raise ConfigError(f"{source}: the SAE reads {hook_name!r} ({what}), which afscope does not "
                          f"capture; SAEs are fed the residual stream after a block "
                          f"(blocks.<i>.hook_resid_post)")


def sae_encoder(source: str | Path, layer: int | None = None, *, default_layer: int | None = None,
                device: str | torch.device = "cpu", download: Download | None = None
                ) -> SAEEncoder:
    """An SAE folder (or a ``<release>/<sae_id>`` name, see :mod:`afscope.sae.pretrained`) as an
    encoder of ``layer``; by default the SAE's ``hook_layer``, else ``default_layer``.

    SAEs of another stream than the residual one (MLP output, attention heads, transcoders) are
    refused with a :class:`ConfigError`; release names are checked before any download.
    """
    device = tensor_device(str(device))  # "auto" / "shard" to a concrete device
    if is_release_name(str(source)) and not Path(source).exists():
        release, _, sae_id = str(source).partition("/")
        loc = locate(release, sae_id)
        refuse_transcoder(loc, str(source))
        _refuse_non_residual(source, loc.hook_name)
        sae = resolve_sae(source, download=download, device=device)
        sha = _state_sha256(sae)
    else:
        sae = load_sae(source, device=device)
        sha = sha256_file(Path(source) / WEIGHTS_FILE)
    _refuse_non_residual(source, sae.cfg.hook_name)
    layer = next((v for v in (layer, sae.cfg.hook_layer, default_layer) if v is not None), None)
    if layer is None:
        raise ConfigError(f"{source}: cfg.json has no hook_layer; say which layer the SAE reads")
    return SAEEncoder(sae, int(layer), sha256=sha, source=str(source))


def extract_with_sae(cfg: ExtractConfig, **kwargs: Any) -> ActivationCache | None:
    """:func:`afscope.extract.extract` with the SAEs of ``cfg.sae`` encoded into the cache.

    Each SAE reads the layer in its ``cfg.json`` (``hook_layer``); an SAE without one reads the
    layer of ``--layers`` when that is a single layer index.
    """
    single = cfg.layers[0] if len(cfg.layers) == 1 else None
    default = single if isinstance(single, int) and single >= 0 else None
    encoders = [sae_encoder(f, default_layer=default, device=cfg.device) for f in cfg.sae]
    return extract(cfg, encoders=encoders, **kwargs)
