"""Value normalizations (seed 001, "Distribution-Robust Probing") and per-feature standardization.

Normalizations, applied to each value before feature selection:

* ``none``; ``binary``: ``x > 0 -> 1`` else 0; ``log1p``: ``sign(x) log1p(|x|)`` (= ``log1p`` for
  the non-negative SAE activations, and defined for signed residual activations too);
* ``quantile``: per feature, the uniform quantile transform fitted on the training rows (the
  scikit-learn ``QuantileTransformer`` rule, the mean of the forward and backward interpolation).
  Only the ``n_quantiles x d`` quantile table is stored, so a probe reloads without pickle. On
  sparse input only stored values are transformed and implicit zeros stay 0 (scikit-learn's
  convention, which keeps the matrix sparse), so sparse and dense input differ here;
* ``zscore``: per sample, across features ``(x - mean_row) / std_row``. This makes a sparse
  matrix dense (every zero becomes ``-mean_row / std_row``), so sparse input comes back dense;
* ``topk_binary``: per sample, the ``topk`` largest positive values -> 1, everything else 0
  (ties go to the lower feature index).

``binary``, ``log1p`` and ``quantile`` act on each feature alone (:data:`PER_FEATURE`), so a probe
that kept a few features can transform only those at predict time; ``zscore`` and
``topk_binary`` need the whole row.

Standardization (:func:`fit_scaler` / :func:`apply_scaler`) divides each feature by its training
standard deviation and, when ``center`` is true, first subtracts its training mean. Sparse input
is not centered by default: subtracting the mean turns every implicit zero into a non-zero, which
multiplies the memory and the solver's work by ``1 / density`` (20x at 5% non-zero), while scaling
alone keeps the sparsity pattern. The logistic penalty is the same either way; only the intercept
absorbs the shift.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from afscope.probe.checks import Matrix

PER_FEATURE = frozenset({"none", "binary", "log1p", "quantile"})
State = dict[str, np.ndarray]


def fit_normalizer(X: Matrix, method: str, *, n_quantiles: int = 100) -> State:
    """Learned state of ``method`` on the training rows ``X (n, d)``; empty unless quantile.

    quantile: ``{"quantiles": (q, d) float64, "references": (q,) float64}``.
    """
    if method != "quantile":
        return {}
    n, d = X.shape
    q = max(2, min(n_quantiles, n))
    references = np.linspace(0.0, 1.0, q)
    quantiles = np.empty((q, d), np.float64)
    Xc = X.tocsc() if sp.issparse(X) else X
    step = max(1, (1 << 24) // max(n, 1))  # columns per dense chunk (~128 MiB of float64)
    for a in range(0, d, step):
        block = Xc[:, a:a + step]
        block = block.toarray() if sp.issparse(block) else block
        quantiles[:, a:a + step] = np.quantile(block.astype(np.float64), references, axis=0)
    # make each column non-decreasing despite rounding (as scikit-learn does)
    np.maximum.accumulate(quantiles, axis=0, out=quantiles)
    return {"quantiles": quantiles, "references": references}


def _quantile_values(x: np.ndarray, q: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Uniform quantile transform of the values ``x`` of one feature with quantiles ``q``."""
    forward = np.interp(x, q, ref)
    backward = -np.interp(-x, -q[::-1], -ref[::-1])
    return 0.5 * (forward + backward)


def _topk_mask_sparse(X: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """1 at the ``k`` largest positive values of each row, vectorized over all stored values."""
    X = X.copy()
    X.eliminate_zeros()
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    # sort by row, then value descending, then column (ties -> lower index)
    order = np.lexsort((X.indices, -X.data, rows))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size) - X.indptr[rows[order]]
    keep = (rank < k) & (X.data > 0)
    out = sp.csr_matrix((keep.astype(X.dtype), X.indices.copy(), X.indptr.copy()), shape=X.shape)
    out.eliminate_zeros()
    return out


