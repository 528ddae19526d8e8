import json
from fractions import Fraction

import pytest

from afscope.errors import DataError
from afscope.explain.answers import change_sentence, label_sentence
from afscope.explain.metrics import (
    has_changed_f1,
    has_changed_f1_ci,
    max_over_references,
    score_row,
    summarize,
)

_N = 0


def gen(true_changed: bool, pred: str | None, qt: str = "generative_explanation") -> dict:
    """A generative row: truth comply->refuse (changed) or comply->comply; ``pred`` is
    "changed", "unchanged" or None (an unparseable answer)."""
    global _N
    _N += 1
    after = "refuse" if true_changed else "comply"
    if pred is None:
        text = "It probably changes, hard to say."
    else:
        text = change_sentence("comply", "refuse" if pred == "changed" else "comply")
    return {"id": f"g{_N}", "task": "context_ablation" if qt != "steering_prediction" else
            "steering", "question_type": qt, "answer": change_sentence("comply", after),
            "prediction": text, "reference": {"before": "comply", "after": after},
            "changed": true_changed}


def lab(label: str, prediction: str, qt: str = "orig_match", changed: bool = False) -> dict:
    return {"id": f"l{label}{prediction}", "task": "context_ablation", "question_type": qt,
            "answer": label_sentence(label), "prediction": prediction,
            "reference": {"label": label}, "changed": changed}


def desc(i: int, prediction: str, **extra) -> dict:
    row = {"id": f"d{i}", "task": "features", "question_type": "feature_description",
           "answer": "Mentions of being monitored.", "prediction": prediction,
           "reference": {"descriptions": ["Mentions of being monitored.", "Oversight talk"]},
           "changed": None}
    row.update(extra)
    return row


def _f1(p: Fraction, r: Fraction) -> Fraction:
    return 2 * p * r / (p + r) if p + r else Fraction(0)


def test_f1_asymmetric_confusion_precision_recall_not_swapped():
    # true changed: predicted changed, changed, unchanged
    # true unchanged: predicted changed, changed, unchanged
    rows = [gen(True, "changed"), gen(True, "changed"), gen(True, "unchanged"),
            gen(False, "changed"), gen(False, "changed"), gen(False, "unchanged")]
    res = has_changed_f1(rows)
    # changed: TP=2, predicted changed=4, true changed=3
    p_c, r_c = Fraction(2, 4), Fraction(2, 3)
    # unchanged: TP=1, predicted unchanged=2, true unchanged=3
    p_u, r_u = Fraction(1, 2), Fraction(1, 3)
    pc, pu = res["per_class"]["changed"], res["per_class"]["unchanged"]
    assert pc["precision"] == pytest.approx(float(p_c))
    assert pc["recall"] == pytest.approx(float(r_c))
    assert pu["precision"] == pytest.approx(float(p_u))
    assert pu["recall"] == pytest.approx(float(r_u))
    assert (pc["n_true"], pc["n_pred"], pu["n_true"], pu["n_pred"]) == (3, 4, 3, 2)
    assert pc["f1"] == pytest.approx(4 / 7)
    assert pu["f1"] == pytest.approx(2 / 5)
    expected = (_f1(p_c, r_c) + _f1(p_u, r_u)) / 2
    assert expected == Fraction(17, 35)
    assert res["f1"] == pytest.approx(17 / 35)
    assert res["n"] == 6 and res["n_unparsed"] == 0
    assert res["classes"] == ["changed", "unchanged"]


