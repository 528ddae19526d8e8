"""SAE module: encode semantics per architecture, shapes, the registry."""

from __future__ import annotations

import pytest
import torch
from sae_helpers import random_sae

from afscope.errors import ConfigError
from afscope.sae import ARCHITECTURES, SAE, SAEConfig, register_architecture
from afscope.sae.base import relu_activation


def test_parameter_names_and_shapes() -> None:
    sae = random_sae("jumprelu", d_in=8, d_sae=16)
    assert sae.expected_shapes() == {"W_enc": (8, 16), "b_enc": (16,), "W_dec": (16, 8),
                                     "b_dec": (8,), "threshold": (16,)}
    assert set(random_sae("topk").expected_shapes()) == {"W_enc", "b_enc", "W_dec", "b_dec"}


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_shapes_over_leading_dims(arch: str) -> None:
    sae = random_sae(arch)
    x = torch.randn(2, 5, 8)
    assert sae.encode(x).shape == (2, 5, 16)
    assert sae(x).shape == (2, 5, 8)
    assert torch.allclose(sae(x), sae.decode(sae.encode(x)))


def test_relu_is_relu_of_pre() -> None:
    sae = random_sae("relu")
    x = torch.randn(50, 8)
    f = sae.encode(x)
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    assert (f >= 0).all()
    assert torch.allclose(f, torch.relu(pre))
    assert (f > 0).sum() > 0


def test_topk_at_most_k_and_keeps_largest() -> None:
    sae = random_sae("topk", k=3)
    x = torch.randn(200, 8)
    f = sae.encode(x)
    nnz = (f != 0).sum(-1)
    assert int(nnz.max()) <= 3 and int(nnz.max()) == 3
    assert (f >= 0).all()
    pre = sae.encode_pre(x)
    top3 = torch.topk(torch.relu(pre), 3, dim=-1).values
    assert torch.allclose(torch.sort(f, dim=-1, descending=True).values[:, :3], top3)


def test_jumprelu_zero_below_threshold() -> None:
    sae = random_sae("jumprelu")
    x = torch.randn(200, 8)
    pre = sae.encode_pre(x)
    f = sae.encode(x)
    below = pre <= sae.threshold
    assert (f[below] == 0).all()
    assert torch.equal(f[~below], pre[~below])  # thresholds >= 0: above threshold passes unchanged
    assert below.any() and (~below).any()


def test_apply_b_dec_to_input_flag() -> None:
    a = random_sae("relu", apply_b_dec_to_input=True)
    b = SAE(a.cfg.model_copy(update={"apply_b_dec_to_input": False}))
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 8)
    assert torch.allclose(a.encode_pre(x), b.encode_pre(x - a.b_dec), atol=1e-5)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="'k'"):
        SAEConfig(architecture="topk", d_in=8, d_sae=16)
    with pytest.raises(ValueError, match="d_sae=16"):
        SAEConfig(architecture="topk", d_in=8, d_sae=16, k=17)
    with pytest.raises(ValueError, match="only used by"):
        SAEConfig(architecture="relu", d_in=8, d_sae=16, k=4)
    with pytest.raises(ValueError):
        SAEConfig(architecture="gated", d_in=8, d_sae=16)


def test_registry_refuses_duplicates() -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register_architecture("relu", relu_activation)
    with pytest.raises(ConfigError, match="lower-case"):
        register_architecture("ReLU2", relu_activation)


def test_topk_rescale_acts_by_decoder_norm() -> None:
    """SAELens TopK: rank ``pre * ||W_dec[i]||``, decode ``(f / ||W_dec[i]||) @ W_dec + b_dec``."""
    sae = random_sae("topk", k=3)
    with torch.no_grad():
        sae.W_dec.mul_(torch.logspace(-1, 1, 16).unsqueeze(-1))  # norms far from 1
    plain = SAE(sae.cfg.model_copy())
    plain.load_state_dict(sae.state_dict())
    sae.cfg.rescale_acts_by_decoder_norm = True
    x = torch.randn(100, 8)
    norms = sae.W_dec.norm(dim=-1)
    scaled = sae.encode_pre(x) * norms
    top = torch.topk(scaled, 3, dim=-1)
    expect = torch.zeros_like(scaled).scatter(-1, top.indices, top.values.relu())
    f = sae.encode(x)
    assert torch.equal(f, expect)
    assert not torch.equal(f != 0, plain.encode(x) != 0)  # other active sets than without it
    torch.testing.assert_close(sae.decode(f), (f / norms) @ sae.W_dec + sae.b_dec)
    torch.testing.assert_close(sae.decoder_directions().norm(dim=-1), torch.ones(16))
    assert torch.equal(plain.decoder_directions(), plain.W_dec)


def test_rescale_only_for_topk_and_standard_alias() -> None:
    with pytest.raises(ValueError, match="'rescale_acts_by_decoder_norm': only used by"):
        SAEConfig(architecture="jumprelu", d_in=8, d_sae=16, rescale_acts_by_decoder_norm=True)
    assert SAEConfig(architecture="standard", d_in=8, d_sae=16).architecture == "relu"
    assert SAE(SAEConfig(architecture="relu", d_in=8, d_sae=16,
                         dtype="float64")).W_enc.dtype == torch.float64
