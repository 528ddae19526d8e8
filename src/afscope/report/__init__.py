"""HTML reports of a run: the AUROC ladder, ID/OOD tables, figures, the feature browser and the
behaviour lab page."""

from afscope.report.render import (
    BEHAVIOUR_PAGE,
    FEATURES_FILE,
    INDEX_FILE,
    REPORT_DIR,
    write_report,
)
from afscope.report.schema import (
    BEHAVIOUR_FILE,
    RESULTS_FILE,
    SCORES_FILE,
    Behaviour,
    Results,
    ScoreRow,
    load_results,
    load_scores,
    read_behaviour,
)

__all__ = [
    "BEHAVIOUR_FILE", "BEHAVIOUR_PAGE", "FEATURES_FILE", "INDEX_FILE", "REPORT_DIR", "RESULTS_FILE",
    "SCORES_FILE", "Behaviour", "Results", "ScoreRow", "load_results", "load_scores",
    "read_behaviour", "write_report",
]
