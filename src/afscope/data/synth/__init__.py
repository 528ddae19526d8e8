"""Synthetic alignment-faking corpus: seeded, procedural scratchpad traces written by us.

``generate_corpus(n, seed)`` returns AF traces in the 10 reasoning patterns of seed 004, aligned
refusals, genuine compliance, hard negatives that share the AF traces' training/RLHF vocabulary
without their strategic intent, and minimal pairs that differ only in intent. It is the offline
default dataset and a controlled test of the vocabulary confound; ``keyword_auroc_report`` shows
the confound being defeated. See :mod:`afscope.data.synth.generator` for the design.
"""

from afscope.data.synth.fragments import CONTEXT_SIGNALS
from afscope.data.synth.generator import (
    CATEGORIES,
    DEFAULT_MIX,
    category_counts,
    generate_corpus,
)
from afscope.data.synth.patterns import AF_PATTERNS
from afscope.data.synth.report import keyword_auroc_report

__all__ = [
    "AF_PATTERNS", "CATEGORIES", "CONTEXT_SIGNALS", "DEFAULT_MIX", "category_counts",
    "generate_corpus", "keyword_auroc_report",
]
