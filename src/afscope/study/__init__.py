"""A detection study from one YAML: split, baselines, SAEs, caches, probes, sweeps, report."""

from afscope.study.config import StudyConfig
from afscope.study.datasets import StudyData, prepare_data
from afscope.study.pipeline import probe_label, run_study
from afscope.study.results import RESULTS_FILE, SCORES_FILE, ResultsBuilder

__all__ = ["RESULTS_FILE", "SCORES_FILE", "ResultsBuilder", "StudyConfig", "StudyData",
           "prepare_data", "probe_label", "run_study"]
