"""GemmaScope 2 release/sae_id names: hub location, renaming, and use as a cache encoder."""

import pytest
import torch
from safetensors.torch import save_file

from afscope.errors import ArtifactError, ConfigError
from afscope.sae import load_pretrained_sae, resolve_sae, sae_encoder, save_sae
from afscope.sae.pretrained import hub_location, is_release_name, locate

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


def test_ids_the_old_pattern_rejected():
    """width_1m and *_seed_1 residual ids (SAELens lists them) were ConfigErrors."""
    assert hub_location("gemma-scope-2-4b-pt-res", "layer_17_width_1m_l0_big") == (
        "google/gemma-scope-2-4b-pt", "resid_post/layer_17_width_1m_l0_big/params.safetensors", 17)
    assert hub_location("gemma-scope-2-4b-pt-res", "layer_17_width_262k_l0_medium_seed_1")[1] == (
        "resid_post/layer_17_width_262k_l0_medium_seed_1/params.safetensors")
    assert is_release_name("gemma-scope-2-270m-pt-res-all/layer_0_width_16k_l0_big")
    with pytest.raises(ConfigError, match="unknown sae_id"):
        hub_location("gemma-scope-2-4b-pt-res", "layer_17_width_16k_l0_big_affine")


def test_every_site_resolves_like_saelens():
    loc = locate("gemma-scope-2-1b-it-mlp-all", "layer_3_width_16k_l0_small")
    assert (loc.repo, loc.filename, loc.hook_name) == (
        "google/gemma-scope-2-1b-it", "mlp_out_all/layer_3_width_16k_l0_small/params.safetensors",
        "blocks.3.hook_mlp_out")
    loc = locate("gemma-scope-2-12b-pt-att", "layer_5_width_16k_l0_big")
    assert loc.filename.startswith("attn_out/") and loc.hook_name == "blocks.5.attn.hook_z"
    loc = locate("gemma-scope-2-4b-it-transcoders", "transcoder/layer_17_width_16k_l0_big_affine")
    assert loc.filename == "transcoder/layer_17_width_16k_l0_big_affine/params.safetensors"
    assert loc.is_transcoder
    assert locate("gemma-scope-2-4b-it-transcoders-all", "layer_0_width_16k_l0_big").filename == (
        "transcoder_all/layer_0_width_16k_l0_big/params.safetensors")
    assert locate("gemma-scope-2-270m-pt-res", "layer_5_width_16k_l0_big").model_name == (
        "google/gemma-3-270m")
    with pytest.raises(ConfigError, match=r"expected transcoder/layer_"):
        locate("gemma-scope-2-4b-it-transcoders", "layer_17_width_16k_l0_big")


def test_transcoders_are_refused_before_download(tmp_path):
    _, download, calls = _fake_hub(tmp_path)
    name = "gemma-scope-2-4b-it-transcoders/transcoder/layer_17_width_16k_l0_big_affine"
    with pytest.raises(ConfigError, match=r"a transcoder with an affine skip .* not supported"):
        load_pretrained_sae(*name.split("/", 1), download=download)
    with pytest.raises(ConfigError, match="transcoder"):
        sae_encoder(name, download=download)
    assert calls == []


def test_mlp_and_attention_saes_load_at_their_hook_but_do_not_encode(tmp_path):
    _, download, calls = _fake_hub(tmp_path)
    sae = load_pretrained_sae("gemma-scope-2-1b-it-mlp", "layer_3_width_16k_l0_small",
                              download=download)
    assert sae.cfg.hook_name == "blocks.3.hook_mlp_out" and sae.cfg.hook_layer is None
    att = "gemma-scope-2-1b-it-att/layer_3_width_16k_l0_small"
    assert resolve_sae(att, download=download).cfg.hook_name == "blocks.3.attn.hook_z"
    n = len(calls)
    with pytest.raises(ConfigError, match=r"reads 'blocks\.3\.attn\.hook_z' \(the attention "
                                          r"heads' outputs \(z\) of block 3\)"):
        sae_encoder(att, download=download)
    assert len(calls) == n  # refused before downloading
    save_sae(sae, tmp_path / "mlp")
    with pytest.raises(ConfigError, match=r"the MLP output of block 3"):
        sae_encoder(tmp_path / "mlp", default_layer=3)


def test_encoder_layer_of_a_resid_pre_sae(tmp_path):
    sae = load_pretrained_sae(*NAME.split("/"), download=_fake_hub(tmp_path)[1])
    sae.cfg.hook_name, sae.cfg.hook_layer = "blocks.8.hook_resid_pre", None
    save_sae(sae, tmp_path / "pre")
    assert sae_encoder(tmp_path / "pre").layer == 7
    sae.cfg.hook_name = "blocks.0.hook_resid_pre"
    save_sae(sae, tmp_path / "emb")
    with pytest.raises(ConfigError, match="the embeddings"):
        sae_encoder(tmp_path / "emb", default_layer=0)


def test_extra_tensors_in_a_hub_file_are_refused(tmp_path):
    state, _, _ = _fake_hub(tmp_path)
    bad = tmp_path / "extra.safetensors"
    save_file({**state, "affine_skip_connection": torch.zeros(8, 8)}, str(bad))
    with pytest.raises(ArtifactError, match="unexpected tensors"):
        load_pretrained_sae(*NAME.split("/"), download=lambda r, f: str(bad))


def test_encoder_identity_names_the_topk_rescale(tmp_path):
    """A cache encoded when afscope ignored the key must not pass for one that applies it."""
    from sae_helpers import random_sae

    sae = random_sae("topk")
    save_sae(sae, tmp_path / "plain")
    assert "rescale_acts_by_decoder_norm" not in sae_encoder(tmp_path / "plain", 0).identity()
    sae.cfg.rescale_acts_by_decoder_norm = True
    save_sae(sae, tmp_path / "rescaled")
    assert sae_encoder(tmp_path / "rescaled", 0).identity()["rescale_acts_by_decoder_norm"]
