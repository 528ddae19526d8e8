"""The feature table (selectivity, AUROC, means, activity) and the selection filter."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import roc_auc_score

from afscope.errors import DataError
from afscope.features import feature_auroc, feature_stats, select_features, selectivity
from afscope.probe import select as probe_select


def _tricky(seed: int = 0, n: int = 50, d: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Ties (small integer values), negatives, constant and all-zero columns."""
    rng = np.random.default_rng(seed)
    X = rng.integers(-2, 4, (n, d)).astype(np.float32)
    X[rng.random((n, d)) < 0.6] = 0
    X[:, 0] = 0            # never active
    X[:, 1] = 3            # constant, dense
    X[:, 2] = np.abs(X[:, 2])
    y = (rng.random(n) < 0.4).astype(np.int64)
    return X, y


def test_auroc_is_the_probe_one():
    # one implementation (afscope.probe.select, tested against sklearn in tests/probe); the
    # table's column is that function's output, explicit stored zeros included
    X, y = _tricky(0)
    S = sp.csr_matrix(X)
    S.data[:3] = 0
    assert feature_auroc is probe_select.feature_auroc
    np.testing.assert_array_equal(feature_stats(S, y).auroc, probe_select.feature_auroc(S, y))
    np.testing.assert_allclose(feature_stats(X, y).auroc,
                               [roc_auc_score(y, c) for c in X.T], atol=1e-12)


def test_selectivity_and_stats_match_numpy():
    X, y = _tricky(3)
    X = np.abs(X).astype(np.float64)
    t = feature_stats(sp.csr_matrix(X), y)
    pos, neg = X[y == 1].mean(0), X[y == 0].mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sel = np.where(pos + neg == 0, 0.0, (pos - neg) / (pos + neg))
    np.testing.assert_allclose(t.pos_mean, pos, rtol=1e-6)
    np.testing.assert_allclose(t.neg_mean, neg, rtol=1e-6)
    np.testing.assert_allclose(t.selectivity, sel, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(t.active, (X != 0).mean(0))
    assert t.selectivity[0] == 0.0 and t.n_active[0] == 0
    np.testing.assert_allclose(selectivity(np.array([2.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0])),
                               [1.0, 0.0, 0.0])


def test_select_features_filters_and_sorts(toy):
    X, y, *_ = toy
    t = select_features(X, y, min_selectivity=0.3, min_active=5)
    assert t.feature.tolist()[0] == 0                     # fires only on AF, selectivity 1
    assert 1 not in t.feature                             # fires only on negatives
    assert 3 not in t.feature                             # never active
    assert all(np.diff(t.selectivity) <= 1e-12)
    row = t.rows()[0]
    assert set(row) == {"feature", "selectivity", "auroc", "pos_mean", "neg_mean", "active", "n_active"}
    assert row["selectivity"] == 1.0 and row["auroc"] == 1.0 and row["active"] == 0.5
    assert len(select_features(X, y, top=1)) == 1
    assert 5 not in select_features(X, y, min_active=100).feature
    by_auroc = select_features(X, y, min_selectivity=-1, sort_by="auroc")
    assert all(np.diff(by_auroc.auroc) <= 1e-12)


def test_bad_inputs_are_named():
    X = np.ones((4, 2))
    with pytest.raises(DataError, match="both classes"):
        feature_auroc(X, np.zeros(4, dtype=int))
    X[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        feature_stats(X, np.array([0, 1, 0, 1]))
    with pytest.raises(DataError, match="rows"):
        feature_stats(np.ones((3, 2)), np.array([0, 1]))
