"""Probe folders: cfg.json content, round trip, and corrupt or foreign artifacts."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from probe_helpers import sparse_data
from safetensors.numpy import load_file, save_file

import afscope
from afscope.errors import ArtifactError
from afscope.probe import (
    CFG_FILE,
    WEIGHTS_FILE,
    L1LogisticProbe,
    Probe,
    ProbeConfig,
    RidgeProbe,
    fit_probe,
    load_probe,
)


@pytest.fixture
def saved(tmp_path):
    X, y = sparse_data()
    cfg = ProbeConfig(method="logistic_l1", normalize="quantile", n_features=12, C=0.7)
    probe = fit_probe(X, y, cfg, feature_space={"model": "m", "layer": 3})
    folder = probe.save(tmp_path / "probe")
    return probe, folder, X


def test_cfg_json_contents(saved):
    probe, folder, _ = saved
    cfg = json.loads((folder / CFG_FILE).read_text())
    assert cfg["kind"] == "afscope_probe" and cfg["format_version"] == 1
    assert cfg["afscope_version"] == afscope.__version__
    assert cfg["method"] == "logistic_l1" and cfg["params"]["C"] == 0.7
    assert cfg["feature_space"] == {"model": "m", "layer": 3}
    assert cfg["n_features_in"] == 60 and cfg["n_selected"] == 12
    assert cfg["n_nonzero"] == probe.n_nonzero and cfg["threshold"] == 0.5
    assert cfg["train_metrics"]["auroc"] == probe.train_metrics_["auroc"]
    tensors = load_file(str(folder / WEIGHTS_FILE))
    assert tensors["norm.quantiles"].shape[1] == 12  # only the kept features' quantiles
    assert tensors["selected"].dtype == np.int64 and tensors["coef"].dtype == np.float64
    assert sorted(p.name for p in folder.iterdir()) == [CFG_FILE, WEIGHTS_FILE]


def test_round_trip_is_bit_identical(saved):
    probe, folder, X = saved
    loaded = Probe.load(folder)
    assert isinstance(loaded, L1LogisticProbe)
    assert loaded.get_params() == probe.get_params()
    assert np.array_equal(loaded.proba1(X), probe.proba1(X))
    assert np.array_equal(loaded.predict(X), probe.predict(X))
    loaded.check_space({"model": "m", "layer": 3})
    with pytest.raises(ArtifactError, match="'layer'"):
        loaded.check_space({"model": "m", "layer": 4})
    with pytest.raises(ArtifactError, match="holds a 'logistic_l1' probe"):
        RidgeProbe.load(folder)


def test_overwrite_is_atomic_and_replaces(saved, tmp_path):
    _, folder, _ = saved
    X2, y2 = sparse_data(seed=9)
    fit_probe(X2, y2, ProbeConfig(method="ridge")).save(folder)
    assert isinstance(load_probe(folder), RidgeProbe)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_missing_and_corrupt(saved, tmp_path):
    _, folder, _ = saved
    with pytest.raises(ArtifactError, match="not found"):
        load_probe(tmp_path / "nope")
    cfg = json.loads((folder / CFG_FILE).read_text())
    (folder / CFG_FILE).write_text("{not json")
    with pytest.raises(ArtifactError, match="corrupt JSON"):
        load_probe(folder)
    (folder / CFG_FILE).write_text(json.dumps({**cfg, "kind": "sae"}))
    with pytest.raises(ArtifactError, match="field 'kind'"):
        load_probe(folder)
    (folder / CFG_FILE).write_text(json.dumps({**cfg, "method": "svm"}))
    with pytest.raises(ArtifactError, match="field 'method'"):
        load_probe(folder)
    (folder / CFG_FILE).write_text(json.dumps({**cfg, "format_version": 99}))
    with pytest.raises(ArtifactError, match="format_version"):
        load_probe(folder)
    (folder / CFG_FILE).write_text(json.dumps({**cfg, "params": {**cfg["params"], "C": -1}}))
    with pytest.raises(ArtifactError, match="'C'"):
        load_probe(folder)
    (folder / CFG_FILE).write_text(json.dumps(cfg))
    t = load_file(str(folder / WEIGHTS_FILE))
    save_file({**t, "coef": t["coef"][:3]}, str(folder / WEIGHTS_FILE))
    with pytest.raises(ArtifactError, match="'coef' has shape"):
        load_probe(folder)
    save_file({**t, "coef": t["coef"] * np.nan}, str(folder / WEIGHTS_FILE))
    with pytest.raises(ArtifactError, match="NaN"):
        load_probe(folder)
    (folder / WEIGHTS_FILE).write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="safetensors"):
        load_probe(folder)


def test_unknown_params_are_ignored_with_a_warning(saved, caplog):
    probe, folder, X = saved
    cfg = json.loads((folder / CFG_FILE).read_text())
    cfg["params"]["future_knob"] = 3
    (folder / CFG_FILE).write_text(json.dumps(cfg))
    with caplog.at_level(logging.WARNING):
        loaded = load_probe(folder)
    assert "future_knob" in caplog.text
    assert np.array_equal(loaded.proba1(X), probe.proba1(X))
