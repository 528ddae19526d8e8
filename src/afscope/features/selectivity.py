"""Per-feature statistics that decide which features are worth describing.

Selectivity is seed 001's filter: ``(pos_mean - neg_mean) / (pos_mean + neg_mean)`` over samples
labelled alignment faking (``y == 1``) versus the rest; it is meant for non-negative activations
(SAE features) and is 0 where both means are 0. AUROC is rank-based (Mann-Whitney U with midranks
for ties) and computed for all columns at once: on a CSR matrix the implicit zeros of a column form
one tied block, so only the stored values are ever sorted and nothing is densified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from afscope.errors import DataError

Matrix = Any  # np.ndarray (n, d) or scipy.sparse matrix (n, d)
SortBy = Literal["selectivity", "auroc"]


def _check(X: Matrix, y: np.ndarray) -> tuple[Matrix, np.ndarray]:
    y = np.asarray(y)
    if y.ndim != 1 or X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise DataError(f"features: X has shape {X.shape} but y has shape {y.shape}; expected "
                        "(n, d) and (n,)")
    if not np.isin(y, (0, 1)).all():
        raise DataError("features: labels y must be 0 or 1")
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float64)
        values = X.data
    else:
        X = np.asarray(X, dtype=np.float64)
        values = X
    if not np.isfinite(values).all():
        raise DataError("features: X holds NaN or infinite activations")
    return X, y.astype(np.int64)


def _col_means(X: Matrix, mask: np.ndarray) -> np.ndarray:
    if not mask.any():
        return np.zeros(X.shape[1])
    return np.asarray(X[mask].mean(axis=0)).ravel()


def selectivity(pos_mean: np.ndarray, neg_mean: np.ndarray) -> np.ndarray:
    """``(pos - neg) / (pos + neg)`` elementwise, 0 where the denominator is 0."""
    num = pos_mean - neg_mean
    den = pos_mean + neg_mean
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _sparse_positive_rank_sums(X: sp.csr_matrix, y: np.ndarray) -> np.ndarray:
    """Sum of the (mid)ranks of the positive samples in every column, ``(d,)``.

    Per column, values sort as: negatives < the block of zeros (implicit or stored) < positives.
    """
    n, d = X.shape
    C = X.tocsc()
    C.eliminate_zeros()
    counts = np.diff(C.indptr)                       # (d,) nonzeros per column
    col = np.repeat(np.arange(d), counts)            # column of each stored value
    order = np.lexsort((C.data, col))                # by column, then value
    vals, cols, rows = C.data[order], col[order], C.indices[order]
    pos_in_col = np.arange(vals.size) - C.indptr[cols]  # 0-based position among stored values
    # Runs of equal (column, value): every member gets the mean position of its run.
    new_run = np.ones(vals.size, dtype=bool)
    new_run[1:] = (cols[1:] != cols[:-1]) | (vals[1:] != vals[:-1])
    run_id = np.cumsum(new_run) - 1
    run_start = pos_in_col[new_run]
    run_len = np.bincount(run_id)
    mid = run_start[run_id] + (run_len[run_id] - 1) / 2.0 + 1.0  # 1-based midrank among stored
    n_zero = n - counts                               # (d,)
    n_below = np.bincount(cols[vals < 0], minlength=d)  # stored negatives sit below the zeros
    rank = np.where(vals > 0, mid + n_zero[cols], mid)
    is_pos = y[rows] == 1
    sums = np.bincount(cols[is_pos], weights=rank[is_pos], minlength=d)
    pos_stored = np.bincount(cols[is_pos], minlength=d)
    zero_pos = int(y.sum()) - pos_stored
    zero_mid = n_below + (n_zero + 1) / 2.0
    return sums + zero_pos * zero_mid


def feature_auroc(X: Matrix, y: np.ndarray) -> np.ndarray:
    """AUROC of every column as a score for ``y``, ``(d,)`` float64 (0.5 = uninformative).

    Ties count one half (midranks). A column that is constant gives exactly 0.5. Raises
    :class:`DataError` unless ``y`` holds both classes.
    """
    X, y = _check(X, y)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise DataError(f"features: AUROC needs both classes; got {n_pos} positive and {n_neg} "
                        "negative samples")
    if sp.issparse(X):
        rank_sum = _sparse_positive_rank_sums(X, y)
    else:
        from scipy.stats import rankdata

        rank_sum = rankdata(X, axis=0)[y == 1].sum(axis=0)
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


@dataclass(frozen=True)
class FeatureTable:
    """Statistics of a set of features (one entry per feature, all arrays aligned).

    ``feature`` holds column ids of ``X``; ``active`` is the fraction of samples where the feature
    is non-zero, ``n_active`` their count.
    """

    feature: np.ndarray
    selectivity: np.ndarray
    auroc: np.ndarray
    pos_mean: np.ndarray
    neg_mean: np.ndarray
    active: np.ndarray
    n_active: np.ndarray

    def __len__(self) -> int:
        return int(self.feature.size)

    def take(self, idx: np.ndarray) -> FeatureTable:
        return FeatureTable(**{k: getattr(self, k)[idx] for k in self.__dataclass_fields__})

    def rows(self) -> list[dict[str, Any]]:
        """JSON-able rows: ``{"feature", "selectivity", "auroc", "pos_mean", "neg_mean",
        "active", "n_active"}``."""
        return [{"feature": int(self.feature[i]), "selectivity": float(self.selectivity[i]),
                 "auroc": float(self.auroc[i]), "pos_mean": float(self.pos_mean[i]),
                 "neg_mean": float(self.neg_mean[i]), "active": float(self.active[i]),
                 "n_active": int(self.n_active[i])} for i in range(len(self))]


def feature_stats(X: Matrix, y: np.ndarray) -> FeatureTable:
    """Selectivity, AUROC, class means and active fraction of every column of ``X`` ``(n, d)``."""
    X, y = _check(X, y)
    pos_mean, neg_mean = _col_means(X, y == 1), _col_means(X, y == 0)
    if sp.issparse(X):
        nz = X.data != 0
        n_active = np.bincount(X.indices[nz], minlength=X.shape[1])
    else:
        n_active = np.count_nonzero(X, axis=0)
    return FeatureTable(
        feature=np.arange(X.shape[1], dtype=np.int64),
        selectivity=selectivity(pos_mean, neg_mean),
        auroc=feature_auroc(X, y),
        pos_mean=pos_mean,
        neg_mean=neg_mean,
        active=n_active / X.shape[0],
        n_active=n_active.astype(np.int64),
    )


def select_features(
    X: Matrix,
    y: np.ndarray,
    min_selectivity: float = 0.3,
    min_active: int = 5,
    top: int | None = None,
    sort_by: SortBy = "selectivity",
) -> FeatureTable:
    """Features with ``selectivity >= min_selectivity`` that are non-zero on at least
    ``min_active`` samples, best first (by ``sort_by``, then the other statistic, then id),
    cut to ``top`` when given.

    ``min_active`` defaults to 5 because a description needs that many activating samples.
    """
    if sort_by not in ("selectivity", "auroc"):
        raise DataError(f"select_features: sort_by must be 'selectivity' or 'auroc', got {sort_by!r}")
    table = feature_stats(X, y)
    keep = np.flatnonzero((table.selectivity >= min_selectivity) & (table.n_active >= min_active))
    t = table.take(keep)
    first, second = (t.selectivity, t.auroc) if sort_by == "selectivity" else (t.auroc, t.selectivity)
    order = np.lexsort((t.feature, -second, -first))
    if top is not None:
        order = order[:top]
    return t.take(order)
