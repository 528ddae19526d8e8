"""Per-feature AUROC / selectivity and the train-only feature selection (no leakage)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from probe_helpers import sparse_data
from sklearn.metrics import roc_auc_score

from afscope.errors import DataError
from afscope.probe import ProbeConfig, make_probe
from afscope.probe.select import (
    class_means,
    feature_auroc,
    feature_selectivity,
    rank_features,
    selectivity,
    top_features,
)


def random_signed(seed=0):
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=(80, 25)), 1)  # rounding makes ties
    x[rng.random(x.shape) < 0.6] = 0.0
    y = (rng.random(80) < 0.3).astype(int)
    return x, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_feature_auroc_matches_sklearn_sparse_and_dense(seed):
    x, y = random_signed(seed)
    ref = np.array([roc_auc_score(y, x[:, j]) for j in range(x.shape[1])])
    np.testing.assert_allclose(feature_auroc(x, y), ref, atol=1e-12)
    np.testing.assert_allclose(feature_auroc(sp.csr_matrix(x), y), ref, atol=1e-12)


def test_feature_auroc_all_zero_and_explicit_zeros():
    x = sp.csr_matrix((np.array([0.0, 2.0]), np.array([0, 1]), np.array([0, 1, 2, 2])),
                      shape=(3, 3))  # explicit stored zero at (0, 0)
    y = np.array([1, 0, 0])
    np.testing.assert_allclose(feature_auroc(x, y), [0.5, 0.25, 0.5])


def test_feature_auroc_constant_columns_and_one_class():
    x = np.array([[3.0, -1.0, 0.0], [3.0, -1.0, 0.0], [3.0, -1.0, 0.0], [3.0, -1.0, 0.0]])
    y = np.array([0, 1, 0, 1])
    for m in (x, sp.csr_matrix(x)):
        assert feature_auroc(m, y).tolist() == [0.5, 0.5, 0.5]  # exactly, not approximately
    with pytest.raises(DataError, match="both classes"):
        feature_auroc(x, np.ones(4, dtype=int))


def test_feature_auroc_at_sae_width():
    rng = np.random.default_rng(0)
    x = sp.random(600, 16384, density=0.01, format="csr", dtype=np.float32, random_state=1)
    y = (rng.random(600) < 0.3).astype(int)
    cols = [0, 7, 16383]
    dense = x[:, cols].toarray()
    np.testing.assert_allclose(feature_auroc(x, y)[cols],
                               [roc_auc_score(y, dense[:, j]) for j in range(3)], atol=1e-12)


def test_feature_auroc_wide_sparse_matches_sklearn():
    # more than 2**16 columns takes the int64 column ids instead of the 16-bit radix sort
    x = sp.random(40, 70_000, density=0.02, format="csr", random_state=0)
    x.data = np.round(x.data * 4 - 2)  # signed, with ties
    y = (np.random.default_rng(0).random(40) < 0.5).astype(int)
    cols = [0, 65_535, 65_536, 69_999] + list(np.unique(x.indices)[:5])
    dense = x[:, cols].toarray()
    np.testing.assert_allclose(feature_auroc(x, y)[cols],
                               [roc_auc_score(y, dense[:, j]) for j in range(len(cols))], atol=1e-12)


def test_selectivity_formula():
    x = np.array([[2.0, 0.0, 1.0], [2.0, 0.0, 3.0], [0.0, 0.0, 1.0], [1.0, 0.0, 1.0]])
    y = np.array([1, 1, 0, 0])
    # feature 0: pos mean 2, neg mean 0.5 -> 1.5 / 2.5; feature 1: 0/0 -> 0; feature 2: 1/3
    np.testing.assert_allclose(feature_selectivity(x, y), [0.6, 0.0, 1 / 3])
    np.testing.assert_allclose(feature_selectivity(sp.csr_matrix(x), y), [0.6, 0.0, 1 / 3])
    # signed means: the denominator is |pos| + |neg|, so the score stays in [-1, 1]
    np.testing.assert_allclose(selectivity(np.array([1.0, -1.0]), np.array([-1.0, -3.0])), [1.0, 0.5])


def test_class_means_with_an_empty_class():
    x = np.array([[1.0, 2.0], [3.0, 0.0]])
    for m in (x, sp.csr_matrix(x)):
        pos, neg = class_means(m, np.array([1, 1]))
        np.testing.assert_allclose(pos, [2.0, 1.0])
        np.testing.assert_allclose(neg, [0.0, 0.0])


def test_rank_ties_go_to_lower_index():
    x = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    y = np.array([1, 0])
    assert rank_features(x, y, "auroc").tolist() == [0, 1, 2]
    assert top_features(np.array([2, 0, 1]), 2).tolist() == [0, 2]
    assert top_features(np.array([2, 0, 1]), 5) is None


def test_selection_is_fitted_on_train_rows_only():
    # feature 40 separates the classes perfectly on the held-out rows only; a probe fitted on
    # the training rows must not pick it, and predicting on new rows must not change the pick
    X, y = sparse_data(n=200, d=60, signal=6, seed=3)
    X = X.tolil()
    held = np.arange(150, 200)
    X[held, 40] = (y[held] * 50.0)[:, None]
    X = X.tocsr()
    probe = make_probe(ProbeConfig(n_features=6, select_by="selectivity")).fit(X[:150], y[:150])
    assert 40 not in probe.selected_.tolist()
    before = probe.selected_.copy()
    probe.proba1(X)
    np.testing.assert_array_equal(probe.selected_, before)
    # selected on all rows, the leaked feature (selectivity 1) wins: the test is not vacuous
    leaky = make_probe(ProbeConfig(n_features=6, select_by="selectivity")).fit(X, y)
    assert 40 in leaky.selected_.tolist()
