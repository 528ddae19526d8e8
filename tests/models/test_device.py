"""The device/dtype resolver and its use by load_model and the CLI options (CPU-only machine)."""

from __future__ import annotations

import logging

import pytest
import torch

from afscope.cli.options import resolve_placement
from afscope.errors import ConfigError
from afscope.extract.config import ExtractConfig
from afscope.models.device import (
    device_and_dtype,
    load_kwargs,
    resolve_device,
    resolve_dtype,
    tensor_device,
)
from afscope.study.config import StudyConfig

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA behaviour")


@no_cuda
def test_auto_is_cpu_without_cuda() -> None:
    assert resolve_device("auto") == "cpu"
    assert resolve_device(None) == "cpu"
    assert device_and_dtype("auto", "auto") == ("cpu", "float32")
    assert tensor_device("auto") == "cpu"


@no_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3", "shard"])
def test_cuda_without_cuda_is_one_clear_error(device: str) -> None:
    with pytest.raises(ConfigError, match=f"--device {device}: CUDA is not available"):
        resolve_device(device)


def test_unknown_device_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="expected auto | cpu | cuda"):
        resolve_device("gpu0")


def test_dtype_auto_and_aliases() -> None:
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype(None, "cpu") == "float32"
    assert resolve_dtype("fp32", "cpu") == "float32"
    with pytest.raises(ConfigError, match="--dtype 'int8'"):
        resolve_dtype("int8", "cpu")


def test_dtype_auto_on_gpu_is_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU default without a GPU: the resolver only asks torch whether bf16 is supported."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_dtype("auto", "cuda:0") == "bfloat16"
    assert resolve_dtype("auto", "shard") == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_dtype(None, "cuda") == "float16"


def test_bf16_on_cpu_warns_but_works(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="afscope.models.device"):
        assert resolve_dtype("bf16", "cpu") == "bfloat16"
    assert "slower than float32" in caplog.text


def test_load_kwargs() -> None:
    assert load_kwargs("cpu") == {}
    assert load_kwargs("cuda:1") == {"device_map": "cuda:1"}
    assert load_kwargs("shard") == {"device_map": "auto"}


@no_cuda
def test_cli_placement_resolves_auto_and_keeps_defaults() -> None:
    assert resolve_placement(ExtractConfig, {}) == {}  # nothing given: the config's defaults
    assert resolve_placement(ExtractConfig, {"device": "auto"}) == {"device": "cpu"}
    assert resolve_placement(ExtractConfig, {"device": "auto", "dtype": "auto"}) == {
        "device": "cpu", "dtype": "float32"}
    with pytest.raises(ConfigError, match="--device cuda: CUDA is not available"):
        resolve_placement(ExtractConfig, {"device": "cuda"})
    # nested: a study's extract section
    out = resolve_placement(StudyConfig, {"extract": {"device": "auto", "dtype": "auto",
                                                      "mask": "all"}})
    assert out == {"extract": {"device": "cpu", "dtype": "float32", "mask": "all"}}


def test_cli_gpu_device_defaults_to_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    import afscope.cli.options as options

    monkeypatch.setattr(options, "device_and_dtype",
                        lambda dev, dt: ("cuda:0", dt or "bfloat16"))
    assert resolve_placement(ExtractConfig, {"device": "cuda:0"}) == {
        "device": "cuda:0", "dtype": "bfloat16"}
    assert resolve_placement(ExtractConfig, {"device": "cuda:0", "dtype": "float32"}) == {
        "device": "cuda:0", "dtype": "float32"}


@no_cuda
def test_extract_cli_refuses_cuda_in_one_line(tmp_path, tiny_tokenizer) -> None:
    from click.testing import CliRunner

    from afscope.cli import main

    res = CliRunner().invoke(main, ["extract", "--model", "x", "--data", str(tmp_path / "d.json"),
                                    "--out", str(tmp_path / "o"), "--device", "cuda"])
    assert res.exit_code == 2
    assert "CUDA is not available" in res.output


@no_cuda
def test_load_model_auto(tmp_path, tiny_tokenizer) -> None:
    from tiny_models import build_model

    from afscope.models import load_model

    build_model("llama", len(tiny_tokenizer)).save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    lm = load_model(str(tmp_path), dtype="auto", device="auto")
    assert (lm.info.device, lm.info.dtype) == ("cpu", "float32")
    assert next(lm.model.parameters()).dtype == torch.float32
    with pytest.raises(ConfigError, match="CUDA is not available"):
        load_model(str(tmp_path), device="cuda")
