"""Metrics against scikit-learn, bootstrap reproducibility and stratification, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, brier_score_loss, roc_auc_score, roc_curve

from afscope.errors import DataError
from afscope.probe.metrics import (
    _weights,
    calibration_bins,
    evaluate_scores,
    roc_auc,
    tpr_at_fpr,
)


def scores(n=300, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.35).astype(int)
    s = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.2 * y)))
    if ties:
        s = np.round(s, 1)
    return y, s


def ref_tpr_at_fpr(y, s, f):
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return tpr[fpr <= f + 1e-12].max()


@pytest.mark.parametrize("ties", [False, True])
def test_point_values_match_sklearn(ties):
    y, s = scores(ties=ties)
    out = evaluate_scores(y, s, n_boot=50)
    m = out["metrics"]
    assert out["n"] == 300 and out["n_pos"] == int(y.sum())
    assert m["auroc"]["value"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert m["accuracy"]["value"] == pytest.approx(accuracy_score(y, s >= 0.5))
    assert m["brier"] == pytest.approx(brier_score_loss(y, s))
    assert m["tpr_at_1fpr"]["value"] == pytest.approx(ref_tpr_at_fpr(y, s, 0.01))
    assert m["tpr_at_5fpr"]["value"] == pytest.approx(ref_tpr_at_fpr(y, s, 0.05))
    assert m["detection_rate"]["value"] == pytest.approx(np.mean(s[y == 1] >= 0.5))
    assert m["false_positive_rate"]["value"] == pytest.approx(np.mean(s[y == 0] >= 0.5))
    assert m["mean_score"] == pytest.approx(s.mean())
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert tpr_at_fpr(y, s, 0.1) == pytest.approx(ref_tpr_at_fpr(y, s, 0.1))
    for k in ("auroc", "accuracy", "tpr_at_5fpr", "detection_rate", "false_positive_rate"):
        assert m[k]["lo"] <= m[k]["value"] <= m[k]["hi"] or k.startswith("tpr")
        assert set(m[k]) == {"value", "lo", "hi"}


def test_bootstrap_is_seeded_and_stratified():
    y, s = scores()
    a = evaluate_scores(y, s, n_boot=200, seed=3)
    b = evaluate_scores(y, s, n_boot=200, seed=3)
    c = evaluate_scores(y, s, n_boot=200, seed=4)
    assert a == b
    assert a["metrics"]["auroc"] != c["metrics"]["auroc"]
    assert a["metrics"]["auroc"]["value"] == c["metrics"]["auroc"]["value"]
    w = _weights(7, 100, np.random.default_rng(0))
    assert w.shape == (101, 7) and (w.sum(axis=1) == 7).all() and (w[0] == 1).all()


def test_bootstrap_ci_matches_a_plain_loop():
    # the vectorized resamples equal resampling indices one at a time with the same counts
    y, s = scores(n=80)
    rng = np.random.default_rng(np.random.SeedSequence(0))
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    wp, wn = _weights(pos.size, 30, rng), _weights(neg.size, 30, rng)
    loop = []
    for b in range(1, 31):
        idx = np.concatenate([np.repeat(pos, wp[b].astype(int)), np.repeat(neg, wn[b].astype(int))])
        loop.append(roc_auc_score(y[idx], s[idx]))
    lo, hi = np.percentile(loop, [2.5, 97.5])
    ci = evaluate_scores(y, s, n_boot=30, seed=0)["metrics"]["auroc"]
    assert ci["lo"] == pytest.approx(lo) and ci["hi"] == pytest.approx(hi)


def test_single_class_set_reports_detection_rate_only():
    s = np.array([0.9, 0.7, 0.2, 0.6])
    m = evaluate_scores(np.ones(4, int), s, n_boot=100)["metrics"]
    assert m["auroc"] is None and m["tpr_at_1fpr"] is None and m["false_positive_rate"] is None
    assert m["detection_rate"]["value"] == 0.75
    assert 0 <= m["detection_rate"]["lo"] <= m["detection_rate"]["hi"] <= 1
    neg = evaluate_scores(np.zeros(4, int), s, n_boot=10)["metrics"]
    assert neg["detection_rate"] is None and neg["false_positive_rate"]["value"] == 0.75


def test_per_category():
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.4, 0.85, 0.1, 0.3, 0.6])
    cats = ["af", "af", "af", "hard_negative", "hard_negative", "aligned", "aligned"]
    pc = evaluate_scores(y, s, cats, n_boot=20)["per_category"]
    assert set(pc) == {"af", "hard_negative", "aligned"}
    assert pc["af"] == {"n": 3, "flag_rate": pytest.approx(2 / 3), "auroc_vs_pos": None}
    assert pc["hard_negative"]["flag_rate"] == 0.5
    sub = [0, 1, 2, 3, 4]
    assert pc["hard_negative"]["auroc_vs_pos"]["value"] == pytest.approx(
        roc_auc_score(y[sub], s[sub]))
    # a category's CI does not depend on which other categories exist
    again = evaluate_scores(y[[0, 1, 2, 3, 4]], s[[0, 1, 2, 3, 4]], cats[:5], n_boot=20)
    assert again["per_category"]["hard_negative"] == pc["hard_negative"]


def test_calibration_and_ece():
    y = np.array([0, 0, 1, 1])
    s = np.array([0.05, 0.15, 0.95, 1.0])
    out = evaluate_scores(y, s, n_boot=0)
    cal = out["calibration"]
    assert cal["count"] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2] and len(cal["bin_edges"]) == 11
    assert cal["mean_pred"][2] is None and cal["frac_pos"][9] == 1.0
    assert out["metrics"]["ece"] == pytest.approx((0.05 + 0.15 + 0.05 + 0.0) / 4)
    assert calibration_bins(y, s, 2)["count"] == [2, 2]


def test_errors():
    with pytest.raises(DataError, match="empty"):
        evaluate_scores([], [])
    with pytest.raises(DataError, match="shape"):
        evaluate_scores([0, 1], [0.5])
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        evaluate_scores([0, 1], [0.5, 1.5])
    with pytest.raises(DataError, match="categories"):
        evaluate_scores([0, 1], [0.5, 0.5], ["a"])
