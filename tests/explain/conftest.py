"""Fixtures of the explainer tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def token_cache(tmp_path_factory, tiny_model_dir):
    """A tiny llama's cache with SAE latents at layer 1 and a per-token top-4 store."""
    from afscope.data.dataset import Dataset
    from afscope.data.synth import generate_corpus
    from afscope.extract import ExtractConfig
    from afscope.sae import SAE, SAEConfig, extract_with_sae, save_sae

    root = tmp_path_factory.mktemp("tok-cache")
    data = root / "synth.jsonl"
    Dataset.from_records(generate_corpus(40, seed=3), "synth").to_jsonl(data)
    torch.manual_seed(0)
    sae = SAE(SAEConfig(architecture="topk", d_in=32, d_sae=64, k=4, hook_layer=1,
                        model_name=str(tiny_model_dir)))
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape))
    sae_dir = save_sae(sae, root / "sae")
    extract_with_sae(ExtractConfig(model=str(tiny_model_dir), data=data, out=root / "cache",
                                   layers=[1], pool=["max"], chunk_size=16, batch_tokens=1024,
                                   max_length=64, sae=[sae_dir], token_topk=4))
    return root
