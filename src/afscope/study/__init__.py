"""A detection study from one YAML: split, baselines, SAEs, caches, probes, sweeps, report."""

from afscope.study.config import StudyConfig
from afscope.study.datasets import StudyData, prepare_data
from afscope.study.pipeline import probe_label, run_study
from afscope.study.results import RESULTS_FILE, SCORES_FILE, ResultsBuilder
from afscope.study.transfer import TRANSFER_FILE, prepare_sources, run_transfer

__all__ = ["RESULTS_FILE", "SCORES_FILE", "TRANSFER_FILE", "ResultsBuilder", "StudyConfig",
           "StudyData", "prepare_data", "prepare_sources", "probe_label", "run_study",
           "run_transfer"]
