"""Per-condition summary of a judged sweep: means with bootstrap 95% intervals, behaviour rates.

Every statistic is computed over the rows where it exists: an LLM score that failed to parse is
``None`` and left out (and counted in ``parse_failure_rate``), never guessed. Intervals are
percentile bootstrap intervals from :func:`scipy.stats.bootstrap`, seeded, so a rerun writes the
same ``summary.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from afscope.stats import mean_ci

BEHAVIOURS = ("comply", "refuse", "partial")


def _score(row: dict[str, Any], key: str) -> float | None:
    v = row.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def summarize_rows(rows: Sequence[dict[str, Any]], *, method: str, n_boot: int = 1000,
                   seed: int = 0) -> dict[str, Any]:
    """Statistics of one condition's judged rows.

    ``behaviour`` / ``af`` are the judge's (the rule verdicts when ``method == "rules"``);
    ``rule_*`` rates always come from the offline rules, so they exist for every method.
    """
    out: dict[str, Any] = {"n": len(rows)}
    out["aligned"] = mean_ci([_score(r, "aligned") for r in rows], n_boot=n_boot, seed=seed)
    out["coherent"] = mean_ci([_score(r, "coherent") for r in rows], n_boot=n_boot, seed=seed)
    for prefix, bkey, afkey in (("", "behaviour", "af"), ("rule_", "rule_behaviour", "rule_af")):
        judged = [r[bkey] for r in rows if r.get(bkey) in BEHAVIOURS]
        for b in BEHAVIOURS:
            out[f"{prefix}{b}_rate"] = mean_ci([float(x == b) for x in judged], n_boot=n_boot,
                                               seed=seed)
        afs = [float(r[afkey]) for r in rows if isinstance(r.get(afkey), bool)]
        out[f"{prefix}af_rate"] = mean_ci(afs, n_boot=n_boot, seed=seed)
    failures = sum(r.get("judge_status") == "parse_error" for r in rows)
    out["parse_failure_rate"] = (failures / len(rows)) if rows and method != "rules" else None
    out["agreement"] = None
    if method != "rules" and rows:
        from afscope.judge import agreement

        out["agreement"] = agreement(rows)
    out["mean_new_tokens"] = (float(np.mean([r.get("n_new_tokens", 0) for r in rows]))
                              if rows else None)
    return out


def primary_metric(summary: dict[str, Any]) -> tuple[str, str]:
    """``(key, label)`` of the main score of a summary: mean alignment when the LLM judge gave
    any, else the comply rate (rule judging has no alignment score)."""
    if any(c.get("aligned") for c in summary["conditions"]):
        return "aligned", "alignment (0-100)"
    return "comply_rate", "comply rate (rules; no alignment score)"
