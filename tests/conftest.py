"""Shared fixtures: tiny random-weight llama / gemma3 / mistral models and a real tiny tokenizer.

Everything is built offline inside the tests, seeded. ``shared_data`` points at the read-only real
datasets (``$AFSCOPE_SHARED/data`` or ``../shared/data``).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import ARCHS, build_model, build_tokenizer

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.environ.get("AFSCOPE_SHARED", ROOT.parent / "shared"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` need CUDA: skipped (the one allowed skip) where torch sees none;
    ``benchmarks/gpu_check.sh`` runs them on a GPU machine."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run benchmarks/gpu_check.sh on a GPU)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_dir() / "data"
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run single-threaded: on a loaded 2-core machine intra-op threads spin against
    each other (a 4-layer d=32 forward took 0.5 s with 2 threads, 5 ms with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tokenizer()


@pytest.fixture(params=ARCHS)
def tiny_model(request, tiny_tokenizer):
    return build_model(request.param, len(tiny_tokenizer))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A tiny llama saved as an HF folder, loadable by ``afscope.models.load_model``."""
    path = tmp_path_factory.mktemp("tiny-llama")
    build_model("llama", len(tiny_tokenizer)).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path
