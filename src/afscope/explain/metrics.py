"""Evaluation metrics of the explainer: pure functions over scored prediction rows.

A row is a dict built by the evaluator: ``id``, ``task``, ``question_type``, ``answer`` (target
text), ``prediction`` (generated text), ``reference`` (see :class:`afscope.explain.schema.Example`),
``changed`` (bool, or None for descriptions) and, for descriptions, optional ``judge_score``
(int 1..5, None when the judge's reply did not parse) and ``embed_similarity`` (float or None).

Answers are read by the strict parser of :mod:`afscope.explain.answers`: a prediction it cannot
read counts as wrong (0 for exact and content match, a miss for its true class in the has-changed
F1), never guessed. Every rate carries a seeded 95% bootstrap interval, so a rerun writes the same
numbers. The resampled thing is the held-out unit (a row's ``unit``: its scenario or feature), not
the row: a scenario's three questions, or several seeds' answers on one feature, are not
independent draws, and resampling them one by one would narrow the interval. The has-changed F1's
interval recomputes the macro F1 on each resample of units.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from afscope.errors import DataError
from afscope.explain.answers import TOKEN_PREFIXES, parse_change, parse_label, parse_tokens
from afscope.stats import mean_ci, unit_weights

#: question types answered by a before/after change sentence (the has-changed F1 reads these).
GENERATIVE_TYPES: tuple[str, ...] = ("generative_explanation", "steering_prediction")
#: question types answered by a single-label sentence.
LABEL_TYPES: tuple[str, ...] = ("orig_match", "change_match")
DESCRIPTION_TYPE = "feature_description"
#: question types answered by a list of token names (set precision / recall / F1).
TOKEN_TYPES: tuple[str, ...] = tuple(TOKEN_PREFIXES)
#: the two has-changed classes, in output order.
F1_CLASSES: tuple[str, ...] = ("changed", "unchanged")


def _norm(text: str) -> str:
    return " ".join(text.split())


def _field(row: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in row:
        raise DataError(f"prediction row {row.get('id')!r}: missing field {key!r}")
    v = row[key]
    if not isinstance(v, kind):
        raise DataError(f"prediction row {row.get('id')!r}: field {key!r} must be "
                        f"{getattr(kind, '__name__', kind)}, got {type(v).__name__}")
    return v


def _ref(row: dict[str, Any], key: str) -> Any:
    ref = _field(row, "reference", dict)
    if key not in ref:
        raise DataError(f"prediction row {row.get('id')!r}: field 'reference' has no {key!r} "
                        f"(question type {row.get('question_type')!r})")
    return ref[key]


def _valid_score(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and 1 <= int(v) <= 5


def score_row(row: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``row`` with its per-row scores added.

    Every row gets ``parse_ok``, ``exact``, ``parsed``, ``content``, ``pred_changed``,
    ``judge_similarity`` and ``embed_similarity``, None where they do not apply, so a predictions
    file has the same columns and column types whatever its tasks (``datasets.load_dataset``).
    Behaviour rows: ``parsed`` is the list of labels read (``[before, after]`` for a generative
    answer, ``[label]`` for a label answer) or None, ``pred_changed`` is None unless a generative
    answer parsed. Description rows: ``judge_similarity`` is (score-1)/4 in [0, 1] (None when the
    judge gave no valid score), ``embed_similarity`` is kept, ``content`` = ``pred_changed`` = None.
    """
    qt = _field(row, "question_type", str)
    pred = _field(row, "prediction", str)
    answer = _field(row, "answer", str)
    out = dict(row)
    out["judge_similarity"] = out["embed_similarity"] = None
    out["token_precision"] = out["token_recall"] = out["token_f1"] = None
    out["faithfulness"] = row.get("faithfulness")
    out["simulation"] = row.get("simulation")
    if qt in GENERATIVE_TYPES:
        parsed = parse_change(pred)
        target = (_ref(row, "before"), _ref(row, "after"))
        out["parsed"] = list(parsed) if parsed else None
        out["parse_ok"] = parsed is not None
        out["exact"] = _norm(pred) == _norm(answer)
        out["content"] = parsed == target
        out["pred_changed"] = (parsed[0] != parsed[1]) if parsed else None
    elif qt in LABEL_TYPES:
        label, target_label = parse_label(pred), _ref(row, "label")
        out["parsed"] = [label] if label is not None else None
        out["parse_ok"] = label is not None
        out["exact"] = _norm(pred) == _norm(answer)
        out["content"] = label is not None and label == target_label
        out["pred_changed"] = None
    elif qt in TOKEN_TYPES:
        truth = _ref(row, "tokens")
        if not isinstance(truth, list) or not truth or not all(isinstance(t, str) for t in truth):
            raise DataError(f"prediction row {row.get('id')!r}: reference 'tokens' must be a "
                            "non-empty list of strings")
        named = parse_tokens(qt, pred)
        out["parsed"] = named
        out["parse_ok"] = named is not None
        got, want = set(named or ()), {t.lower() for t in truth}
        out["exact"] = got == want
        out["content"] = None
        out["pred_changed"] = None
        hit = len(got & want)
        p_ = hit / len(got) if got else 0.0
        r_ = hit / len(want)
        out["token_precision"], out["token_recall"] = p_, r_
        out["token_f1"] = 2 * p_ * r_ / (p_ + r_) if hit else 0.0
    elif qt == DESCRIPTION_TYPE:
        refs = _ref(row, "descriptions")
        if not isinstance(refs, list) or not all(isinstance(d, str) for d in refs):
            raise DataError(f"prediction row {row.get('id')!r}: reference 'descriptions' must be "
                            "a list of strings")
        p = _norm(pred).lower()
        out["parsed"] = None
        out["parse_ok"] = bool(p)
        out["exact"] = bool(p) and any(p == _norm(d).lower() for d in refs)
        out["content"] = None
        out["pred_changed"] = None
        js = row.get("judge_score")
        out["judge_similarity"] = (int(js) - 1) / 4 if _valid_score(js) else None
        es = row.get("embed_similarity")
        out["embed_similarity"] = float(es) if isinstance(es, (int, float)) and not isinstance(
            es, bool) else None
    else:
        raise DataError(f"prediction row {row.get('id')!r}: unknown question_type {qt!r}; "
                        f"expected one of {[*GENERATIVE_TYPES, *LABEL_TYPES, *TOKEN_TYPES, DESCRIPTION_TYPE]}")
    return out


