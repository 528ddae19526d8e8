"""afscope <-> the real SAELens (the ``saelens`` extra, installed in CI): folders both ways, every
architecture, encode/decode within 1e-6; GemmaScope 2 ids resolved as SAELens resolves them."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from sae_helpers import random_sae
from safetensors.torch import load_file, save_file

from afscope.errors import ConfigError
from afscope.sae import CFG_FILE, SAE, WEIGHTS_FILE, load_pretrained_sae, load_sae, save_sae
from afscope.sae.pretrained import hub_location, locate

sae_lens = pytest.importorskip("sae_lens")
from sae_lens.loading import pretrained_sae_loaders as sl_loaders  # noqa: E402
from sae_lens.loading.pretrained_saes_directory import (  # noqa: E402
    get_pretrained_saes_directory,
    get_repo_id_and_folder_name,
)

D_IN, D_SAE, K = 8, 16, 3
TOL = 1e-6


@pytest.fixture
def native_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if SAELens reads a folder through its pre-6.0 shim (handle_pre_6_0_config)."""

    def shim(cfg: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError(f"SAELens took the legacy pre-6.0 path for {cfg}")

    monkeypatch.setattr(sl_loaders, "handle_pre_6_0_config", shim)


def _spread_decoder_norms(w_dec: torch.Tensor) -> None:
    """Rows of W_dec with norms from 0.05 to 20: far from the unit norms that hide a rescale bug."""
    with torch.no_grad():
        w_dec.mul_(torch.logspace(-1.3, 1.3, w_dec.shape[0]).unsqueeze(-1)
                   / w_dec.norm(dim=-1, keepdim=True))


def _assert_same_math(ours: SAE, theirs: Any, n: int = 64) -> None:
    """encode and decode within TOL on random inputs, identical active sets."""
    x = torch.randn(n, D_IN) * 2
    with torch.no_grad():
        f_ours, f_theirs = ours.encode(x), theirs.encode(x)
        assert torch.equal(f_ours != 0, f_theirs != 0), "different active latents"
        assert (f_ours - f_theirs).abs().max() <= TOL
        assert (ours.decode(f_ours) - theirs.decode(f_theirs)).abs().max() <= TOL
        assert (ours(x) - theirs(x)).abs().max() <= TOL
        assert (f_ours != 0).any()


CASES = [("relu", True, False), ("relu", False, False), ("topk", True, False),
         ("topk", True, True), ("topk", False, True), ("jumprelu", False, False),
         ("jumprelu", True, False)]


@pytest.mark.parametrize(("arch", "b_dec_in", "rescale"), CASES)
def test_afscope_folder_loads_natively_in_saelens(arch: str, b_dec_in: bool, rescale: bool,
                                                  tmp_path: Path, native_only: None) -> None:
    sae = random_sae(arch, d_in=D_IN, d_sae=D_SAE, apply_b_dec_to_input=b_dec_in)
    _spread_decoder_norms(sae.W_dec)
    sae.cfg.rescale_acts_by_decoder_norm = rescale
    sae.cfg.hook_name, sae.cfg.hook_layer, sae.cfg.model_name = "blocks.2.hook_resid_post", 2, "m"
    save_sae(sae, tmp_path / "sae")
    theirs = sae_lens.SAE.load_from_disk(tmp_path / "sae")
    assert theirs.cfg.architecture() == {"relu": "standard"}.get(arch, arch)
    assert theirs.cfg.apply_b_dec_to_input is b_dec_in
    assert theirs.cfg.metadata.hook_name == "blocks.2.hook_resid_post"
    if arch == "topk":
        assert theirs.cfg.k == K and theirs.cfg.rescale_acts_by_decoder_norm is rescale
    for name, p in sae.state_dict().items():
        assert torch.equal(theirs.state_dict()[name], p), name
    _assert_same_math(sae, theirs)


def _saelens_sae(cls_name: str, cfg_name: str, b_dec_in: bool, **kw: Any) -> Any:
    """A SAELens SAE from its own config class, with random weights and decoder norms far from 1."""
    cfg = getattr(sae_lens, cfg_name)(d_in=D_IN, d_sae=D_SAE, apply_b_dec_to_input=b_dec_in, **kw)
    sae = getattr(sae_lens, cls_name)(cfg)
    with torch.no_grad():
        for name, p in sae.named_parameters():
            p.copy_(torch.rand_like(p) * 0.5 if name == "threshold" else torch.randn_like(p))
        _spread_decoder_norms(sae.W_dec)
    return sae


SAELENS_CASES = [
    ("StandardSAE", "StandardSAEConfig", True, {}),
    ("TopKSAE", "TopKSAEConfig", True, {"k": K}),
    ("TopKSAE", "TopKSAEConfig", False, {"k": K, "rescale_acts_by_decoder_norm": True}),
    ("JumpReLUSAE", "JumpReLUSAEConfig", False, {}),
    ("JumpReLUSAE", "JumpReLUSAEConfig", True, {}),
    # training checkpoints: TopK defaults to rescale_acts_by_decoder_norm=True
    ("StandardTrainingSAE", "StandardTrainingSAEConfig", True, {}),
    ("TopKTrainingSAE", "TopKTrainingSAEConfig", True, {"k": K}),
    ("JumpReLUTrainingSAE", "JumpReLUTrainingSAEConfig", False, {}),
]


@pytest.mark.parametrize(("cls_name", "cfg_name", "b_dec_in", "kw"), SAELENS_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(SAELENS_CASES)])
def test_saelens_folder_loads_in_afscope(cls_name: str, cfg_name: str, b_dec_in: bool,
                                         kw: dict[str, Any], tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    theirs = _saelens_sae(cls_name, cfg_name, b_dec_in, **kw)
    theirs.save_model(tmp_path / "sae")
    with caplog.at_level(logging.WARNING, logger="afscope.sae.io"):
        ours = load_sae(tmp_path / "sae")
    assert "ignoring" not in caplog.text  # every key SAELens writes is known
    if cls_name == "TopKTrainingSAE":
        assert ours.cfg.rescale_acts_by_decoder_norm  # SAELens's training default
    _assert_same_math(ours, theirs)


def test_saelens_topk_rescale_at_init_norms(tmp_path: Path) -> None:
    """SAELens initializes ||W_dec[i]|| = 0.1: latents were 10x off when the key was ignored."""
    theirs = sae_lens.TopKTrainingSAE(sae_lens.TopKTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K))
    with torch.no_grad():
        theirs.b_enc.copy_(torch.randn(D_SAE))
    theirs.save_model(tmp_path / "sae")
    ours = load_sae(tmp_path / "sae")
    _assert_same_math(ours, theirs)
    ours.cfg.rescale_acts_by_decoder_norm = False  # what afscope computed before
    x = torch.randn(16, D_IN)
    with torch.no_grad():
        ratio = theirs.encode(x).sum() / ours.encode(x).sum()
    assert abs(float(ratio) - 0.1) < 1e-4


