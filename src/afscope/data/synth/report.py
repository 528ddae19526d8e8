"""How well the keyword-counter baseline separates AF from each negative class of a corpus.

The synthetic corpus is built so that ``af_vs_hard_negative`` sits near 0.5 (chance) while
``af_vs_aligned`` stays high: a detector that only counts training vocabulary looks strong against
plain refusals and is useless against hard negatives. Any probe worth reporting must beat this.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from afscope.data.keywords import keyword_scores
from afscope.data.records import HARD_NEGATIVE_LABELS, Record

_COMPARISONS: dict[str, frozenset[str] | None] = {
    "af_vs_hard_negative": HARD_NEGATIVE_LABELS,
    "af_vs_aligned": frozenset({"aligned"}),
    "af_vs_genuine_compliance": frozenset({"genuine_compliance"}),
    "af_vs_all_negatives": None,  # every record with label 0
}


def keyword_auroc_report(records: Sequence[Record]) -> dict[str, float]:
    """AUROC of keyword counts as an AF score, AF (label 1) against each negative group.

    A comparison with no positives or no negatives in ``records`` is ``nan``.
    """
    scores = keyword_scores(r.text for r in records)
    labels = np.array([r.label for r in records], dtype=int)
    categories = np.array([r.category for r in records], dtype=object)
    positive = labels == 1
    out: dict[str, float] = {}
    for key, group in _COMPARISONS.items():
        if group is None:
            negative = labels == 0
        else:
            negative = (labels == 0) & np.isin(categories, sorted(group))
        mask = positive | negative
        if not positive.any() or not negative.any():
            out[key] = float("nan")
            continue
        out[key] = float(roc_auc_score(positive[mask], scores[mask]))
    return out
