"""Shared builders of the SAE tests (imported as ``sae_helpers``; pytest puts tests/sae on sys.path)."""

from __future__ import annotations

import torch

from afscope.sae import SAE, SAEConfig


def random_sae(arch: str, d_in: int = 8, d_sae: int = 16, k: int | None = None,
               apply_b_dec_to_input: bool = True) -> SAE:
    if arch == "topk" and k is None:
        k = 3
    sae = SAE(SAEConfig(architecture=arch, d_in=d_in, d_sae=d_sae, k=k,
                        apply_b_dec_to_input=apply_b_dec_to_input))
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape))
        if arch == "jumprelu":
            sae.threshold.copy_(torch.rand(d_sae) * 0.5)
    return sae