def test_round_trip_through_saelens_keeps_config_and_bits(tmp_path: Path) -> None:
    sae = random_sae("topk", d_in=D_IN, d_sae=D_SAE)
    sae.cfg.rescale_acts_by_decoder_norm = True
    sae.cfg.hook_name, sae.cfg.hook_layer = "blocks.4.hook_resid_post", 4
    save_sae(sae, tmp_path / "a")
    sae_lens.SAE.load_from_disk(tmp_path / "a").save_model(tmp_path / "b")
    back = load_sae(tmp_path / "b")
    assert back.cfg == sae.cfg
    a = load_file(str(tmp_path / "a" / WEIGHTS_FILE))
    b = load_file(str(tmp_path / "b" / WEIGHTS_FILE))
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


def test_old_afscope_relu_folder_still_loads_here(tmp_path: Path) -> None:
    """Format 1 wrote "relu" (a KeyError in SAELens 6); afscope keeps reading it."""
    sae = random_sae("relu", d_in=D_IN, d_sae=D_SAE)
    save_sae(sae, tmp_path / "sae")
    cfg = json.loads((tmp_path / "sae" / CFG_FILE).read_text())
    cfg.update(architecture="relu", format_version=1)
    del cfg["metadata"]
    (tmp_path / "sae" / CFG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(KeyError, match="relu"):
        sae_lens.SAE.load_from_disk(tmp_path / "sae")
    assert load_sae(tmp_path / "sae").cfg.architecture == "relu"


# --- GemmaScope 2 --------------------------------------------------------------------------

_GS2_SITES = ("res", "res-all", "mlp", "mlp-all", "att", "att-all", "transcoders",
              "transcoders-all")
_GS2 = re.compile(rf"^gemma-scope-2-.*-(?P<site>{'|'.join(_GS2_SITES)})$")


def _gemma_scope_2_ids(sites: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for release, lookup in get_pretrained_saes_directory().items():
        m = _GS2.match(release)
        if m and m["site"] in sites:
            out.extend((release, sae_id) for sae_id in lookup.saes_map)
    return out


def test_every_residual_id_resolves_like_saelens() -> None:
    ids = _gemma_scope_2_ids(("res", "res-all"))
    assert len(ids) > 1000
    wrong = []
    for release, sae_id in ids:
        repo, folder = get_repo_id_and_folder_name(release, sae_id)
        try:
            ours = hub_location(release, sae_id)[:2]
        except ConfigError as e:
            ours = ("error", str(e))
        if ours != (repo, f"{folder}/params.safetensors"):
            wrong.append((release, sae_id, ours))
    assert wrong == [], f"{len(wrong)} of {len(ids)} residual ids differ, e.g. {wrong[:3]}"


def test_mlp_attention_transcoder_ids_resolve_like_saelens() -> None:
    ids = _gemma_scope_2_ids(("mlp", "mlp-all", "att", "att-all", "transcoders",
                              "transcoders-all"))
    assert len(ids) > 1000
    wrong = []
    for release, sae_id in ids:
        repo, folder = get_repo_id_and_folder_name(release, sae_id)
        if hub_location(release, sae_id)[:2] != (repo, f"{folder}/params.safetensors"):
            wrong.append((release, sae_id))
    assert wrong == []


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """One random GemmaScope 2 params file served to both SAELens's loader and afscope."""
    g = torch.Generator().manual_seed(0)
    state = {"w_enc": torch.randn(D_IN, D_SAE, generator=g),
             "w_dec": torch.randn(D_SAE, D_IN, generator=g),
             "b_enc": torch.randn(D_SAE, generator=g), "b_dec": torch.randn(D_IN, generator=g),
             "threshold": torch.rand(D_SAE, generator=g) * 0.5}
    params = tmp_path / "params.safetensors"
    save_file(state, str(params))

    def hf_hub_download(repo_id: str, filename: str, subfolder: str | None = None,
                        **_: Any) -> str:
        if filename.endswith("config.json"):  # SAELens then infers the config from the path
            raise sl_loaders.EntryNotFoundError(filename)
        return str(params)

    def shapes(repo_id: str, filename: str) -> dict[str, list[int]]:
        return {k: list(v.shape) for k, v in state.items()}

    monkeypatch.setattr(sl_loaders, "hf_hub_download", hf_hub_download)
    monkeypatch.setattr(sl_loaders, "get_safetensors_tensor_shapes", shapes)
    return lambda repo, filename: str(params)


def _one_id_per_release() -> list[tuple[str, str]]:
    first: dict[str, str] = {}
    for release, sae_id in _gemma_scope_2_ids(_GS2_SITES):
        first.setdefault(release, sae_id)
    return sorted(first.items())


def test_hook_and_model_of_every_release_match_saelens(fake_hub: Any) -> None:
    for release, sae_id in _one_id_per_release():
        repo, folder = get_repo_id_and_folder_name(release, sae_id)
        cfg = sl_loaders.get_gemma_3_config_from_hf(repo, folder, device="cpu")
        loc = locate(release, sae_id)
        assert loc.hook_name == cfg["hook_name"], (release, sae_id)
        assert loc.model_name == cfg["model_name"], (release, sae_id)
        assert loc.is_transcoder == ("transcoder" in cfg["architecture"]), (release, sae_id)


@pytest.mark.parametrize(("release", "sae_id"), [
    ("gemma-scope-2-27b-it-res", "layer_40_width_16k_l0_medium"),
    ("gemma-scope-2-4b-pt-res", "layer_17_width_1m_l0_big"),
    ("gemma-scope-2-4b-pt-res", "layer_17_width_262k_l0_medium_seed_1"),
    ("gemma-scope-2-1b-it-mlp", "layer_13_width_16k_l0_small"),
    ("gemma-scope-2-1b-it-att", "layer_13_width_16k_l0_small"),
])
def test_gemma_scope_2_load_matches_saelens(release: str, sae_id: str, fake_hub: Any) -> None:
    theirs = sae_lens.SAE.from_pretrained(release, sae_id)
    ours = load_pretrained_sae(release, sae_id, download=fake_hub)
    assert ours.cfg.hook_name == theirs.cfg.metadata.hook_name
    assert ours.cfg.apply_b_dec_to_input is theirs.cfg.apply_b_dec_to_input is False
    _assert_same_math(ours, theirs)


def test_gemma_scope_2_transcoders_are_refused(fake_hub: Any) -> None:
    release, sae_id = "gemma-scope-2-1b-it-transcoders", "transcoder/layer_13_width_16k_l0_small"
    assert sae_id in get_pretrained_saes_directory()[release].saes_map
    with pytest.raises(ConfigError, match="transcoder.*not supported"):
        load_pretrained_sae(release, sae_id, download=fake_hub)
