"""Learned attention pooling over token latents: a probe trained on record labels only (MIL).

The token probes of a transfer study (:func:`afscope.study.transfer.token_fitter`) give every
token its text's label, although an alignment-faking trace may fake in a few sentences and read
like any other trace elsewhere: most tokens of a positive text are then mislabelled noise. This
is multiple-instance learning (a text is a bag of tokens, labelled as a whole), and the probe
here learns from the bag's label alone (attention-based MIL, Ilse, Tomczak & Welling 2018,
"Attention-based Deep Multiple Instance Learning"), with a linear score and a linear attention::

    x_t                  (d,)  normalized, scaled SAE latents of token t (sparse, top-k per token)
    s_t = w . x_t              token score
    a_t = u . x_t              attention logit
    alpha_t = softmax_{t in record r}(a_t)      sums to 1 over each record's tokens
    logit_r = sum_{t in r} alpha_t s_t + b      a record without tokens scores b

No token ever gets a label: the gradient reaches a token only through its record's loss, weighted
by how much the probe attends to it. Training is full-batch Adam for a fixed number of epochs on
the class-balanced binary cross-entropy of the records plus an L2 penalty on ``w`` and ``u`` (not
``b``); the sparse rows are gathered and summed with ``index_add`` (no dense ``(n_tokens, d)``),
so 60k tokens x 1024 latents train in seconds on a CPU. The features get the SAE probes'
preprocessing (:mod:`afscope.probe.normalize`): a per-feature normalization (``log1p``) and
scaling to unit variance over the training tokens, without centering (sparse stays sparse).

Inputs::

    X     (n_tokens, d)  CSR (or dense) token latents
    rows  (n_tokens,)    int, the record of each token, ascending (non-decreasing)
    y     (n_records,)   record labels in {0, 1} (fit only); records may have no tokens

Fitted state::

    n_features_in_   int           d
    norm_state_      dict          normalizer state (quantile table; empty otherwise)
    scale_           (d,) float64  per-feature scale
    coef_            (d,) float64  w, the token score weights (on the scaled features)
    attention_coef_  (d,) float64  u, the attention weights
    intercept_       float         b
    n_iter_          int           Adam steps taken (= epochs)
    loss_curve_      (n_iter,)     training loss per step

torch is imported when a probe is fitted or scored, so ``afscope.probe`` stays light.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field, ValidationError
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from afscope.config import BaseConfig, format_validation_error
from afscope.errors import ConfigError, DataError
from afscope.probe.checks import Matrix, check_labels, check_matrix
from afscope.probe.normalize import apply_normalizer, apply_scaler, fit_normalizer, fit_scaler


class AttentionPoolConfig(BaseConfig):
    """Learned attention pooling of per-token latents, trained on record labels (MIL)."""

    epochs: int = Field(200, gt=0, description="Full-batch Adam steps (a fixed number).")
    lr: float = Field(0.02, gt=0, description="Adam learning rate.")
    weight_decay: float = Field(0.03, ge=0, description=(
        "L2 penalty 0.5 * weight_decay * (|w|^2 + |u|^2) added to the mean record loss (the "
        "bias is not penalized). Below ~0.01 a few hundred records are memorized through noise "
        "latents (synthetic bags, 200 records x 256 latents: test AUROC 0.58 at 0.01 with "
        "lr 0.01, 1.0 at 0.03 to 0.3)."))
    normalize: Literal["none", "binary", "log1p", "quantile"] = Field("log1p", description=(
        "Per-feature value transform before scaling (the SAE probes use log1p)."))
    standardize: bool = Field(True, description=(
        "Scale each latent to unit variance over the training tokens (no centering)."))
    class_weight: Literal["balanced"] | None = Field("balanced", description=(
        "balanced weighs each record by the inverse frequency of its class."))
    n_quantiles: int = Field(100, gt=1, description="Quantiles per feature of normalize=quantile.")
    threshold: float = Field(0.5, gt=0, lt=1, description="Probability flagged by predict.")
    seed: int = Field(0, description="Seed of the weight initialization.")


def check_rows(rows: Any, n_tokens: int, n_records: int | None = None) -> np.ndarray:
    """Validate the record index of each token: 1-D integers, one per token, ascending, in
    ``[0, n_records)``; ``(n_tokens,) int64``."""
    rows = np.asarray(rows)
    if rows.ndim != 1:
        raise DataError(f"rows: expected a 1-D record index per token, got shape {rows.shape}")
    if rows.shape[0] != n_tokens:
        raise DataError(f"rows: has {rows.shape[0]} entries but X has {n_tokens} token rows; "
                        f"give the record of every token")
    if rows.size and rows.dtype.kind not in "iu":
        raise DataError(f"rows: expected integer record indices, got dtype {rows.dtype}")
    rows = rows.astype(np.int64)
    if rows.size == 0:
        return rows
    if rows[0] < 0:
        raise DataError(f"rows: record indices must be >= 0, found {int(rows.min())}")
    down = np.flatnonzero(np.diff(rows) < 0)
    if down.size:
        i = int(down[0])
        raise DataError(f"rows: must be ascending (tokens grouped by record, records in order); "
                        f"token {i + 1} has record {int(rows[i + 1])} after record "
                        f"{int(rows[i])}. Sort X and rows by record first")
    if n_records is not None and rows[-1] >= n_records:
        raise DataError(f"rows: record index {int(rows[-1])} out of range for {n_records} "
                        f"records")
    return rows


def _torch() -> Any:
    import torch

    return torch


def _forward(W: Any, b: Any, t: dict[str, Any], n_rec: int) -> tuple[Any, Any, Any]:
    """``(record logits (n_rec,), attention (n_tok,), token scores (n_tok,))`` of the tensors
    ``t`` (:meth:`AttentionPoolProbe._tensors`) under ``W (d, 2)`` = [w | u] and bias ``b``."""
    torch = _torch()
    vals, cols, tok, rows = t["vals"], t["cols"], t["tok"], t["rows"]
    # sparse rows times W: gather the weights of each stored value, sum per token
    z = torch.zeros(t["n_tok"], 2, dtype=W.dtype).index_add(0, tok, vals[:, None] * W[cols])
    s, a = z[:, 0], z[:, 1]  # (n_tok,) each
    # softmax within each record (segment softmax), shifted by the record's max for stability
    amax = torch.full((n_rec,), -torch.inf, dtype=W.dtype).scatter_reduce(
        0, rows, a.detach(), reduce="amax", include_self=True)
    e = torch.exp(a - amax[rows])
    den = torch.zeros(n_rec, dtype=W.dtype).index_add(0, rows, e)
    att = e / den[rows]
    pooled = torch.zeros(n_rec, dtype=W.dtype).index_add(0, rows, att * s)  # 0 without tokens
    return pooled + b, att, s


class AttentionPoolProbe(ClassifierMixin, BaseEstimator):
    """A record classifier over its tokens' latents: attention-weighted token scores (MIL).

    Parameters are the fields of :class:`AttentionPoolConfig`. Unlike the linear probes, every
    method takes the tokens ``X (n_tokens, d)`` with their records ``rows (n_tokens,)`` and
    answers per record (``n_records``, default ``rows[-1] + 1``); see the module docstring.

    >>> import numpy as np, scipy.sparse as sp
    >>> X = sp.csr_matrix(np.array([[1., 0], [0, 1], [1, 0], [1, 0], [1, 0], [0, 1]]))
    >>> rows = np.array([0, 0, 1, 1, 2, 3]); y = np.array([1, 0, 0, 1])
    >>> p = AttentionPoolProbe(epochs=100, lr=0.1, weight_decay=0.0).fit(X, rows, y)
    >>> p.predict(X, rows).tolist()
    [1, 0, 0, 1]
    >>> p.attention(X, rows).round(2).tolist()[:2]  # record 0 attends to its latent-1 token
    [0.0, 1.0]
    """

    def __init__(self, *, epochs: int = 200, lr: float = 0.02, weight_decay: float = 0.03,
                 normalize: str = "log1p", standardize: bool = True,
                 class_weight: str | None = "balanced", n_quantiles: int = 100,
                 threshold: float = 0.5, seed: int = 0) -> None:
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.normalize = normalize
        self.standardize = standardize
        self.class_weight = class_weight
        self.n_quantiles = n_quantiles
        self.threshold = threshold
        self.seed = seed

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_class = False
        return tags

    def config(self) -> AttentionPoolConfig:
        """The parameters as a validated :class:`AttentionPoolConfig` (ConfigError naming the
        field)."""
        try:
            return AttentionPoolConfig.model_validate(self.get_params())
        except ValidationError as e:
            raise ConfigError(format_validation_error(e, type(self).__name__)) from None

    # -- data -----------------------------------------------------------------------------------
    def _tokens(self, X: Matrix, n_features: int | None = None) -> sp.csr_matrix:
        """``X`` checked and as CSR; an empty ``(0, d)`` matrix is allowed when scoring."""
        if n_features is not None and X.shape[0] == 0 and X.shape[1] == n_features:
            return sp.csr_matrix((0, n_features), dtype=np.float64)
        return sp.csr_matrix(check_matrix(X, n_features=n_features))

    def _tensors(self, Xn: Matrix, rows: np.ndarray) -> dict[str, Any]:
        """The normalized tokens ``Xn``, scaled, as flat tensors: ``vals, cols, tok (nnz,)``
        (value, latent and token of each stored value) and ``rows (n_tok,)``."""
        torch = _torch()
        Xs = sp.csr_matrix(apply_scaler(sp.csr_matrix(Xn), np.zeros(Xn.shape[1]), self.scale_))
        tok = np.repeat(np.arange(Xs.shape[0]), np.diff(Xs.indptr))
        return {"vals": torch.from_numpy(np.asarray(Xs.data, np.float64)),
                "cols": torch.from_numpy(Xs.indices.astype(np.int64)),
                "tok": torch.from_numpy(tok.astype(np.int64)),
                "rows": torch.from_numpy(rows), "n_tok": Xs.shape[0]}

    # -- fit ------------------------------------------------------------------------------------
    def fit(self, X: Matrix, rows: Any, y: Any) -> AttentionPoolProbe:
        """Fit on tokens ``X (n_tokens, d)`` of records ``rows (n_tokens,)`` (ascending) with
        record labels ``y (n_records,)``; returns ``self``."""
        torch = _torch()
        self.config()
        X = self._tokens(X)
        y = check_labels(y)
        rows = check_rows(rows, X.shape[0], y.size)
        n, d = y.size, X.shape[1]
        self.norm_state_ = fit_normalizer(X, self.normalize, n_quantiles=self.n_quantiles)
        Xn = apply_normalizer(X, self.normalize, self.norm_state_)
        self.scale_ = fit_scaler(Xn, False)[1] if self.standardize else np.ones(d)
        t = self._tensors(Xn, rows)
        if self.class_weight == "balanced":
            sw = n / (2.0 * np.bincount(y, minlength=2)[y])
        else:
            sw = np.ones(n)
        yt = torch.from_numpy(y.astype(np.float64))
        swt = torch.from_numpy(sw / sw.sum())
        g = torch.Generator().manual_seed(int(self.seed))
        W = (0.01 * torch.randn(d, 2, generator=g, dtype=torch.float64)).requires_grad_()
        b = torch.zeros((), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([W, b], lr=self.lr)
        losses = np.empty(self.epochs)
        for i in range(self.epochs):
            opt.zero_grad()
            logit = _forward(W, b, t, n)[0]
            bce = torch.nn.functional.binary_cross_entropy_with_logits(
                logit, yt, weight=swt, reduction="sum")
            loss = bce + 0.5 * self.weight_decay * (W * W).sum()
            loss.backward()
            opt.step()
            losses[i] = float(loss.detach())
        Wn = W.detach().numpy()
        self.n_features_in_ = int(d)
        self.coef_ = Wn[:, 0].astype(np.float64).copy()
        self.attention_coef_ = Wn[:, 1].astype(np.float64).copy()
        self.intercept_ = float(b.detach())
        self.n_iter_ = int(self.epochs)
        self.loss_curve_ = losses
        self.classes_ = np.array([0, 1])
        return self

    # -- scoring --------------------------------------------------------------------------------
    def _run(self, X: Matrix, rows: Any, n_records: int | None) -> tuple[np.ndarray, ...]:
        """``(record logits (n_records,), attention (n_tok,), token scores (n_tok,))``."""
        torch = _torch()
        check_is_fitted(self, "coef_")
        X = self._tokens(X, self.n_features_in_)
        rows = check_rows(rows, X.shape[0], n_records)
        if n_records is None:
            n_records = int(rows[-1]) + 1 if rows.size else 0
        t = self._tensors(apply_normalizer(X, self.normalize, self.norm_state_), rows)
        W = torch.from_numpy(np.column_stack([self.coef_, self.attention_coef_]))
        with torch.no_grad():
            logit, att, s = _forward(W, torch.tensor(self.intercept_, dtype=torch.float64), t,
                                     n_records)
        return logit.numpy(), att.numpy(), s.numpy()

    def decision_function(self, X: Matrix, rows: Any, n_records: int | None = None
                          ) -> np.ndarray:
        """Record logits ``(n_records,)`` float64; a record without tokens gets the bias."""
        return self._run(X, rows, n_records)[0]

    def proba1(self, X: Matrix, rows: Any, n_records: int | None = None) -> np.ndarray:
        """Probability of alignment faking per record ``(n_records,)`` in [0, 1]."""
        return expit(self.decision_function(X, rows, n_records))

    def predict_proba(self, X: Matrix, rows: Any, n_records: int | None = None) -> np.ndarray:
        """``(n_records, 2)``: columns P(y=0), P(y=1)."""
        p = self.proba1(X, rows, n_records)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Matrix, rows: Any, n_records: int | None = None) -> np.ndarray:
        """``(n_records,)`` int64: 1 where ``proba1 >= threshold``."""
        return (self.proba1(X, rows, n_records) >= self.threshold).astype(np.int64)

    def attention(self, X: Matrix, rows: Any, n_records: int | None = None) -> np.ndarray:
        """Attention weight of each token ``(n_tokens,)``, summing to 1 over each record's
        tokens: which tokens the probe read to score their record."""
        return self._run(X, rows, n_records)[1]

    def token_scores(self, X: Matrix) -> np.ndarray:
        """Score ``s_t = w . x_t`` of each token ``(n_tokens,)`` (its record's logit is the
        attention-weighted mean of these plus the bias)."""
        check_is_fitted(self, "coef_")
        return self._run(X, np.zeros(X.shape[0], np.int64), 1)[2]
