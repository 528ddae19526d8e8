"""Per-feature scores and the top-n feature ranking, computed on training rows only.

* :func:`feature_auroc`: AUROC of each feature alone (positives vs negatives, ties count half),
  from the Mann-Whitney rank sum. For a sparse matrix it is computed from the stored values only:
  the implicit zeros of a column form one tie group whose mid-rank is known from counts, so a
  ``2689 x 16384`` matrix at 5% density costs one sort of its ~2.2M stored values, never a dense
  column.
* :func:`feature_selectivity`: seed 001's ``(pos_mean - neg_mean) / (pos_mean + neg_mean)``
  (:func:`selectivity` of :func:`class_means`); the denominator uses absolute means so signed
  features cannot divide by ~0 (identical for the non-negative SAE activations it was defined
  on); 0 where both means are 0.
* :func:`rank_features`: feature indices best first by ``|auroc - 0.5|`` or ``|selectivity|``
  (a feature that fires *less* on alignment faking is as useful to a linear probe), ties to the
  lower index.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

from afscope.errors import DataError
from afscope.probe.checks import Matrix


def _auroc_sparse(X: sp.csr_matrix, y: np.ndarray) -> np.ndarray:
    n, d = X.shape
    Xc = X.tocsc(copy=True)
    Xc.eliminate_zeros()
    nnz = np.diff(Xc.indptr)
    # by column, then value: a stable value sort, then a stable column sort (a radix sort when
    # the column ids fit 16 bits; ~1.8x faster than np.lexsort at 16384 SAE features)
    col = np.repeat(np.arange(d, dtype=np.uint16 if d <= 1 << 16 else np.int64), nnz)
    vals = Xc.data
    pos = y[Xc.indices] == 1
    order = np.argsort(vals, kind="stable")
    order = order[np.argsort(col[order], kind="stable")]
    v, c, p = vals[order], col[order], pos[order]
    m = v.size
    # tie groups of equal (column, value) in sorted order
    new = np.ones(m, bool)
    if m > 1:
        new[1:] = (c[1:] != c[:-1]) | (v[1:] != v[:-1])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], m)
    group = np.cumsum(new) - 1
    # 1-based mid-rank among the column's stored values: mean of (s+1 .. e) minus column start
    mid = 0.5 * (starts + 1 + ends)[group] - Xc.indptr[c]
    n_zero = n - nnz
    n_neg_vals = np.bincount(c, weights=(v < 0), minlength=d)
    rank = mid + np.where(v > 0, n_zero[c], 0)  # implicit zeros sit between negatives and positives
    n_pos = int(y.sum())
    rank_sum = np.bincount(c, weights=rank * p, minlength=d)
    pos_stored = np.bincount(c, weights=p, minlength=d)
    zero_mid = n_neg_vals + 0.5 * (n_zero + 1)
    rank_sum += (n_pos - pos_stored) * zero_mid
    n_neg = n - n_pos
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def feature_auroc(X: Matrix, y: np.ndarray, *, chunk: int = 1024) -> np.ndarray:
    """AUROC of every feature of ``X (n, d)`` as a score for ``y`` (``(d,)`` float64).

    Ties count one half (mid-ranks), so a constant or all-zero column gives 0.5; explicitly
    stored zeros of a sparse matrix count as zeros. Raises :class:`DataError` unless ``y`` holds
    both classes.
    """
    y = np.asarray(y)
    n_pos = int(np.count_nonzero(y == 1))
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise DataError(f"feature AUROC needs both classes; got {n_pos} positive and {n_neg} "
                        "negative samples")
    if sp.issparse(X):
        return _auroc_sparse(sp.csr_matrix(X), y)
    out = np.empty(X.shape[1], np.float64)
    for a in range(0, X.shape[1], chunk):
        ranks = rankdata(X[:, a:a + chunk], axis=0)  # (n, chunk), ties -> mid-rank
        out[a:a + chunk] = (ranks[y == 1].sum(axis=0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return out


def class_means(X: Matrix, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means over the positive and the negative rows, ``((d,), (d,))`` float64.

    A class with no rows has mean 0. A sparse ``X`` is averaged by one sparse product.
    """
    y = np.asarray(y)
    masks = np.stack([y == 1, y == 0])  # (2, n)
    if sp.issparse(X):
        w = masks / np.maximum(masks.sum(axis=1, keepdims=True), 1)  # (2, n) averaging weights
        means = np.asarray(sp.csr_matrix(X).T @ w.T).T  # (2, d)
    else:
        X = np.asarray(X)
        means = np.stack([X[m].mean(axis=0, dtype=np.float64) if m.any()
                          else np.zeros(X.shape[1]) for m in masks])
    return means[0], means[1]


def selectivity(pos_mean: np.ndarray, neg_mean: np.ndarray) -> np.ndarray:
    """``(pos - neg) / (|pos| + |neg|)`` elementwise, 0 where both are 0 (float64)."""
    diff = np.asarray(pos_mean, np.float64) - neg_mean
    denom = np.abs(pos_mean) + np.abs(neg_mean)
    return np.divide(diff, denom, out=np.zeros_like(diff), where=denom > 0)


def feature_selectivity(X: Matrix, y: np.ndarray) -> np.ndarray:
    """:func:`selectivity` of every feature of ``X (n, d)`` (``(d,)`` float64)."""
    return selectivity(*class_means(X, y))


def feature_scores(X: Matrix, y: np.ndarray, by: str) -> np.ndarray:
    """Ranking score per feature (higher = better): ``|auroc - 0.5|`` or ``|selectivity|``."""
    if by == "auroc":
        return np.abs(feature_auroc(X, y) - 0.5)
    if by == "selectivity":
        return np.abs(feature_selectivity(X, y))
    raise ValueError(f"unknown feature ranking {by!r}; expected auroc or selectivity")


def rank_features(X: Matrix, y: np.ndarray, by: str = "auroc") -> np.ndarray:
    """Feature indices ``(d,)`` int64, best first; ties go to the lower index."""
    scores = feature_scores(X, y, by)
    return np.lexsort((np.arange(scores.size), -scores)).astype(np.int64)


def top_features(order: np.ndarray, n_features: int | None) -> np.ndarray | None:
    """Sorted indices of the first ``n_features`` of a ranking; None when that is all of them."""
    if n_features is None or n_features >= order.size:
        return None
    return np.sort(order[:n_features])