def test_unparsed_rows_are_misses_of_their_true_class_only():
    rows = [gen(True, "changed"), gen(True, None), gen(False, "unchanged"),
            gen(False, "unchanged")]
    res = has_changed_f1(rows)
    pc, pu = res["per_class"]["changed"], res["per_class"]["unchanged"]
    # changed: TP=1, predicted 1, true 2 -> P=1, R=1/2; unchanged untouched (no false positive)
    assert (pc["precision"], pc["recall"]) == (1.0, 0.5)
    assert (pu["precision"], pu["recall"], pu["n_pred"]) == (1.0, 1.0, 2)
    assert res["f1"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert res["n_unparsed"] == 1


def test_f1_ignores_label_questions_and_leaves_out_empty_classes():
    rows = [gen(True, "changed", qt="steering_prediction"), gen(True, "changed"),
            lab("refuse", "garbage", changed=False)]
    res = has_changed_f1(rows)
    assert res["n"] == 2 and res["classes"] == ["changed"] and res["f1"] == 1.0
    assert res["per_class"]["unchanged"] == {"precision": None, "recall": None, "f1": 0.0,
                                             "n_true": 0, "n_pred": 0}
    # a predicted class with no true rows is kept, with F1 0
    res = has_changed_f1([gen(True, "changed"), gen(True, "unchanged")])
    assert res["classes"] == ["changed", "unchanged"]
    assert res["f1"] == pytest.approx((_f1(1, Fraction(1, 2)) + 0) / 2)
    assert has_changed_f1([lab("comply", "x")])["f1"] is None
    assert has_changed_f1_ci([lab("comply", "x")]) is None


def test_score_row_generative_and_label_content():
    r = score_row({**gen(True, "changed"),
                   "prediction": "  The behaviour would change   from <<<comply>>> to <<<refuse>>>.\n"})
    # exact compares whitespace-collapsed text; the strict parser still rejects "change   from"
    assert r["exact"] is True
    assert r["parse_ok"] is False and r["content"] is False and r["pred_changed"] is None
    r = score_row({**gen(True, "changed"),
                   "prediction": "\n The behaviour would change from <<<comply>>> to <<<refuse>>>.  "})
    assert (r["exact"], r["content"], r["parsed"], r["pred_changed"]) == (
        True, True, ["comply", "refuse"], True)
    r = score_row({**gen(False, "unchanged"), "prediction": "the behaviour would remain <<<COMPLY>>>"})
    assert (r["parse_ok"], r["exact"], r["content"], r["pred_changed"]) == (True, False, True, False)
    r = score_row(lab("refuse", "The behaviour would be <<<refuse>>>"))
    assert (r["parse_ok"], r["exact"], r["content"], r["parsed"]) == (True, False, True, ["refuse"])
    r = score_row(lab("refuse", "The behaviour would be <<<refuse>>>.", qt="change_match"))
    assert (r["exact"], r["content"], r["pred_changed"]) == (True, True, None)
    r = score_row(lab("refuse", "The behaviour would be <<<comply>>>."))
    assert (r["parse_ok"], r["exact"], r["content"]) == (True, False, False)
    r = score_row(lab("refuse", "refuse"))
    assert (r["parse_ok"], r["content"], r["parsed"]) == (False, False, None)
    json.dumps(r)


def test_score_row_rejects_bad_rows():
    with pytest.raises(DataError, match="question_type"):
        score_row({**lab("comply", "x"), "question_type": "nope"})
    with pytest.raises(DataError, match="'label'"):
        score_row({**lab("comply", "x"), "reference": {}})
    with pytest.raises(DataError, match="prediction"):
        score_row({**lab("comply", "x"), "prediction": None})


def test_description_similarity_scaling_and_failures():
    rows = [desc(1, "mentions of being   MONITORED.", judge_score=5, embed_similarity=0.9),
            desc(2, "something else", judge_score=1, embed_similarity=0.1),
            desc(3, "about oversight", judge_score=3),
            desc(4, "about tests", judge_score=None),
            desc(5, "bool is not a score", judge_score=True),
            desc(6, "   ")]  # not judged at all: no failure counted
    s = [score_row(r) for r in rows]
    assert [r["judge_similarity"] for r in s] == [1.0, 0.0, 0.5, None, None, None]
    assert [r["exact"] for r in s] == [True, False, False, False, False, False]
    assert [r["parse_ok"] for r in s] == [True] * 5 + [False]
    assert s[0]["content"] is None and s[0]["embed_similarity"] == 0.9
    out = summarize(rows, n_boot=200)
    a = out["subsets"]["all"]
    assert set(out["subsets"]) == {"all"}
    assert a["judge_similarity"]["mean"] == pytest.approx(0.5) and a["judge_similarity"]["n"] == 3
    assert a["embed_similarity"]["mean"] == pytest.approx(0.5) and a["embed_similarity"]["n"] == 2
    assert a["judge_parse_failures"] == 2
    assert a["content_match"] is None and a["has_changed_f1"] is None
    assert a["parse_rate"]["mean"] == pytest.approx(5 / 6)
    assert a["exact_match"]["mean"] == pytest.approx(1 / 6)


def test_max_over_references():
    assert max_over_references([None, 3, 5, None]) == 5
    assert max_over_references([None, None]) is None
    assert max_over_references([]) is None
    with pytest.raises(ValueError):
        max_over_references([7])


def _mixed_rows() -> list[dict]:
    pattern = [(True, "changed"), (True, "changed"), (True, None), (True, "unchanged"),
               (False, "unchanged"), (False, "unchanged"), (False, "changed"),
               (False, "unchanged"), (True, "changed"), (False, "unchanged")]
    rows = [gen(t, p) for t, p in pattern]
    rows += [gen(t, p, qt="steering_prediction") for t, p in pattern[:6]]
    rows += [lab("refuse", label_sentence("refuse"), changed=True),
             lab("comply", "nope", qt="change_match", changed=False)]
    rows += [desc(i, "x", judge_score=s) for i, s in enumerate([4, 2, None])]
    return rows


def _cis(obj):
    if isinstance(obj, dict):
        if {"lo", "hi"} <= obj.keys():
            yield obj
        for v in obj.values():
            yield from _cis(v)


def test_summarize_deterministic_split_counts_and_ci_bounds():
    rows = _mixed_rows()
    a = summarize(rows, n_boot=300, seed=3)
    b = summarize(rows, n_boot=300, seed=3)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert a != summarize(rows, n_boot=300, seed=4)
    assert a["n"] == 21
    sub = a["subsets"]
    assert (sub["all"]["n"], sub["changed"]["n"], sub["unchanged"]["n"]) == (21, 10, 8)
    qt = a["by_question_type"]
    assert set(qt) == {"generative_explanation", "steering_prediction", "orig_match",
                       "change_match", "feature_description"}
    assert set(qt["feature_description"]) == {"all"}
    g = qt["generative_explanation"]
    assert (g["all"]["n"], g["changed"]["n"], g["unchanged"]["n"]) == (10, 5, 5)
    assert g["all"]["has_changed_f1"]["f1"] == pytest.approx(
        has_changed_f1(rows[:10])["f1"])
    # all generative rows of the condition feed the overall F1; unparsed ones count 0 everywhere
    assert sub["all"]["has_changed_f1"]["n"] == 16
    assert g["all"]["parse_rate"]["mean"] == pytest.approx(0.9)
    assert g["all"]["exact_match"]["mean"] == pytest.approx(0.7)
    assert g["all"]["content_match"]["mean"] == pytest.approx(0.7)
    assert sub["all"]["content_match"]["n"] == 18  # descriptions have no content match
    cis = list(_cis(a))
    assert len(cis) > 20
    for ci in cis:
        point = ci["f1"] if "f1" in ci else ci["mean"]
        assert ci["lo"] <= point + 1e-12 and point <= ci["hi"] + 1e-12
    f1 = sub["all"]["has_changed_f1"]
    assert f1["lo"] < f1["hi"]


def test_f1_ci_collapses_for_one_row():
    ci = has_changed_f1_ci([gen(True, "changed")], n_boot=50)
    assert ci["f1"] == ci["lo"] == ci["hi"] == 1.0 and ci["n"] == 1


def test_intervals_resample_units_not_answers():
    """A scenario asked three times (or answered by three seeds) is one draw: tripling every row
    within its unit leaves each interval exactly as it was, where tripling independent rows would
    narrow it."""
    base = [gen(i % 3 == 0, ["changed", "unchanged", None][i % 4 % 3]) for i in range(12)]
    for i, r in enumerate(base):
        r["unit"] = f"s{i}"
    tripled = [{**r, "id": f"{r['id']}-{k}"} for r in base for k in range(3)]
    one, three = summarize(base, n_boot=400, seed=2), summarize(tripled, n_boot=400, seed=2)
    for key in ("has_changed_f1", "content_match", "parse_rate"):
        a, b = one["subsets"]["all"][key], three["subsets"]["all"][key]
        assert (a["lo"], a["hi"]) == pytest.approx((b["lo"], b["hi"]))
        assert b["n_units"] == 12 and b["n"] == 36
    assert three["subsets"]["all"]["n_units"] == 12
    rows = summarize([{k: v for k, v in r.items() if k != "unit"} for r in tripled],
                     n_boot=400, seed=2)["subsets"]["all"]["has_changed_f1"]
    f1 = three["subsets"]["all"]["has_changed_f1"]
    assert rows["f1"] == pytest.approx(f1["f1"])
    assert rows["hi"] - rows["lo"] < f1["hi"] - f1["lo"]
