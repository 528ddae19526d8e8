"""Per-feature statistics that decide which features are worth describing.

Selectivity is seed 001's filter, ``(pos_mean - neg_mean) / (pos_mean + neg_mean)`` over samples
labelled alignment faking (``y == 1``) versus the rest (absolute means in the denominator, which
only matters for signed features), and AUROC is rank-based with ties counted half; both come from :mod:`afscope.probe.select` (one implementation for probes and features,
sparse matrices never densified) and are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from afscope.errors import DataError
from afscope.probe.checks import Matrix, check_labels, check_matrix
from afscope.probe.select import class_means, feature_auroc, selectivity

SortBy = Literal["selectivity", "auroc"]


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
    X = check_matrix(X, name="features: X")
    y = check_labels(y, X.shape[0], name="features: y", both_classes=False)
    pos_mean, neg_mean = class_means(X, y)
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
