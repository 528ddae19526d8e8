"""Cross-validation and sweeps: determinism, equality with per-point CV, test-set scoring."""

from __future__ import annotations

import numpy as np
import pytest
from probe_helpers import sparse_data

from afscope.errors import DataError
from afscope.probe import (
    ProbeConfig,
    cross_validate,
    fit_probe,
    make_folds,
    roc_auc,
    sweep,
)


def test_cross_validate_is_deterministic():
    X, y = sparse_data()
    cfg = ProbeConfig(method="logistic_l1", C=0.5)
    a = cross_validate(X, y, cfg, folds=4, seed=1)
    assert a == cross_validate(X, y, cfg, folds=4, seed=1)
    assert len(a["fold_aurocs"]) == 4 and a["auroc_mean"] > 0.7
    assert a["auroc_std"] == pytest.approx(np.std(a["fold_aurocs"]))


def test_sweep_equals_cross_validate_per_point_for_liblinear():
    # the sweep ranks features once per fold and reuses it; the numbers must not change
    X, y = sparse_data()
    base = ProbeConfig(method="logistic_l1", select_by="selectivity", normalize="log1p")
    points = sweep(X, y, base, n_features=[5, 20, None], Cs=[0.1, 1.0], folds=3, seed=2)
    assert [(p["n_features"], p["C"]) for p in points] == [
        (5, 0.1), (5, 1.0), (20, 0.1), (20, 1.0), (60, 0.1), (60, 1.0)]
    for p in points:
        cfg = base.model_copy(update={"n_features": p["n_features"], "C": p["C"]})
        cv = cross_validate(X, y, cfg, folds=3, seed=2)
        assert p["cv_auroc"] == cv["auroc_mean"] and p["cv_std"] == cv["auroc_std"]
        assert p["test_auroc"] is None
        assert p["n_nonzero"] == round(float(np.mean(cv["fold_n_nonzero"])))


@pytest.mark.parametrize("method", ["logistic_l2", "ridge", "diffmean"])
def test_sweep_close_to_cold_fits_for_other_methods(method):
    X, y = sparse_data()
    base = ProbeConfig(method=method, tol=1e-8)
    points = sweep(X, y, base, n_features=[10], Cs=[0.1, 1.0], folds=3)
    for p in points:
        cfg = base.model_copy(update={"n_features": 10, "C": p["C"]})
        assert p["cv_auroc"] == pytest.approx(
            cross_validate(X, y, cfg, folds=3)["auroc_mean"], abs=1e-3)


def test_sweep_with_test_set_and_n_jobs():
    X, y = sparse_data(n=200)
    Xt, yt = sparse_data(n=80, seed=5)
    cfg = ProbeConfig(method="logistic_l1")
    one = sweep(X, y, cfg, n_features=[10, 30], Cs=[0.3], folds=3, X_test=Xt, y_test=yt)
    # processes, as in real use: liblinear seeds a process-global C RNG, so threads would race
    two = sweep(X, y, cfg, n_features=[10, 30], Cs=[0.3], folds=3, X_test=Xt, y_test=yt,
                n_jobs=2)
    assert one == two
    full = fit_probe(X, y, cfg.model_copy(update={"n_features": 30, "C": 0.3}))
    assert one[1]["test_auroc"] == roc_auc(yt, full.proba1(Xt))
    assert one[1]["n_nonzero"] == full.n_nonzero


def test_groups_keep_groups_together():
    X, y = sparse_data(n=120)
    groups = np.arange(120) // 4
    for tr, va in make_folds(y, 3, 0, groups):
        assert not set(groups[tr]) & set(groups[va])
    out = cross_validate(X, y, ProbeConfig(), folds=3, groups=groups)
    assert len(out["fold_aurocs"]) == 3


def test_fold_errors():
    y = np.array([1, 1, 0, 0, 0, 0])
    with pytest.raises(DataError, match="smaller class has 2"):
        make_folds(y, 3)
    X, y = sparse_data()
    with pytest.raises(DataError, match="n_features"):
        sweep(X, y, ProbeConfig(), n_features=[0])
    with pytest.raises(DataError, match="y_test"):
        sweep(X, y, ProbeConfig(), X_test=X)
