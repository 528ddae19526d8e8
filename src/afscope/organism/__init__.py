"""Alignment-faking model organisms (seed 004): training data, LoRA training, elicitation under
monitored vs unmonitored cues, and validation (compliance gap with CIs, AF rates, probe scores and
feature-distribution tests against a reference set).

>>> from afscope.organism import OrganismDataConfig, build_organism_data    # doctest: +SKIP
>>> path, summary = build_organism_data(OrganismDataConfig(n=200, out="runs/org-data"))
"""

from afscope.organism.config import (
    ElicitConfig,
    OrganismDataConfig,
    OrganismTrainConfig,
    ValidateConfig,
)
from afscope.organism.data import build_organism_data, plan_examples, read_examples
from afscope.organism.elicit import elicit, heldout_requests, read_judged
from afscope.organism.stats import compliance_gap, distribution_tests, gap_difference
from afscope.organism.train import (
    adapter_folder,
    encode_chat,
    load_organism,
    target_modules,
    train_organism,
)
from afscope.organism.validate import validate

__all__ = [
    "ElicitConfig", "OrganismDataConfig", "OrganismTrainConfig", "ValidateConfig",
    "adapter_folder", "build_organism_data", "compliance_gap", "distribution_tests", "elicit",
    "encode_chat", "gap_difference", "heldout_requests", "load_organism", "plan_examples",
    "read_examples", "read_judged", "target_modules", "train_organism", "validate",
]