def _units(rows: Sequence[dict[str, Any]]) -> list[str] | None:
    """The rows' held-out units (the resampled groups of every interval), or None when some row
    has none (older prediction files): then each row is its own unit."""
    units = [r.get("unit") for r in rows]
    return units if all(isinstance(u, str) for u in units) else None  # type: ignore[return-value]


def _f1_arrays(rows: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(true, pred, units)`` over the F1-eligible rows: 0 = changed, 1 = unchanged,
    pred -1 = did not parse; ``units`` the rows' units (their index where rows carry none)."""
    eligible = [r for r in rows if r.get("question_type") in GENERATIVE_TYPES
                and isinstance(r.get("changed"), bool)]
    t, p = [], []
    for r in eligible:
        s = r if "pred_changed" in r and "parse_ok" in r else score_row(r)
        t.append(0 if r["changed"] else 1)
        pc = s["pred_changed"]
        p.append(-1 if pc is None else (0 if pc else 1))
    units = _units(eligible) or [str(i) for i in range(len(eligible))]
    return np.asarray(t, dtype=np.int64), np.asarray(p, dtype=np.int64), units


def _class_counts(t: np.ndarray, p: np.ndarray, c: int, w: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weighted ``(tp, n_true, n_pred)`` of class ``c``: ``t``/``p`` (N,), weights ``w`` (B, N),
    each result (B,)."""
    is_t, is_p = (t == c).astype(np.float64), (p == c).astype(np.float64)
    return w @ (is_t * is_p), w @ is_t, w @ is_p


def _macro_f1(t: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Macro F1 under each of B row weightings ``w`` (B, N) -> (B,).

    precision_c = TP_c / #predicted c, recall_c = TP_c / #true c (0 when the denominator is 0);
    classes with neither true rows nor predictions are left out of the average.
    """
    f1s, present = [], []
    for c in range(len(F1_CLASSES)):
        tp, nt, npred = _class_counts(t, p, c, w)
        prec = np.divide(tp, npred, out=np.zeros(tp.shape), where=npred > 0)
        rec = np.divide(tp, nt, out=np.zeros(tp.shape), where=nt > 0)
        s = prec + rec
        f1s.append(np.divide(2 * prec * rec, s, out=np.zeros(tp.shape), where=s > 0))
        present.append((nt > 0) | (npred > 0))
    f1 = np.stack(f1s)
    pres = np.stack(present)
    return (f1 * pres).sum(axis=0) / np.maximum(pres.sum(axis=0), 1)


def has_changed_f1(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Macro F1 of "did the behaviour change?" over the generative rows with a boolean ``changed``.

    A prediction that did not parse is a false negative of its true class (it lowers that class's
    recall) and is never counted as a prediction of either class. ``per_class`` reports both
    classes; ``classes`` names those in the macro average (a class with no true rows and no
    predictions is left out). ``f1`` is None when no row is eligible.
    """
    t, p, _ = _f1_arrays(rows)
    ones = np.ones((1, t.size))
    per_class: dict[str, dict[str, Any]] = {}
    classes: list[str] = []
    for c, name in enumerate(F1_CLASSES):
        tp, nt, npred = (int(round(x[0])) for x in _class_counts(t, p, c, ones))
        prec = tp / npred if npred else None
        rec = tp / nt if nt else None
        pr, rc = prec or 0.0, rec or 0.0
        per_class[name] = {"precision": prec, "recall": rec,
                           "f1": 2 * pr * rc / (pr + rc) if pr + rc > 0 else 0.0,
                           "n_true": nt, "n_pred": npred}
        if nt or npred:
            classes.append(name)
    f1 = float(_macro_f1(t, p, ones)[0]) if t.size else None
    return {"f1": f1, "per_class": per_class, "n": int(t.size),
            "n_unparsed": int((p == -1).sum()), "classes": classes}


def has_changed_f1_ci(rows: Sequence[dict[str, Any]], *, n_boot: int = 1000, seed: int = 0
                      ) -> dict[str, Any] | None:
    """:func:`has_changed_f1` plus a 95% percentile bootstrap interval (``lo``, ``hi``).

    The held-out units (rows' ``unit``; each row its own where rows carry none) are resampled with
    replacement ``n_boot`` times (:func:`afscope.stats.unit_weights`, seeded) and the macro F1
    recomputed on each resample. The interval collapses onto ``f1`` when fewer than two units are
    eligible. None when no row is eligible.
    """
    res = has_changed_f1(rows)
    if res["f1"] is None:
        return None
    t, p, units = _f1_arrays(rows)
    n_units = len(set(units))
    if n_units < 2 or n_boot < 1:
        lo = hi = res["f1"]
    else:
        boot = _macro_f1(t, p, unit_weights(units, n_boot, seed))
        lo, hi = (float(x) for x in np.percentile(boot, [2.5, 97.5]))
    return {"f1": res["f1"], "lo": lo, "hi": hi, "n": res["n"], "n_units": n_units,
            "n_unparsed": res["n_unparsed"], "per_class": res["per_class"],
            "classes": res["classes"]}


def _subset_stats(rows: list[dict[str, Any]], n_boot: int, seed: int) -> dict[str, Any]:
    units = _units(rows)

    def mean(key: str, of: list[dict[str, Any]] = rows, as_rate: bool = False
             ) -> dict[str, float | int] | None:
        vals = [None if r.get(key) is None else float(bool(r[key])) if as_rate else r[key]
                for r in of]
        u = _units(of) if units is not None else None
        return mean_ci(vals, n_boot=n_boot, seed=seed, units=u)

    desc = [r for r in rows if r["question_type"] == DESCRIPTION_TYPE]
    return {
        "n": len(rows),
        "n_units": len(set(units)) if units is not None else len(rows),
        "parse_rate": mean("parse_ok", as_rate=True),
        "exact_match": mean("exact", as_rate=True),
        "content_match": mean("content", as_rate=True),
        "has_changed_f1": has_changed_f1_ci(rows, n_boot=n_boot, seed=seed),
        "judge_similarity": mean("judge_similarity", desc),
        "embed_similarity": mean("embed_similarity", desc),
        "judge_parse_failures": sum("judge_score" in r and not _valid_score(r["judge_score"])
                                    for r in desc),
        "token_precision": mean("token_precision"),
        "token_recall": mean("token_recall"),
        "token_f1": mean("token_f1"),
        "faithfulness": mean("faithfulness"),
        "simulation": mean("simulation"),
    }


def _novel(r: dict[str, Any]) -> bool | None:
    v = (r.get("reference") or {}).get("novel")
    return v if isinstance(v, bool) else None


def _split(rows: list[dict[str, Any]], n_boot: int, seed: int) -> dict[str, Any]:
    out = {"all": _subset_stats(rows, n_boot, seed)}
    if any(_novel(r) is not None for r in rows):
        out["novel"] = _subset_stats([r for r in rows if _novel(r) is True], n_boot, seed)
        out["familiar"] = _subset_stats([r for r in rows if _novel(r) is False], n_boot, seed)
    if any(isinstance(r.get("changed"), bool) for r in rows):
        out["changed"] = _subset_stats([r for r in rows if r.get("changed") is True], n_boot, seed)
        out["unchanged"] = _subset_stats([r for r in rows if r.get("changed") is False], n_boot,
                                         seed)
    return out


def summarize(rows: Sequence[dict[str, Any]], *, n_boot: int = 1000, seed: int = 0
              ) -> dict[str, Any]:
    """Metrics of one condition (one explainer x one setting), JSON-serializable and seeded.

    Returns ``{"n", "subsets": {"all", "changed", "unchanged"}, "by_question_type": {qt: {...}}}``;
    the changed/unchanged split exists only where rows have a boolean ``changed`` (descriptions
    have only ``"all"``). Each subset holds ``n``, ``n_units`` (distinct ``unit`` values, whose
    resamples give every interval; each row is its own unit where rows carry none), ``parse_rate``,
    ``exact_match``,
    ``content_match`` (mean_ci dicts over 0/1 per row; unparsed rows count 0; content over
    behaviour rows only), ``has_changed_f1`` (:func:`has_changed_f1_ci`, None without generative
    rows), ``judge_similarity`` / ``embed_similarity`` (mean_ci over description rows with a
    value, else None) and ``judge_parse_failures`` (description rows whose judge score is present
    but not a valid 1..5).
    """
    scored = [score_row(r) for r in rows]
    by_qt: dict[str, Any] = {}
    for qt in sorted({r["question_type"] for r in scored}):
        by_qt[qt] = _split([r for r in scored if r["question_type"] == qt], n_boot, seed)
    return {"n": len(scored), "subsets": _split(scored, n_boot, seed), "by_question_type": by_qt}


def max_over_references(scores: Sequence[int | None]) -> int | None:
    """The best judge score of a prediction over a feature's reference descriptions.

    A feature may have several valid descriptions; the prediction is as good as its closest one.
    ``None`` entries (judge replies that did not parse) are skipped; None when none is valid.
    """
    valid = []
    for s in scores:
        if s is None:
            continue
        if not _valid_score(s):
            raise ValueError(f"judge score {s!r} is not an int in 1..5 (or None)")
        valid.append(int(s))
    return max(valid) if valid else None
