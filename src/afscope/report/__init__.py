"""HTML reports of a run: the AUROC ladder, ID/OOD tables, figures, the feature browser, the
behaviour lab page and the explainer page."""

from afscope.report.render import (
    BEHAVIOUR_PAGE,
    EXPLAINER_PAGE,
    FEATURES_FILE,
    INDEX_FILE,
    REPORT_DIR,
    write_report,
)
from afscope.report.schema import (
    BEHAVIOUR_FILE,
    EXPLAIN_FILE,
    RESULTS_FILE,
    SCORES_FILE,
    Behaviour,
    ExplainEval,
    Results,
    ScoreRow,
    load_results,
    load_scores,
    read_behaviour,
    read_explain,
)

__all__ = [
    "BEHAVIOUR_FILE", "BEHAVIOUR_PAGE", "EXPLAINER_PAGE", "EXPLAIN_FILE", "FEATURES_FILE",
    "INDEX_FILE", "REPORT_DIR", "RESULTS_FILE", "SCORES_FILE", "Behaviour", "ExplainEval",
    "Results", "ScoreRow", "load_results", "load_scores", "read_behaviour", "read_explain",
    "write_report",
]
