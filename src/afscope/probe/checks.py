"""Input checks shared by probes, metrics and sweeps: feature matrices and label vectors.

A feature matrix is a dense ``(n, d)`` float ndarray or a ``scipy.sparse`` CSR matrix (other sparse
formats are converted). Bad user data raises :class:`~afscope.errors.DataError`; a matrix whose
width does not match a fitted probe raises :class:`~afscope.errors.ArtifactError` (the probe
belongs to another feature space).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from afscope.errors import ArtifactError, DataError

Matrix = Any
"""``np.ndarray (n, d)`` float or ``scipy.sparse.csr_matrix (n, d)`` float."""


def check_matrix(X: Matrix, *, name: str = "X", n_features: int | None = None) -> Matrix:
    """Validate ``X``: 2-D, numeric, finite; canonical CSR when sparse; float32/64 kept as given.

    With ``n_features``, a different width is an :class:`ArtifactError` naming both widths.
    """
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        if not X.has_canonical_format:
            # sorted, duplicate-free indices once here; otherwise every column slice, astype
            # and solver check downstream would re-sort them (a third of a sweep's time)
            X = X.copy()
            X.sum_duplicates()
        values = X.data
    else:
        X = np.asarray(X)
        if X.dtype.kind not in "fiub":
            raise DataError(f"{name}: expected a numeric matrix, got dtype {X.dtype}")
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        values = X
    if X.ndim != 2:
        raise DataError(f"{name}: expected a 2-D (n_samples, n_features) matrix, got shape "
                        f"{X.shape}")
    if X.shape[0] == 0:
        raise DataError(f"{name}: no rows (empty feature matrix)")
    if not np.isfinite(values).all():
        bad = int(np.size(values) - np.isfinite(values).sum())
        raise DataError(f"{name}: contains {bad} NaN or inf values; clean or impute the "
                        f"features first")
    if n_features is not None and X.shape[1] != n_features:
        raise ArtifactError(f"{name}: has {X.shape[1]} features but the probe expects "
                            f"{n_features} (n_features_in); it was trained on another feature "
                            f"space")
    return X


def check_labels(y: Any, n: int | None = None, *, name: str = "y",
                 both_classes: bool = True) -> np.ndarray:
    """Validate labels: 1-D, values in {0, 1}, length ``n``; ``(n,) int64``.

    With ``both_classes`` (training), a label column holding one class is a :class:`DataError`.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{name}: expected a 1-D label vector, got shape {y.shape}")
    if n is not None and y.shape[0] != n:
        raise DataError(f"{name}: has {y.shape[0]} labels but X has {n} rows")
    if y.size == 0:
        raise DataError(f"{name}: no labels (empty set)")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise DataError(f"{name}: contains NaN labels")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise DataError(f"{name}: labels must be 0 or 1 (1 = alignment faking); found "
                        f"{sorted(set(np.unique(y[bad]).tolist()))[:5]}")
    y = y.astype(np.int64)
    if both_classes:
        n_pos = int(y.sum())
        if n_pos in (0, y.size):
            only = 1 if n_pos else 0
            raise DataError(f"{name}: all {y.size} training labels are {only}; a probe needs "
                            f"both classes (1 = alignment faking, 0 = not) to train")
    return y
