"""One-call training and evaluation: :func:`fit_probe` and :func:`evaluate_probe`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from afscope.probe.base import BaseProbe, make_probe
from afscope.probe.checks import Matrix, check_labels, check_matrix
from afscope.probe.config import ProbeConfig
from afscope.probe.metrics import evaluate_scores, roc_auc


def fit_probe(X: Matrix, y: Any, cfg: ProbeConfig,
              feature_space: dict[str, Any] | None = None) -> BaseProbe:
    """Fit ``cfg``'s probe on ``X (n, d)`` and ``y (n,)``; records training metrics.

    ``probe.train_metrics_`` = ``{n, n_pos, auroc, accuracy, n_nonzero, n_selected}`` on the
    training rows (optimistic by construction; saved in ``cfg.json`` for provenance).
    """
    X = check_matrix(X)
    y = check_labels(y, X.shape[0])
    probe = make_probe(cfg).fit(X, y, feature_space=feature_space)
    p = probe.proba1(X)
    probe.train_metrics_ = {
        "n": int(y.size), "n_pos": int(y.sum()), "auroc": roc_auc(y, p),
        "accuracy": float(np.mean((p >= probe.threshold) == y)),
        "n_nonzero": probe.n_nonzero, "n_selected": int(probe.selected_.size)}
    return probe


def evaluate_probe(probe: BaseProbe, X: Matrix, y: Any,
                   categories: Sequence[str] | None = None, n_boot: int = 1000,
                   seed: int = 0, feature_space: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """:func:`~afscope.probe.metrics.evaluate_scores` of ``probe.proba1(X)`` at the probe's
    threshold, after :meth:`~BaseProbe.check_space` when ``feature_space`` is given."""
    if feature_space is not None:
        probe.check_space(feature_space)
    return evaluate_scores(y, probe.proba1(X), categories, threshold=probe.threshold,
                           n_boot=n_boot, seed=seed)
