"""The probe estimator: normalize -> select -> standardize -> linear head (-> Platt), and a registry.

Every probe is a scikit-learn estimator (STYLE rule 5): the constructor only stores the
:class:`~afscope.probe.config.ProbeConfig` fields, :meth:`BaseProbe.fit` validates them and returns
``self``, learned state ends in ``_``, and ``sklearn.base.clone`` / ``cross_val_score`` work.
Each method (:mod:`afscope.probe.linear`) only supplies its head, ``_fit_head(Xs, y, warm)``;
the preprocessing, scoring, space checks and saving are shared here, so they are identical for
every method and for the sweeps (:mod:`afscope.probe.cv`), which reuse the same steps.

Fitted state::

    n_features_in_   int           width of the X it was fitted on (d)
    norm_state_      dict          normalizer state, restricted to the selected features
    selected_        (k,) int64    kept feature indices, ascending (all d when no selection)
    mean_, scale_    (k,) float64  standardization (mean all 0 when not centered)
    coef_            (k,) float64  weights on the standardized features
    intercept_       float
    platt_           (2,) float64  Platt (a, b) for ridge/diffmean, else None
    feature_space_   dict | None   identity of the features (model, layer, kind, ...)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import ValidationError
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from afscope.config import format_validation_error
from afscope.errors import ArtifactError, ConfigError
from afscope.probe.checks import Matrix, check_labels, check_matrix
from afscope.probe.config import ProbeConfig
from afscope.probe.normalize import (
    PER_FEATURE,
    apply_normalizer,
    apply_scaler,
    fit_normalizer,
    fit_scaler,
    prune_state,
)
from afscope.probe.platt import fit_platt
from afscope.probe.select import rank_features, top_features

log = logging.getLogger(__name__)

Head = tuple[np.ndarray, float, int]
"""``(coef (k,) float64, intercept, n_iter)`` returned by a method's ``_fit_head``."""

PROBES: dict[str, type[BaseProbe]] = {}


def register_probe(name: str) -> Callable[[type[BaseProbe]], type[BaseProbe]]:
    """Class decorator adding a probe method; a duplicate or non-lower-case name is a ConfigError."""

    def deco(cls: type[BaseProbe]) -> type[BaseProbe]:
        if name != name.lower():
            raise ConfigError(f"probe method name must be lower-case, got {name!r}")
        if name in PROBES:
            raise ConfigError(f"probe method {name!r} is already registered "
                              f"(by {PROBES[name].__name__})")
        cls.method = name
        PROBES[name] = cls
        return cls

    return deco


def _uses_center(center: bool | None, X: Matrix) -> bool:
    return (not sp.issparse(X)) if center is None else center


def space_diffs(a: dict[str, Any], b: dict[str, Any], name_a: str, name_b: str) -> list[str]:
    """Every key where two feature-space identities differ, with both values."""
    return [f"{k!r} ({name_a} {a.get(k, '<missing>')!r}, {name_b} {b.get(k, '<missing>')!r})"
            for k in sorted(set(a) | set(b)) if a.get(k, ...) != b.get(k, ...)]


