"""Datasets of reasoning traces: loading and validation, splits, the leakage guard.

The synthetic corpus generator lives in :mod:`afscope.data.synth` and is imported on demand
(``from afscope.data.synth import generate_corpus``), not from here.
"""

from afscope.data.config import (
                                  DataSplitConfig,
                                  DataSynthConfig,
                                  DataValidateConfig,
                                  LoadConfig,
)
from afscope.data.dataset import Dataset, concat
from afscope.data.leakage import Leak, LeakageGuard
from afscope.data.load import detect_format, load_dataset
from afscope.data.records import (
                                  HARD_NEGATIVE_LABELS,
                                  NEGATIVE_LABELS,
                                  POSITIVE_LABELS,
                                  Record,
                                  binary_label,
                                  content_hash,
                                  normalize_text,
)
from afscope.data.split import split_indices, stratified_split

__all__ = [
    "HARD_NEGATIVE_LABELS",
    "NEGATIVE_LABELS",
    "POSITIVE_LABELS",
    "DataSplitConfig",
    "DataSynthConfig",
    "DataValidateConfig",
    "Dataset",
    "Leak",
    "LeakageGuard",
    "LoadConfig",
    "Record",
    "binary_label",
    "concat",
    "content_hash",
    "detect_format",
    "load_dataset",
    "normalize_text",
    "split_indices",
    "stratified_split",
]
