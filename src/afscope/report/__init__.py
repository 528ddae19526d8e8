"""HTML reports of a run: the AUROC ladder, ID/OOD tables, figures and the feature browser."""

from afscope.report.render import FEATURES_FILE, INDEX_FILE, REPORT_DIR, write_report
from afscope.report.schema import (
    RESULTS_FILE,
    SCORES_FILE,
    Results,
    ScoreRow,
    load_results,
    load_scores,
)

__all__ = [
    "FEATURES_FILE", "INDEX_FILE", "REPORT_DIR", "RESULTS_FILE", "SCORES_FILE", "Results",
    "ScoreRow", "load_results", "load_scores", "write_report",
]
