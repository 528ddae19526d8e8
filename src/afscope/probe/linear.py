"""The registered probe methods: logistic (L1, L2, elastic net), ridge and difference of means.

Each class only fits its head on the standardized selected features ``Xs (n, k)``; everything
else is :class:`~afscope.probe.base.BaseProbe`. Solvers accept ``scipy.sparse`` directly:

* ``logistic_l1``: liblinear (what the seeds used; fast coordinate descent on sparse rows; no
  warm start). liblinear penalizes the intercept as a weight on a constant feature; we set that
  feature to :data:`INTERCEPT_SCALING` (100) so the intercept is effectively unpenalized. This
  matters for sparse input, which is scaled but not centered: its intercept must absorb
  ``-mean . w`` and, penalized, it biases the fit (-0.02 CV AUROC in benchmarks/bench_probe.py);
  unpenalized, the uncentered fit matches the centered dense one;
* ``logistic_l2``: lbfgs (sparse-capable, unpenalized intercept, warm-startable across a C grid);
* ``elasticnet``: saga (the only scikit-learn solver for it; warm-startable);
* ``ridge``: ``RidgeClassifier`` (targets -1/+1, ``alpha = 1 / C``) + Platt scaling;
* ``diffmean``: ``w = mean(Xs[y=1]) - mean(Xs[y=0])``, threshold at the midpoint of the class
  means, + Platt scaling. Closed form, no regularization (``C`` is unused).
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, RidgeClassifier

from afscope.probe.base import BaseProbe, Head, register_probe
from afscope.probe.checks import Matrix

# scikit-learn >= 1.8 selects the penalty through l1_ratio and deprecates ``penalty``
_NEW_PENALTY_API = (inspect.signature(LogisticRegression).parameters["penalty"].default
                    == "deprecated")


def logistic_regression(l1_ratio: float, **kwargs: Any) -> LogisticRegression:
    """A ``LogisticRegression`` with an L1 share ``l1_ratio`` on any scikit-learn >= 1.4."""
    if _NEW_PENALTY_API:
        return LogisticRegression(l1_ratio=l1_ratio, **kwargs)
    penalty = {0.0: "l2", 1.0: "l1"}.get(float(l1_ratio), "elasticnet")
    extra = {"l1_ratio": l1_ratio} if penalty == "elasticnet" else {}
    return LogisticRegression(penalty=penalty, **extra, **kwargs)


INTERCEPT_SCALING = 100.0


class _LogisticProbe(BaseProbe):
    solver = "liblinear"

    def _l1_ratio(self) -> float:
        raise NotImplementedError

    def _fit_head(self, Xs: Matrix, y: np.ndarray, warm: Head | None = None) -> Head:
        warm_ok = warm is not None and self.supports_warm_start
        lr = logistic_regression(
            self._l1_ratio(), C=self.C, solver=self.solver, tol=self.tol,
            max_iter=self.max_iter, class_weight=self.class_weight, random_state=self.seed,
            warm_start=warm_ok,
            **({"intercept_scaling": INTERCEPT_SCALING} if self.solver == "liblinear" else {}))
        if warm_ok:
            assert warm is not None
            lr.coef_ = warm[0].reshape(1, -1).copy()
            lr.intercept_ = np.array([warm[1]])
        with warnings.catch_warnings():
            # non-convergence stays a warning (sklearn habit) but is said once per fit
            warnings.simplefilter("always", ConvergenceWarning)
            lr.fit(Xs, y)
        return lr.coef_.ravel().astype(np.float64), float(lr.intercept_[0]), int(np.max(lr.n_iter_))


@register_probe("logistic_l1")
class L1LogisticProbe(_LogisticProbe):
    """Logistic regression with an L1 penalty (liblinear): sparse weights, seed 001's best probe.

    >>> import numpy as np
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.2]]); y = np.array([0, 1, 0, 1])
    >>> L1LogisticProbe(C=10.0).fit(X, y).predict(X).tolist()
    [0, 1, 0, 1]
    """

    solver = "liblinear"

    def _l1_ratio(self) -> float:
        return 1.0


@register_probe("logistic_l2")
class L2LogisticProbe(_LogisticProbe):
    """Logistic regression with an L2 penalty (lbfgs)."""

    solver = "lbfgs"
    supports_warm_start = True

    def _l1_ratio(self) -> float:
        return 0.0


@register_probe("elasticnet")
class ElasticNetProbe(_LogisticProbe):
    """Logistic regression with an elastic-net penalty (saga), L1 share ``l1_ratio``."""

    solver = "saga"
    supports_warm_start = True

    def _l1_ratio(self) -> float:
        return float(self.l1_ratio)


@register_probe("ridge")
class RidgeProbe(BaseProbe):
    """Ridge classifier (least squares on -1/+1 targets, ``alpha = 1 / C``) + Platt scaling."""

    uses_platt = True

    def _fit_head(self, Xs: Matrix, y: np.ndarray, warm: Head | None = None) -> Head:
        rc = RidgeClassifier(alpha=1.0 / self.C, class_weight=self.class_weight, tol=self.tol,
                             max_iter=self.max_iter, random_state=self.seed)
        rc.fit(Xs, y)
        n_iter = int(np.max(rc.n_iter_)) if getattr(rc, "n_iter_", None) is not None else 0
        return rc.coef_.ravel().astype(np.float64), float(np.ravel(rc.intercept_)[0]), n_iter


@register_probe("diffmean")
class DiffMeanProbe(BaseProbe):
    """Difference of class means (the steering direction of seed 003) + Platt scaling."""

    uses_platt = True

    def _fit_head(self, Xs: Matrix, y: np.ndarray, warm: Head | None = None) -> Head:
        pos = np.asarray(Xs[y == 1].mean(axis=0), np.float64).ravel()
        neg = np.asarray(Xs[y == 0].mean(axis=0), np.float64).ravel()
        w = pos - neg
        return w, float(-0.5 * np.dot(w, pos + neg)), 0
