"""The behaviour lab: organism, context ablation and steering on one model, in minutes on a CPU.

>>> from afscope.lab import LabConfig, run_lab                                 # doctest: +SKIP
>>> doc = run_lab(LabConfig(out="runs/lab"))          # writes runs/lab/behaviour.json
>>> doc["organism"]["gap_difference"]
"""

from afscope.lab.config import LabConfig
from afscope.lab.pipeline import LAB_DIR, judge_backend, run_lab
from afscope.lab.results import BEHAVIOUR_FILE, KIND, VERSION

__all__ = ["BEHAVIOUR_FILE", "KIND", "LAB_DIR", "VERSION", "LabConfig", "judge_backend",
           "run_lab"]
