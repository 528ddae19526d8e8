"""Learned attention pooling (MIL): record labels only, attention on the few signal tokens."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from afscope.errors import ArtifactError, ConfigError, DataError
from afscope.probe import AttentionPoolProbe, ProbeConfig, fit_probe, roc_auc
from afscope.probe.attention import check_rows
from afscope.study.transfer import pool_tokens


def bags(n_rec: int = 160, d: int = 128, k: int = 6, n_sig: int = 3, seed: int = 0
         ) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, np.ndarray]:
    """``(X (m, d) CSR, rows (m,), y (n_rec,), signal (m,) bool)``: every token holds ``k``
    random noise latents (2..d-1); ``n_sig`` tokens of each positive record also fire latent 0,
    which no other token does (negatives and most tokens of positives are pure noise)."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n_rec) % 2).astype(np.int64)
    rng.shuffle(y)
    lens = rng.integers(20, 50, n_rec)
    rows = np.repeat(np.arange(n_rec), lens)
    m = rows.size
    cols = 2 + np.argsort(rng.random((m, d - 2)), axis=1)[:, :k]  # k distinct noise latents
    vals = rng.exponential(1.0, (m, k))
    sig = np.zeros(m, bool)
    starts = np.r_[0, np.cumsum(lens)[:-1]]
    for r in np.flatnonzero(y == 1):
        sig[starts[r] + rng.choice(lens[r], n_sig, replace=False)] = True
    cols[sig, 0] = 0
    vals[sig, 0] = 2.0 + rng.exponential(1.0, int(sig.sum()))
    X = sp.csr_matrix((vals.ravel().astype(np.float32), cols.ravel(), np.arange(0, m * k + 1, k)),
                      shape=(m, d))
    X.sum_duplicates()
    return X, rows, y, sig


@pytest.fixture(scope="module")
def data():
    return bags(seed=0), bags(seed=1)


@pytest.fixture(scope="module")
def fitted(data):
    (X, rows, y, _), _ = data
    return AttentionPoolProbe(seed=0).fit(X, rows, y)


def test_learns_from_record_labels_and_attends_to_signal_tokens(data, fitted):
    (X, rows, y, _), (Xt, rt, yt, st) = data
    auroc = roc_auc(yt, fitted.decision_function(Xt, rt, yt.size))
    # the every-token-labelled baseline of the transfer study: token probe + max pooling
    tok = fit_probe(X, y[rows], ProbeConfig(method="logistic_l2", C=0.1, normalize="log1p"))
    base = roc_auc(yt, pool_tokens(tok.proba1(Xt), rt, yt.size, "max", 5))
    assert auroc > 0.9 and auroc >= base - 0.02, (auroc, base)
    att = fitted.attention(Xt, rt, yt.size)
    uniform = 1.0 / np.bincount(rt).mean()  # ~0.03
    pos_tok = yt[rt] == 1
    assert att[st].mean() > 5 * uniform  # the few signal tokens hold the weight
    assert att[pos_tok & ~st].mean() < uniform  # the noise tokens of positives lose it
    assert np.argmax(np.abs(fitted.coef_)) == 0 and np.argmax(fitted.attention_coef_) == 0


def test_shapes_and_consistency(data, fitted):
    _, (Xt, rt, yt, _) = data
    n, m = yt.size, Xt.shape[0]
    logit = fitted.decision_function(Xt, rt, n)
    proba = fitted.predict_proba(Xt, rt, n)
    att, s = fitted.attention(Xt, rt, n), fitted.token_scores(Xt)
    assert logit.shape == (n,) and proba.shape == (n, 2) and att.shape == s.shape == (m,)
    assert np.allclose(proba.sum(axis=1), 1.0) and set(fitted.predict(Xt, rt, n)) <= {0, 1}
    assert fitted.coef_.shape == fitted.attention_coef_.shape == (Xt.shape[1],)
    assert fitted.n_iter_ == fitted.loss_curve_.size == fitted.epochs
    assert fitted.loss_curve_[-1] < fitted.loss_curve_[0]
    # record logit = attention-weighted mean of its token scores + bias; weights sum to 1
    assert np.allclose(np.bincount(rt, att, n), 1.0)
    assert np.allclose(np.bincount(rt, att * s, n) + fitted.intercept_, logit)
    assert np.allclose(fitted.proba1(Xt.toarray(), rt, n), proba[:, 1])  # dense input too


def test_seeded_determinism(data):
    (X, rows, y, _), (Xt, rt, yt, _) = data
    a = AttentionPoolProbe(epochs=40, seed=3).fit(X, rows, y)
    b = clone(a).fit(X, rows, y)
    assert np.array_equal(a.coef_, b.coef_) and a.intercept_ == b.intercept_
    assert np.array_equal(a.decision_function(Xt, rt), b.decision_function(Xt, rt))
    c = AttentionPoolProbe(epochs=40, seed=4).fit(X, rows, y)
    assert not np.array_equal(a.coef_, c.coef_)


def test_records_without_tokens_score_the_bias():
    X, rows, y, _ = bags(n_rec=40, seed=2)
    # records 20 (renumber the rest) and the appended 41 and 42 have no tokens
    rows = np.where(rows >= 20, rows + 1, rows)
    y = np.append(np.insert(y, 20, 1), [0, 1])
    probe = AttentionPoolProbe(epochs=30).fit(X, rows, y)
    logit = probe.decision_function(X, rows, y.size)
    assert logit.shape == (43,)
    assert np.allclose(logit[[20, 41, 42]], probe.intercept_)
    assert probe.decision_function(X, rows).shape == (41,)  # default: rows[-1] + 1
    empty = sp.csr_matrix((0, X.shape[1]))
    assert np.allclose(probe.proba1(empty, np.zeros(0, np.int64), 3),
                       1 / (1 + np.exp(-probe.intercept_)))


def test_bad_input_is_a_clear_error(data, fitted):
    (X, rows, y, _), _ = data
    shuffled = rows.copy()
    shuffled[[0, -1]] = shuffled[[-1, 0]]
    with pytest.raises(DataError, match="ascending"):
        AttentionPoolProbe().fit(X, shuffled, y)
    with pytest.raises(DataError, match="entries but X has"):
        AttentionPoolProbe().fit(X, rows[:-1], y)
    with pytest.raises(DataError, match="out of range"):
        AttentionPoolProbe().fit(X, rows, y[:-1])
    with pytest.raises(DataError, match=">= 0"):
        check_rows(rows - 1, rows.size)
    with pytest.raises(DataError, match="integer"):
        check_rows(rows.astype(float), rows.size)
    with pytest.raises(DataError, match="both classes"):
        AttentionPoolProbe().fit(X, rows, np.zeros_like(y))
    with pytest.raises(ConfigError, match="epochs"):
        AttentionPoolProbe(epochs=0).fit(X, rows, y)
    with pytest.raises(ConfigError, match="normalize"):
        AttentionPoolProbe(normalize="zscore").fit(X, rows, y)
    with pytest.raises(ArtifactError, match="features"):
        fitted.decision_function(X[:, :10], rows)
    with pytest.raises(NotFittedError):
        AttentionPoolProbe().decision_function(X, rows)
