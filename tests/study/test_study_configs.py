"""The shipped study config validates and names files that exist in the shared data."""

from pathlib import Path

import pytest

from afscope.config import build_config
from afscope.study import StudyConfig

ROOT = Path(__file__).resolve().parents[2]


def test_study_benchmark_config_is_valid(shared_data):
    cfg = build_config(StudyConfig, ROOT / "configs" / "study_benchmark.yaml", {})
    assert [m.name for m in cfg.models] == ["gemma-3-270m", "smollm2-135m-instruct"]
    assert len(cfg.models[0].layers) >= 3 and cfg.models[0].sae is not None
    assert set(cfg.baselines) == {"tfidf", "keyword", "embedding"}
    for path in [cfg.train.data, *(d.data for d in cfg.ood)]:
        name = Path(path).name
        if not (shared_data / name).is_file():
            pytest.fail(f"{path}: not in the shared data folder {shared_data}")


def test_study_transfer_config_is_valid(shared_data):
    cfg = build_config(StudyConfig, ROOT / "configs" / "study_transfer.yaml", {})
    roles = {s.name: s.role for s in cfg.sources}
    assert sum(r == "train" for r in roles.values()) >= 3  # leave-one-out needs >= 2, nesting 3
    assert "eval" in roles.values() and "control" in roles.values()
    assert [m.name for m in cfg.models] == ["smollm2-135m-instruct"]
    assert {"tfidf", "tfidf_char", "keyword", "embedding"} <= {b.id for b in cfg.baseline_specs()}
    for s in cfg.sources:
        if s.data is not None and not (shared_data / Path(s.data).name).is_file():
            pytest.fail(f"{s.data}: not in the shared data folder {shared_data}")