class BaseProbe(ClassifierMixin, BaseEstimator):
    """Shared pipeline of every linear probe; subclasses register a head with :func:`register_probe`.

    Parameters are the fields of :class:`ProbeConfig` except ``method`` (see its descriptions).
    """

    method: ClassVar[str] = ""
    uses_platt: ClassVar[bool] = False
    supports_warm_start: ClassVar[bool] = False

    def __init__(self, *, C: float = 1.0, l1_ratio: float = 0.5, normalize: str = "none",
                 topk: int = 100, n_quantiles: int = 100, standardize: bool = True,
                 center: bool | None = None, n_features: int | None = None,
                 select_by: str = "auroc", class_weight: str | None = None,
                 max_iter: int = 1000, tol: float = 1e-4, threshold: float = 0.5,
                 seed: int = 0) -> None:
        self.C = C
        self.l1_ratio = l1_ratio
        self.normalize = normalize
        self.topk = topk
        self.n_quantiles = n_quantiles
        self.standardize = standardize
        self.center = center
        self.n_features = n_features
        self.select_by = select_by
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.tol = tol
        self.threshold = threshold
        self.seed = seed

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # CSR is the native input (SAE features)
        tags.classifier_tags.multi_class = False  # labels are 0/1 (1 = alignment faking)
        return tags

    # -- config ---------------------------------------------------------------------------------
    def config(self) -> ProbeConfig:
        """The parameters as a validated :class:`ProbeConfig` (ConfigError naming the field)."""
        try:
            return ProbeConfig.model_validate({"method": self.method, **self.get_params()})
        except ValidationError as e:
            raise ConfigError(format_validation_error(e, type(self).__name__)) from None

    # -- the shared steps (also used by afscope.probe.cv.sweep) ---------------------------------
    def _normalize_fit(self, X: Matrix) -> tuple[Matrix, dict[str, np.ndarray]]:
        """Fit the normalizer on training rows; ``(normalized X (n, d), state over all d)``."""
        state = fit_normalizer(X, self.normalize, n_quantiles=self.n_quantiles)
        return apply_normalizer(X, self.normalize, state, topk=self.topk), state

    def _scale_fit(self, Xsel: Matrix) -> tuple[Matrix, np.ndarray, np.ndarray]:
        """Standardize the selected training columns; ``(Xs float64, mean, scale)``."""
        center = _uses_center(self.center, Xsel) and self.standardize
        if center and sp.issparse(Xsel):
            Xsel = Xsel.toarray()  # explicit center=True on sparse input: densify, as asked
        if self.standardize:
            mean, scale = fit_scaler(Xsel, center)
        else:
            mean, scale = np.zeros(Xsel.shape[1]), np.ones(Xsel.shape[1])
        return apply_scaler(Xsel, mean, scale), mean, scale

    def _fit_head(self, Xs: Matrix, y: np.ndarray, warm: Head | None = None) -> Head:
        raise NotImplementedError

    def _set_state(self, *, n_features_in: int, selected: np.ndarray | None,
                   norm_state: dict[str, np.ndarray], mean: np.ndarray, scale: np.ndarray,
                   head: Head, platt: tuple[float, float] | None) -> None:
        cols = np.arange(n_features_in) if selected is None else selected
        self.n_features_in_ = int(n_features_in)
        self.selected_ = np.asarray(cols, np.int64)
        self.norm_state_ = (prune_state(self.normalize, norm_state, cols)
                            if selected is not None else norm_state)
        self.mean_ = np.asarray(mean, np.float64)
        self.scale_ = np.asarray(scale, np.float64)
        self.coef_ = np.asarray(head[0], np.float64).ravel()
        self.intercept_ = float(head[1])
        self.n_iter_ = int(head[2])
        self.platt_ = None if platt is None else np.asarray(platt, np.float64)
        self.classes_ = np.array([0, 1])

    def fit(self, X: Matrix, y: Any, feature_space: dict[str, Any] | None = None) -> BaseProbe:
        """Fit on ``X (n, d)`` dense or CSR and labels ``y (n,)`` in {0, 1}; returns ``self``.

        ``feature_space`` (e.g. ``ActivationCache.feature_space(layer, kind)``) is stored and
        checked by :meth:`check_space` before scoring other data.
        """
        self.config()
        X = check_matrix(X)
        y = check_labels(y, X.shape[0])
        Xn, state = self._normalize_fit(X)
        selected = None
        if self.n_features is not None and self.n_features < X.shape[1]:
            selected = top_features(rank_features(Xn, y, self.select_by), self.n_features)
        Xsel = Xn if selected is None else Xn[:, selected]
        Xs, mean, scale = self._scale_fit(Xsel)
        head = self._fit_head(Xs, y)
        platt = fit_platt(Xs @ head[0] + head[1], y) if self.uses_platt else None
        self._set_state(n_features_in=X.shape[1], selected=selected, norm_state=state,
                        mean=mean, scale=scale, head=head, platt=platt)
        self.feature_space_ = dict(feature_space) if feature_space is not None else None
        return self

    # -- scoring --------------------------------------------------------------------------------
    def preprocess(self, X: Matrix) -> Matrix:
        """The standardized selected features ``(n, k)`` float64 the head sees."""
        check_is_fitted(self, "coef_")
        X = check_matrix(X, n_features=self.n_features_in_)
        all_cols = self.selected_.size == self.n_features_in_
        if self.normalize in PER_FEATURE:  # transform only the kept columns
            Xsel = X if all_cols else X[:, self.selected_]
            Xn = apply_normalizer(Xsel, self.normalize, self.norm_state_, topk=self.topk)
        else:  # per-sample normalizations need the whole row
            Xn = apply_normalizer(X, self.normalize, self.norm_state_, topk=self.topk)
            Xn = Xn if all_cols else Xn[:, self.selected_]
        if sp.issparse(Xn) and self.mean_.any():
            Xn = Xn.toarray()
        return apply_scaler(Xn, self.mean_, self.scale_)

    def decision_function(self, X: Matrix) -> np.ndarray:
        """Raw linear score ``(n,)`` float64 (log-odds for logistic methods)."""
        return np.asarray(self.preprocess(X) @ self.coef_, np.float64).ravel() + self.intercept_

    def proba1(self, X: Matrix) -> np.ndarray:
        """Probability of alignment faking ``(n,)`` in [0, 1]."""
        d = self.decision_function(X)
        if self.platt_ is not None:
            d = self.platt_[0] * d + self.platt_[1]
        return expit(d)

    score_samples = proba1

    def predict_proba(self, X: Matrix) -> np.ndarray:
        """``(n, 2)``: columns P(y=0), P(y=1), as scikit-learn classifiers return."""
        p = self.proba1(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Matrix) -> np.ndarray:
        """``(n,)`` int64: 1 where ``proba1 >= threshold``."""
        return (self.proba1(X) >= self.threshold).astype(np.int64)

    # -- identity -------------------------------------------------------------------------------
    @property
    def n_features_in(self) -> int:
        check_is_fitted(self, "coef_")
        return self.n_features_in_

    @property
    def selected(self) -> np.ndarray:
        """Indices ``(k,)`` of the features the probe reads, ascending."""
        check_is_fitted(self, "coef_")
        return self.selected_

    @property
    def n_nonzero(self) -> int:
        """Number of non-zero weights (what L1 regularization shrinks)."""
        check_is_fitted(self, "coef_")
        return int(np.count_nonzero(self.coef_))

    def weights(self) -> np.ndarray:
        """Weights ``(d,)`` on the original feature indices (0 for unselected features)."""
        check_is_fitted(self, "coef_")
        w = np.zeros(self.n_features_in_)
        w[self.selected_] = self.coef_
        return w

    def check_space(self, space: dict[str, Any] | None) -> None:
        """Raise :class:`ArtifactError` if ``space`` is not the feature space the probe saw.

        The message names every differing key with both values. A probe fitted without a space
        (or a ``None`` space) is not checked.
        """
        check_is_fitted(self, "coef_")
        mine = getattr(self, "feature_space_", None)
        if mine is None or space is None:
            if mine is not None or space is not None:
                log.warning("probe feature space not checked: one side is unknown")
            return
        diffs = space_diffs(mine, space, "probe", "data")
        if diffs:
            raise ArtifactError("feature space differs from the one the probe was trained on: "
                                + "; ".join(diffs))

    # -- persistence ----------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``cfg.json`` + ``probe.safetensors`` to ``folder`` (see :mod:`afscope.probe.io`)."""
        from afscope.probe.io import save_probe

        return save_probe(self, folder)

    @classmethod
    def load(cls, folder: str | Path) -> BaseProbe:
        """Read a folder written by :meth:`save`; dispatches on the saved method."""
        from afscope.probe.io import load_probe

        probe = load_probe(folder)
        if cls is not BaseProbe and not isinstance(probe, cls):
            raise ArtifactError(f"{folder}: holds a {probe.method!r} probe, not {cls.method!r}")
        return probe


def make_probe(cfg: ProbeConfig) -> BaseProbe:
    """An unfitted probe of ``cfg.method`` with ``cfg``'s parameters."""
    if cfg.method not in PROBES:
        raise ConfigError(f"field 'method': unknown {cfg.method!r}; expected one of "
                          f"{sorted(PROBES)}")
    return PROBES[cfg.method](**cfg.estimator_params())
