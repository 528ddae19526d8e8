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
    assert cfg["architecture"] == arch and cfg["d_in"] == 8 and cfg["d_sae"] == 16
    assert cfg["format_version"] == 1 and "afscope_version" in cfg
    assert ("k" in cfg) == (arch == "topk")
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
