"""GemmaScope 2 release/sae_id names: hub location, renaming, and use as a cache encoder."""

import pytest
import torch
from safetensors.torch import save_file

from afscope.errors import ArtifactError, ConfigError
from afscope.sae import load_pretrained_sae, sae_encoder
from afscope.sae.pretrained import hub_location, is_release_name

NAME = "gemma-scope-2-27b-it-res/layer_40_width_16k_l0_medium"


def test_hub_location_of_seed_001_sae():
    assert is_release_name(NAME) and not is_release_name("runs/sae/sae")
    assert hub_location(*NAME.split("/")) == (
        "google/gemma-scope-2-27b-it",
        "resid_post/layer_40_width_16k_l0_medium/params.safetensors", 40)
    with pytest.raises(ConfigError, match="unknown SAE release"):
        hub_location("gemma-scope-27b", "layer_40_width_16k_l0_medium")
    with pytest.raises(ConfigError, match="unknown sae_id"):
        hub_location("gemma-scope-2-27b-it-res", "layer_40/width_16k")


def _fake_hub(tmp_path, d_in=8, d_sae=12):
    g = torch.Generator().manual_seed(0)
    state = {"w_enc": torch.randn(d_in, d_sae, generator=g),
             "w_dec": torch.randn(d_sae, d_in, generator=g),
             "b_enc": torch.randn(d_sae, generator=g), "b_dec": torch.randn(d_in, generator=g),
             "threshold": torch.rand(d_sae, generator=g)}
    calls = []

    def download(repo, filename):
        calls.append((repo, filename))
        path = tmp_path / repo / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(state, str(path))
        return str(path)

    return state, download, calls


def test_load_renames_to_a_jumprelu_sae(tmp_path):
    state, download, calls = _fake_hub(tmp_path)
    sae = load_pretrained_sae(*NAME.split("/"), download=download)
    assert calls == [("google/gemma-scope-2-27b-it",
                      "resid_post/layer_40_width_16k_l0_medium/params.safetensors")]
    assert sae.cfg.architecture == "jumprelu" and not sae.cfg.apply_b_dec_to_input
    assert sae.cfg.hook_layer == 40 and (sae.cfg.d_in, sae.cfg.d_sae) == (8, 12)
    x = torch.randn(5, 8)
    pre = x @ state["w_enc"] + state["b_enc"]
    expect = torch.where(pre > state["threshold"], pre, torch.zeros_like(pre)).clamp_min(0)
    torch.testing.assert_close(sae.encode(x), expect)
    enc = sae_encoder(NAME, download=download)
    assert enc.layer == 40 and enc.width == 12 and len(enc.identity()["sha256"]) == 64
    assert sae_encoder(NAME, download=download).identity() == enc.identity()


def test_unreachable_hub_and_foreign_files_are_clear_errors(tmp_path):
    def offline(repo, filename):
        raise OSError("hub unreachable")

    with pytest.raises(ArtifactError, match="cannot fetch google/gemma-scope-2-27b-it"):
        load_pretrained_sae(*NAME.split("/"), download=offline)
    bad = tmp_path / "bad.safetensors"
    save_file({"W_enc": torch.zeros(2, 2)}, str(bad))
    with pytest.raises(ArtifactError, match="missing"):
        load_pretrained_sae(*NAME.split("/"), download=lambda r, f: str(bad))
