"""save_sae / load_sae: round trips, SAELens-style folders, and errors that name the problem."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from sae_helpers import random_sae
from safetensors.torch import save_file

from afscope.errors import ArtifactError
from afscope.sae import ARCHITECTURES, CFG_FILE, WEIGHTS_FILE, load_sae, save_sae


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_round_trip(arch: str, tmp_path: Path) -> None:
    sae = random_sae(arch)
    save_sae(sae, tmp_path / "sae")
    assert sorted(p.name for p in (tmp_path / "sae").iterdir()) == [CFG_FILE, WEIGHTS_FILE]
    cfg = json.loads((tmp_path / "sae" / CFG_FILE).read_text())
    assert cfg["architecture"] == {"relu": "standard"}.get(arch, arch)
    assert cfg["d_in"] == 8 and cfg["d_sae"] == 16
    assert cfg["format_version"] == 2 and "afscope_version" in cfg
    assert ("k" in cfg) == ("rescale_acts_by_decoder_norm" in cfg) == (arch == "topk")
    loaded = load_sae(tmp_path / "sae")
    assert loaded.cfg == sae.cfg
    for name, p in sae.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], p), name
    x = torch.randn(20, 8)
    assert torch.equal(loaded.encode(x), sae.encode(x))


def test_save_replaces_existing_folder(tmp_path: Path) -> None:
    save_sae(random_sae("relu"), tmp_path / "sae")
    sae = random_sae("topk")
    save_sae(sae, tmp_path / "sae")
    assert load_sae(tmp_path / "sae").cfg.architecture == "topk"
    assert [p.name for p in tmp_path.iterdir()] == ["sae"]  # no temp dirs left


def _write_folder(path: Path, cfg: dict, tensors: dict[str, torch.Tensor]) -> Path:
    path.mkdir()
    (path / CFG_FILE).write_text(json.dumps(cfg))
    save_file(tensors, str(path / WEIGHTS_FILE))
    return path


def _tensors(d_in: int = 8, d_sae: int = 16) -> dict[str, torch.Tensor]:
    return {"W_enc": torch.randn(d_in, d_sae), "b_enc": torch.randn(d_sae),
            "W_dec": torch.randn(d_sae, d_in), "b_dec": torch.randn(d_in)}


def test_legacy_saelens_topk_cfg(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = {"architecture": "standard", "activation_fn_str": "topk",
           "activation_fn_kwargs": {"k": 5}, "d_in": 8, "d_sae": 16, "dtype": "torch.float32",
           "apply_b_dec_to_input": True, "normalize_activations": "none", "device": "cuda",
           "hook_name": "blocks.3.hook_resid_post", "hook_layer": 3, "model_name": "gpt2",
           "context_size": 128, "some_future_key": 1}
    tensors = _tensors()
    path = _write_folder(tmp_path / "legacy", cfg, tensors)
    with caplog.at_level(logging.WARNING, logger="afscope.sae.io"):
        sae = load_sae(path)
    assert sae.cfg.architecture == "topk" and sae.cfg.k == 5
    assert sae.cfg.hook_name == "blocks.3.hook_resid_post" and sae.cfg.hook_layer == 3
    assert torch.equal(sae.W_enc, tensors["W_enc"])
    assert "some_future_key" in caplog.text and "context_size" not in caplog.text
    assert int((sae.encode(torch.randn(10, 8)) != 0).sum(-1).max()) <= 5


def test_saelens_v6_jumprelu_with_metadata(tmp_path: Path) -> None:
    cfg = {"architecture": "jumprelu", "d_in": 8, "d_sae": 16, "dtype": "float32",
           "apply_b_dec_to_input": False, "normalize_activations": "none",
           "metadata": {"model_name": "gemma-2-2b", "hook_name": "blocks.5.hook_resid_post"}}
    path = _write_folder(tmp_path / "v6", cfg, {**_tensors(), "threshold": torch.rand(16)})
    sae = load_sae(path)
    assert sae.cfg.architecture == "jumprelu" and not sae.cfg.apply_b_dec_to_input
    assert sae.cfg.model_name == "gemma-2-2b"


def test_standard_architecture_is_relu(tmp_path: Path) -> None:
    path = _write_folder(tmp_path / "std", {"architecture": "standard", "d_in": 8, "d_sae": 16},
                         _tensors())
    assert load_sae(path).cfg.architecture == "relu"


def test_shape_mismatch_names_tensor_and_shapes(tmp_path: Path) -> None:
    tensors = _tensors()
    tensors["W_dec"] = torch.randn(16, 9)
    path = _write_folder(tmp_path / "bad", {"architecture": "relu", "d_in": 8, "d_sae": 16},
                         tensors)
    with pytest.raises(ArtifactError, match=r"'W_dec' has shape \(16, 9\), expected \(16, 8\)"):
        load_sae(path)


def test_unknown_architecture(tmp_path: Path) -> None:
    path = _write_folder(tmp_path / "gated", {"architecture": "gated", "d_in": 8, "d_sae": 16},
                         _tensors())
    with pytest.raises(ArtifactError, match=r"cfg\.json: field 'architecture': unknown 'gated'"):
        load_sae(path)


def test_missing_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="SAE folder not found"):
        load_sae(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match=r"no cfg\.json"):
        load_sae(tmp_path / "empty")
    save_sae(random_sae("relu"), tmp_path / "sae")
    (tmp_path / "sae" / WEIGHTS_FILE).unlink()
    with pytest.raises(ArtifactError, match=r"sae_weights\.safetensors: weights file not found"):
        load_sae(tmp_path / "sae")


def test_missing_tensor_and_nan(tmp_path: Path) -> None:
    path = _write_folder(tmp_path / "jr", {"architecture": "jumprelu", "d_in": 8, "d_sae": 16},
                         _tensors())
    with pytest.raises(ArtifactError, match="tensor 'threshold' missing"):
        load_sae(path)
    tensors = _tensors()
    tensors["b_enc"][3] = float("nan")
    path = _write_folder(tmp_path / "nan", {"architecture": "relu", "d_in": 8, "d_sae": 16},
                         tensors)
    with pytest.raises(ArtifactError, match="'b_enc' contains NaN"):
        load_sae(path)


def test_bad_cfg_values(tmp_path: Path) -> None:
    path = _write_folder(tmp_path / "nok", {"architecture": "topk", "d_in": 8, "d_sae": 16},
                         _tensors())
    with pytest.raises(ArtifactError, match="field 'k'"):
        load_sae(path)
    path = _write_folder(tmp_path / "neg", {"architecture": "relu", "d_in": -1, "d_sae": 16},
                         _tensors())
    with pytest.raises(ArtifactError, match="d_in"):
        load_sae(path)
    path = _write_folder(tmp_path / "norm", {"architecture": "relu", "d_in": 8, "d_sae": 16,
                                             "normalize_activations": "expected_average_only_in"},
                         _tensors())
    with pytest.raises(ArtifactError, match="normalize_activations"):
        load_sae(path)
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / CFG_FILE).write_text("{not json")
    with pytest.raises(ArtifactError, match="corrupt JSON"):
        load_sae(tmp_path / "json")


def test_writes_the_saelens_6_layout(tmp_path: Path) -> None:
    """SAELens 6 reads a folder natively only with metadata.sae_lens_version >= 6 and its names."""
    sae = random_sae("relu")
    sae.cfg.hook_name, sae.cfg.hook_layer, sae.cfg.model_name = "blocks.2.hook_resid_post", 2, "m"
    save_sae(sae, tmp_path / "sae")
    cfg = json.loads((tmp_path / "sae" / CFG_FILE).read_text())
    assert cfg["architecture"] == "standard"  # was "relu": KeyError in SAELens 6
    assert cfg["normalize_activations"] == "none" and cfg["reshape_activations"] == "none"
    assert cfg["metadata"] == {"sae_lens_version": "6.0.0", "model_name": "m",
                               "hook_name": "blocks.2.hook_resid_post", "hook_layer": 2}
    assert "hook_name" not in cfg and "hook_layer" not in cfg
    assert load_sae(tmp_path / "sae").cfg == sae.cfg


def test_reads_afscope_format_1_relu_folder(tmp_path: Path) -> None:
    cfg = {"kind": "sae", "format_version": 1, "afscope_version": "0.1.0", "architecture": "relu",
           "d_in": 8, "d_sae": 16, "dtype": "float32", "apply_b_dec_to_input": True,
           "normalize_activations": "none", "hook_name": "blocks.3.hook_resid_post",
           "hook_layer": 3}
    sae = load_sae(_write_folder(tmp_path / "v1", cfg, _tensors()))
    assert sae.cfg.architecture == "relu" and sae.cfg.hook_layer == 3


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    path = _write_folder(tmp_path / "v9", {"kind": "sae", "format_version": 9,
                                           "architecture": "standard", "d_in": 8, "d_sae": 16},
                         _tensors())
    with pytest.raises(ArtifactError, match=r"field 'format_version': 9 is not supported"):
        load_sae(path)


def test_saelens_6_hook_layer_comes_from_hook_name(tmp_path: Path) -> None:
    """SAELens 6 has no hook_layer: it was None, and the SAE got bound to --layers silently."""
    meta = {"sae_lens_version": "6.54.12", "hook_name": "blocks.5.hook_resid_post"}
    path = _write_folder(tmp_path / "v6", {"architecture": "standard", "d_in": 8, "d_sae": 16,
                                           "metadata": meta}, _tensors())
    assert load_sae(path).cfg.hook_layer == 5


def test_legacy_resid_pre_hook_layer_is_the_previous_block(tmp_path: Path) -> None:
    """SAELens < 6 stored hook_layer=8 for blocks.8.hook_resid_pre: the output of block 7."""
    cfg = {"architecture": "standard", "d_in": 8, "d_sae": 16,
           "hook_point": "blocks.8.hook_resid_pre", "hook_point_layer": 8}
    sae = load_sae(_write_folder(tmp_path / "pre", cfg, _tensors()))
    assert sae.cfg.hook_name == "blocks.8.hook_resid_pre" and sae.cfg.hook_layer == 7
    cfg["hook_point_layer"] = 3
    with pytest.raises(ArtifactError, match=r"field 'hook_layer': 3 contradicts hook_name"):
        load_sae(_write_folder(tmp_path / "bad", cfg, _tensors()))


def test_non_residual_hook_has_no_layer(tmp_path: Path) -> None:
    cfg = {"architecture": "standard", "d_in": 8, "d_sae": 16,
           "hook_name": "blocks.4.hook_mlp_out", "hook_layer": 4}
    sae = load_sae(_write_folder(tmp_path / "mlp", cfg, _tensors()))
    assert sae.cfg.hook_name == "blocks.4.hook_mlp_out" and sae.cfg.hook_layer is None


def test_float64_saelens_folder(tmp_path: Path) -> None:
    tensors = {n: t.double() for n, t in _tensors().items()}
    path = _write_folder(tmp_path / "f64", {"architecture": "standard", "d_in": 8, "d_sae": 16,
                                            "dtype": "float64"}, tensors)
    sae = load_sae(path)
    assert sae.W_enc.dtype == torch.float64 and torch.equal(sae.W_enc, tensors["W_enc"])


@pytest.mark.parametrize(("key", "value", "match"), [
    ("normalize_activations", "layer_norm", "'normalize_activations': 'layer_norm'"),
    ("normalize_activations", "constant_norm_rescale", "'normalize_activations': 'constant_"),
    ("normalize_activations", "covariance_whitening", "'normalize_activations': 'covariance"),
    ("normalize_activations", True, "'normalize_activations': 'expected_average_only_in'"),
    ("reshape_activations", "hook_z", "'reshape_activations': 'hook_z'"),
    ("rescale_acts_by_decoder_norm", True, "'rescale_acts_by_decoder_norm': true is only"),
    ("rescale_acts_by_decoder_norm", "yes", "'rescale_acts_by_decoder_norm': expected"),
    ("activation_fn", "tanh-relu", "'activation_fn': 'tanh-relu' is not supported"),
])
def test_math_keys_are_refused_not_ignored(tmp_path: Path, key: str, value: object,
                                           match: str) -> None:
    path = _write_folder(tmp_path / "x", {"architecture": "standard", "d_in": 8, "d_sae": 16,
                                          key: value}, _tensors())
    with pytest.raises(ArtifactError, match=r"cfg\.json: field " + match):
        load_sae(path)


def test_harmless_values_of_math_keys_load(tmp_path: Path) -> None:
    cfg = {"architecture": "standard", "d_in": 8, "d_sae": 16, "normalize_activations": False,
           "reshape_activations": "none", "rescale_acts_by_decoder_norm": False,
           "activation_fn": "relu", "finetuning_scaling_factor": False}
    assert load_sae(_write_folder(tmp_path / "ok", cfg, _tensors())).cfg.architecture == "relu"


def test_saelens_6_standard_with_topk_activation_fn_is_refused(tmp_path: Path) -> None:
    """SAELens 6 ignores activation_fn (it computes ReLU): afscope must not read TopK into it."""
    cfg = {"architecture": "standard", "d_in": 8, "d_sae": 16, "activation_fn": "topk", "k": 3,
           "metadata": {"sae_lens_version": "6.1.0"}}
    with pytest.raises(ArtifactError, match="'activation_fn': 'topk' is not supported"):
        load_sae(_write_folder(tmp_path / "x", cfg, _tensors()))


def test_unknown_tensors_are_refused(tmp_path: Path) -> None:
    """A W_skip (transcoder) or any other extra tensor may change the math: was a warning."""
    path = _write_folder(tmp_path / "x", {"architecture": "standard", "d_in": 8, "d_sae": 16},
                         {**_tensors(), "W_skip": torch.randn(8, 8)})
    with pytest.raises(ArtifactError, match=r"unexpected tensors \['W_skip'\]"):
        load_sae(path)


def test_legacy_scaling_factor(tmp_path: Path) -> None:
    cfg = {"architecture": "standard", "d_in": 8, "d_sae": 16, "finetuning_scaling_factor": True}
    ones = _write_folder(tmp_path / "ones", cfg, {**_tensors(), "scaling_factor": torch.ones(16)})
    assert load_sae(ones).cfg.architecture == "relu"
    scaled = _write_folder(tmp_path / "scaled", cfg,
                           {**_tensors(), "scaling_factor": torch.full((16,), 2.0)})
    with pytest.raises(ArtifactError, match=r"tensor 'scaling_factor'.*not support"):
        load_sae(scaled)


def test_topk_rescale_round_trip(tmp_path: Path) -> None:
    sae = random_sae("topk")
    sae.cfg.rescale_acts_by_decoder_norm = True
    save_sae(sae, tmp_path / "sae")
    assert json.loads((tmp_path / "sae" / CFG_FILE).read_text())["rescale_acts_by_decoder_norm"]
    loaded = load_sae(tmp_path / "sae")
    assert loaded.cfg.rescale_acts_by_decoder_norm
    x = torch.randn(20, 8)
    assert torch.equal(loaded.encode(x), sae.encode(x))