def _topk_mask_dense(X: np.ndarray, k: int) -> np.ndarray:
    k = min(k, X.shape[1])
    order = np.argsort(-X, axis=1, kind="stable")[:, :k]  # ties -> lower index
    out = np.zeros_like(X)
    np.put_along_axis(out, order, 1.0, axis=1)
    out[X <= 0] = 0.0
    return out


def apply_normalizer(X: Matrix, method: str, state: State, *, topk: int = 100) -> Matrix:
    """Normalize ``X (n, d)``; ``state`` comes from :func:`fit_normalizer` on the same columns."""
    if method == "none":
        return X
    if method == "binary":
        if sp.issparse(X):
            out = X.copy()
            out.data = (out.data > 0).astype(X.dtype)
            out.eliminate_zeros()
            return out
        return (X > 0).astype(X.dtype)
    if method == "log1p":
        if sp.issparse(X):
            out = X.copy()
            out.data = np.sign(out.data) * np.log1p(np.abs(out.data))
            return out
        return np.sign(X) * np.log1p(np.abs(X))
    if method == "quantile":
        q, ref = state["quantiles"], state["references"]
        if q.shape[1] != X.shape[1]:
            raise ValueError(f"quantile table has {q.shape[1]} columns, X has {X.shape[1]}")
        if sp.issparse(X):
            Xc = X.tocsc(copy=True)
            Xc.sort_indices()
            for j in np.flatnonzero(np.diff(Xc.indptr)):
                s = slice(Xc.indptr[j], Xc.indptr[j + 1])
                Xc.data[s] = _quantile_values(Xc.data[s], q[:, j], ref)
            return Xc.tocsr()
        out = np.empty(X.shape, X.dtype)
        for j in range(X.shape[1]):
            out[:, j] = _quantile_values(X[:, j], q[:, j], ref)
        return out
    if method == "zscore":
        dense = X.toarray() if sp.issparse(X) else X
        mean = dense.mean(axis=1, keepdims=True)
        std = dense.std(axis=1, keepdims=True)
        std[std == 0] = 1.0
        return (dense - mean) / std
    if method == "topk_binary":
        return _topk_mask_sparse(X, topk) if sp.issparse(X) else _topk_mask_dense(X, topk)
    raise ValueError(f"unknown normalization {method!r}")


def prune_state(method: str, state: State, columns: np.ndarray) -> State:
    """The state restricted to ``columns`` (a probe keeps only its selected features' quantiles)."""
    if method == "quantile":
        return {"quantiles": np.ascontiguousarray(state["quantiles"][:, columns]),
                "references": state["references"]}
    return state


def fit_scaler(X: Matrix, center: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature ``(mean, scale)`` of ``X (n, d)``, float64; zero-variance features get scale 1.

    ``mean`` is all zeros when ``center`` is false (the scale is still the standard deviation).
    """
    n = X.shape[0]
    if sp.issparse(X):
        mean = np.asarray(X.sum(axis=0), np.float64).ravel() / n
        sq = np.asarray(X.multiply(X).sum(axis=0), np.float64).ravel() / n
        var = np.maximum(sq - mean**2, 0.0)
    else:
        Xf = X.astype(np.float64, copy=False)
        mean = Xf.mean(axis=0)
        var = Xf.var(axis=0)
    scale = np.sqrt(var)
    scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0)] = 1.0
    if not center:
        mean = np.zeros_like(mean)
    return mean, scale


def apply_scaler(X: Matrix, mean: np.ndarray, scale: np.ndarray) -> Matrix:
    """``(X - mean) / scale`` as float64; sparse stays sparse (its ``mean`` must be all zero)."""
    if sp.issparse(X):
        if mean.any():
            raise ValueError("cannot center a sparse matrix without densifying it")
        X = sp.csr_matrix(X)
        # scale the stored values in place of a diagonal matmul: O(nnz), and no index sort
        # (column slices come back with unsorted-flagged indices, which astype would sort)
        return sp.csr_matrix((X.data.astype(np.float64) / scale[X.indices], X.indices.copy(),
                              X.indptr.copy()), shape=X.shape)
    return (X.astype(np.float64) - mean) / scale
