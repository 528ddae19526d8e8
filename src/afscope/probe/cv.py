"""Cross-validation and n_features x C sweeps (seed 001's "Overfitting Check"), sparse throughout.

:func:`cross_validate` fits a fresh clone of the probe on each stratified fold (grouped when
``groups`` is given, so near-duplicates of one scenario never straddle train and validation).
:func:`sweep` produces the same numbers for a whole grid without redoing shared work: per fold it
fits the normalizer and ranks the features **once**, then for each feature count it slices the
top-n columns of the still-sparse matrix and fits every C, warm-starting each C from the previous
one where the solver allows (lbfgs, saga; liblinear starts cold, so ``logistic_l1`` sweeps equal
:func:`cross_validate` exactly, and warm-started ones agree within the solver tolerance). Folds
run in parallel with ``n_jobs`` (joblib); the result does not depend on ``n_jobs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from scipy.special import expit
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from afscope.errors import DataError
from afscope.probe.base import BaseProbe, make_probe
from afscope.probe.checks import Matrix, check_labels, check_matrix
from afscope.probe.config import ProbeConfig
from afscope.probe.metrics import roc_auc
from afscope.probe.normalize import apply_normalizer, apply_scaler
from afscope.probe.platt import fit_platt
from afscope.probe.select import rank_features, top_features

Fold = tuple[np.ndarray, np.ndarray]


def make_folds(y: np.ndarray, folds: int = 5, seed: int = 0,
               groups: Sequence[Any] | None = None) -> list[Fold]:
    """Seeded stratified ``(train_idx, val_idx)`` pairs; StratifiedGroupKFold with ``groups``."""
    y = np.asarray(y)
    if folds < 2:
        raise DataError(f"folds: expected >= 2, got {folds}")
    smallest = int(min(y.sum(), y.size - y.sum()))
    if smallest < folds:
        raise DataError(f"y: the smaller class has {smallest} samples, fewer than the {folds} "
                        f"folds; lower --folds or add data")
    if groups is None:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        return [(tr, va) for tr, va in splitter.split(np.zeros(y.size), y)]
    groups = np.asarray(groups)
    if groups.shape[0] != y.size:
        raise DataError(f"groups: has {groups.shape[0]} entries but there are {y.size} labels")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    out = [(tr, va) for tr, va in splitter.split(np.zeros(y.size), y, groups)]
    for i, (_, va) in enumerate(out):
        if np.unique(y[va]).size < 2:
            raise DataError(f"groups: validation fold {i} holds one class only; use fewer folds "
                            f"or smaller groups")
    return out


def _fold_fit(template: BaseProbe, X: Matrix, y: np.ndarray, fold: Fold) -> tuple[float, int]:
    tr, va = fold
    probe = clone(template).fit(X[tr], y[tr])
    return roc_auc(y[va], probe.proba1(X[va])), probe.n_nonzero


def cross_validate(X: Matrix, y: Any, cfg: ProbeConfig, folds: int = 5, seed: int = 0,
                   groups: Sequence[Any] | None = None, n_jobs: int | None = 1
                   ) -> dict[str, Any]:
    """K-fold CV AUROC of ``cfg``'s probe: ``{auroc_mean, auroc_std, fold_aurocs,
    fold_n_nonzero}`` (std over folds, ddof 0)."""
    X = check_matrix(X)
    y = check_labels(y, X.shape[0])
    template = make_probe(cfg)
    template.config()
    splits = make_folds(y, folds, seed, groups)
    res = Parallel(n_jobs=n_jobs)(delayed(_fold_fit)(template, X, y, f) for f in splits)
    aurocs = np.array([r[0] for r in res])
    return {"auroc_mean": float(aurocs.mean()), "auroc_std": float(aurocs.std()),
            "fold_aurocs": aurocs.tolist(), "fold_n_nonzero": [int(r[1]) for r in res]}


def _grid_task(template: BaseProbe, Xtr: Matrix, ytr: np.ndarray, Xva: Matrix | None,
               yva: np.ndarray | None, counts: Sequence[int | None], Cs: Sequence[float]
               ) -> tuple[np.ndarray, np.ndarray]:
    """Fit every (count, C) on one training split; ``(val AUROC, n_nonzero)``, each
    ``(len(counts), len(Cs))`` (AUROC NaN without a validation set with both classes)."""
    auc = np.full((len(counts), len(Cs)), np.nan)
    nnz = np.zeros((len(counts), len(Cs)), np.int64)
    Xn, state = template._normalize_fit(Xtr)
    d = Xtr.shape[1]
    need_rank = any(c is not None and c < d for c in counts)
    order = rank_features(Xn, ytr, template.select_by) if need_rank else np.arange(d)
    score_val = yva is not None and np.unique(yva).size == 2
    Xva_n = apply_normalizer(Xva, template.normalize, state, topk=template.topk) \
        if score_val else None
    c_order = np.argsort(Cs, kind="stable")  # ascending C: warm starts go from sparse to dense
    for i, count in enumerate(counts):
        sel = top_features(order, count)
        Xs, mean, scale = template._scale_fit(Xn if sel is None else Xn[:, sel])
        Xv = None
        if score_val:
            Xv = Xva_n if sel is None else Xva_n[:, sel]
            if sp.issparse(Xv) and mean.any():
                Xv = Xv.toarray()
            Xv = apply_scaler(Xv, mean, scale)
        warm = None
        for j in c_order:
            probe = clone(template).set_params(C=float(Cs[j]))
            head = probe._fit_head(Xs, ytr, warm)
            warm = head if probe.supports_warm_start else None
            nnz[i, j] = int(np.count_nonzero(head[0]))
            if Xv is not None:
                dec = np.asarray(Xv @ head[0], np.float64).ravel() + head[1]
                if probe.uses_platt:
                    a, b = fit_platt(Xs @ head[0] + head[1], ytr)
                    dec = a * dec + b
                auc[i, j] = roc_auc(yva, expit(dec))
    return auc, nnz


def sweep(X: Matrix, y: Any, cfg: ProbeConfig, n_features: Sequence[int | None] | None = None,
          Cs: Sequence[float] | None = None, folds: int = 5, seed: int = 0,
          X_test: Matrix | None = None, y_test: Any = None,
          groups: Sequence[Any] | None = None, n_jobs: int | None = 1,
          refit: bool | None = None) -> list[dict[str, Any]]:
    """CV (and optional test) AUROC over the grid ``n_features x Cs``.

    Returns one point per (n_features, C), in the given order: ``{"n_features", "C",
    "cv_auroc", "cv_std", "test_auroc", "n_nonzero"}``. ``n_features`` None means all features.
    With ``refit`` (default: when ``X_test`` is given) each point is also fitted on all of
    ``X`` to score ``X_test`` and count its non-zero weights; otherwise ``n_nonzero`` is the
    mean over the folds, rounded.
    """
    X = check_matrix(X)
    y = check_labels(y, X.shape[0])
    d = X.shape[1]
    counts = list(n_features) if n_features else [cfg.n_features]
    Cs = [float(c) for c in (Cs if Cs else [cfg.C])]
    for c in counts:
        if c is not None and (not isinstance(c, (int, np.integer)) or c <= 0):
            raise DataError(f"n_features: expected positive ints or None, got {c!r}")
    template = make_probe(cfg)
    template.config()
    splits = make_folds(y, folds, seed, groups)
    if refit is None:
        refit = X_test is not None
    tasks = [(X[tr], y[tr], X[va], y[va]) for tr, va in splits]
    Xt = yt = None
    if X_test is not None:
        if y_test is None:
            raise DataError("y_test: required with X_test")
        Xt = check_matrix(X_test, name="X_test", n_features=d)
        yt = check_labels(y_test, Xt.shape[0], name="y_test", both_classes=False)
    if refit:
        tasks.append((X, y, Xt, yt))
    res = Parallel(n_jobs=n_jobs)(
        delayed(_grid_task)(template, *t, counts, Cs) for t in tasks)
    cv = np.stack([r[0] for r in res[:len(splits)]])  # (folds, counts, Cs)
    fold_nnz = np.stack([r[1] for r in res[:len(splits)]])
    points = []
    for i, count in enumerate(counts):
        for j, C in enumerate(Cs):
            test_auc = res[-1][0][i, j] if refit else np.nan
            nnz = res[-1][1][i, j] if refit else round(float(fold_nnz[:, i, j].mean()))
            points.append({
                "n_features": int(d if count is None else min(count, d)), "C": C,
                "cv_auroc": float(cv[:, i, j].mean()), "cv_std": float(cv[:, i, j].std()),
                "test_auroc": None if np.isnan(test_auc) else float(test_auc),
                "n_nonzero": int(nnz)})
    return points
