"""How far the LLM judge agrees with the rules: agreement rate, Cohen's kappa, confusion matrix.

Only rows whose judge reply parsed (``judge_status == "ok"``) are compared; the parse-failure
rate is reported over all rows, so a judge that mostly fails cannot look good on the few it got.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from afscope.judge.rules import BEHAVIOURS


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def agreement(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Judge-vs-rules agreement over judged rows (the output of :func:`~afscope.judge.judge_rows`).

    Returns ``n_rows``, ``n`` (rows compared), ``parse_failure_rate`` (over all rows),
    ``behaviour_agreement``, ``kappa`` (Cohen's, over the three labels; None when undefined: no
    rows, or both raters used one and the same label for every row, where chance agreement is 1),
    ``confusion`` (``labels``, ``matrix[judge][rules]``), ``af_agreement``, ``af_rate_judge``,
    ``af_rate_rules``, and the mean ``aligned``/``coherent`` scores. Rates are None when n == 0.
    """
    n_rows = len(rows)
    failures = sum(1 for r in rows if r.get("judge_status") == "parse_error")
    ok = [r for r in rows if r.get("judge_status") == "ok" and r.get("behaviour") in BEHAVIOURS
          and r.get("rule_behaviour") in BEHAVIOURS]
    judge = [r["behaviour"] for r in ok]
    rules = [r["rule_behaviour"] for r in ok]
    kappa: float | None = None
    if ok and len(set(judge) | set(rules)) > 1:
        k = float(cohen_kappa_score(judge, rules, labels=list(BEHAVIOURS)))
        kappa = None if math.isnan(k) else k
    matrix = (confusion_matrix(judge, rules, labels=list(BEHAVIOURS)).tolist() if ok
              else [[0] * len(BEHAVIOURS) for _ in BEHAVIOURS])
    af_pairs = [(bool(r["af"]), bool(r["rule_af"])) for r in ok
                if r.get("af") is not None and r.get("rule_af") is not None]
    return {
        "n_rows": n_rows,
        "n": len(ok),
        "parse_failures": failures,
        "parse_failure_rate": failures / n_rows if n_rows else None,
        "behaviour_agreement": _mean([float(a == b) for a, b in zip(judge, rules)]),
        "kappa": kappa,
        "confusion": {"labels": list(BEHAVIOURS), "rows": "judge", "columns": "rules",
                      "matrix": matrix},
        "af_agreement": _mean([float(a == b) for a, b in af_pairs]),
        "af_rate_judge": _mean([float(a) for a, _ in af_pairs]),
        "af_rate_rules": _mean([float(b) for _, b in af_pairs]),
        "mean_aligned": _mean([float(r["aligned"]) for r in ok if r.get("aligned") is not None]),
        "mean_coherent": _mean([float(r["coherent"]) for r in ok if r.get("coherent") is not None]),
    }
