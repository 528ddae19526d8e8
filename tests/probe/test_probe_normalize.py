"""Normalizations and standardization: exact values, sparse vs dense, state fitted on train."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.preprocessing import QuantileTransformer

from afscope.probe.normalize import (
    apply_normalizer,
    apply_scaler,
    fit_normalizer,
    fit_scaler,
    prune_state,
)

X = np.array([[0.0, 2.0, 0.5, 0.0],
              [3.0, 0.0, 0.0, 1.0],
              [1.0, 1.0, 1.0, 0.0]], dtype=np.float32)


def norm(x, method, **kw):
    state = fit_normalizer(x, method)
    return apply_normalizer(x, method, state, **kw)


def dense(m):
    return m.toarray() if sp.issparse(m) else m


@pytest.mark.parametrize("as_sparse", [False, True])
def test_binary_and_log1p(as_sparse):
    x = sp.csr_matrix(X) if as_sparse else X
    np.testing.assert_array_equal(dense(norm(x, "binary")), (X > 0).astype(np.float32))
    np.testing.assert_allclose(dense(norm(x, "log1p")), np.log1p(X), rtol=1e-6)
    assert sp.issparse(norm(x, "binary")) == as_sparse
    assert norm(x, "none") is x


def test_log1p_is_symmetric_for_signed_values():
    x = np.array([[-3.0, 3.0]])
    np.testing.assert_allclose(norm(x, "log1p"), [[-np.log1p(3.0), np.log1p(3.0)]])


@pytest.mark.parametrize("as_sparse", [False, True])
def test_zscore_per_sample(as_sparse):
    out = norm(sp.csr_matrix(X) if as_sparse else X, "zscore")
    assert isinstance(out, np.ndarray)  # documented: zscore makes sparse input dense
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(out.std(axis=1), 1, atol=1e-6)
    const = norm(np.ones((2, 3)), "zscore")  # zero-variance row: no division by zero
    np.testing.assert_array_equal(const, 0)


def test_topk_binary_sparse_equals_dense_with_ties():
    x = np.array([[3.0, 1.0, 3.0, 0.0, 2.0],
                  [0.0, 0.0, 0.0, 0.0, 5.0],
                  [-1.0, 2.0, 2.0, 2.0, 0.0]])
    expected = np.array([[1, 0, 1, 0, 0],       # top 2: both 3s
                         [0, 0, 0, 0, 1],       # one positive value only
                         [0, 1, 1, 0, 0]], float)  # ties -> lower index; negatives never
    np.testing.assert_array_equal(norm(x, "topk_binary", topk=2), expected)
    np.testing.assert_array_equal(dense(norm(sp.csr_matrix(x), "topk_binary", topk=2)), expected)


def test_topk_binary_random_sparse_equals_dense():
    rng = np.random.default_rng(0)
    x = np.where(rng.random((50, 40)) < 0.3, np.round(rng.random((50, 40)), 1), 0.0)
    np.testing.assert_array_equal(norm(x, "topk_binary", topk=5),
                                  dense(norm(sp.csr_matrix(x), "topk_binary", topk=5)))


def test_quantile_matches_sklearn_and_reloads_from_the_table():
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(200, 5)), rng.normal(size=(30, 5)) * 2
    state = fit_normalizer(train, "quantile", n_quantiles=50)
    ref = QuantileTransformer(n_quantiles=50, output_distribution="uniform").fit(train)
    np.testing.assert_allclose(state["quantiles"], ref.quantiles_)
    np.testing.assert_allclose(apply_normalizer(test, "quantile", state), ref.transform(test),
                               atol=1e-12)
    # pruned to columns 1 and 3 it transforms just those
    sub = prune_state("quantile", state, np.array([1, 3]))
    np.testing.assert_array_equal(apply_normalizer(test[:, [1, 3]], "quantile", sub),
                                  apply_normalizer(test, "quantile", state)[:, [1, 3]])


def test_quantile_sparse_keeps_zeros():
    x = sp.csr_matrix(X)
    out = norm(x, "quantile")
    assert sp.issparse(out) and out.nnz == x.nnz
    assert ((out.data >= 0) & (out.data <= 1)).all()


def test_quantile_is_fitted_on_train_only():
    train = np.arange(10.0).reshape(-1, 1)
    state = fit_normalizer(train, "quantile")
    out = apply_normalizer(np.array([[-5.0], [4.5], [100.0]]), "quantile", state)
    np.testing.assert_allclose(out.ravel(), [0.0, 0.5, 1.0])


def test_scaler_dense_and_sparse():
    mean, scale = fit_scaler(X, center=True)
    np.testing.assert_allclose(mean, X.mean(0), rtol=1e-6)
    np.testing.assert_allclose(scale, X.std(0), rtol=1e-6)
    m2, s2 = fit_scaler(sp.csr_matrix(X), center=False)
    assert not m2.any()
    np.testing.assert_allclose(s2, scale, rtol=1e-6)
    out = apply_scaler(sp.csr_matrix(X), m2, s2)
    assert sp.issparse(out) and out.nnz == np.count_nonzero(X)
    np.testing.assert_allclose(out.toarray(), X / s2, rtol=1e-6)
    with pytest.raises(ValueError, match="center a sparse"):
        apply_scaler(sp.csr_matrix(X), mean, scale)
    _, s3 = fit_scaler(np.ones((4, 2)), center=True)  # constant feature: scale 1
    np.testing.assert_array_equal(s3, 1.0)
