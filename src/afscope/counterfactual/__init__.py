"""Counterfactual datasets for the explainer (seed 000, tasks 2 and 3).

* **Context ablation** (:func:`build_context_dataset`): each scenario under the monitored and the
  unmonitored system prompt; behaviour labels; ``changed`` when the labels differ.
* **Steering prediction** (:func:`build_steering_dataset`): each scenario with and without
  ``alpha * v`` at chosen layers; the vector is stored by reference (path + sha256).

Both are resumable (``generations.jsonl`` / ``labels.jsonl``), split by scenario into
``train.json``/``test.json`` and summarized in ``stats.json``.
"""

from afscope.counterfactual.config import (
    ContextConfig,
    CounterfactualConfig,
    SteeringConfig,
)
from afscope.counterfactual.context import (
    build_context_dataset,
    context_items,
    context_record,
)
from afscope.counterfactual.pipeline import BuildResult
from afscope.counterfactual.scenarios import Scenario, load_scenarios
from afscope.counterfactual.schema import (
    CONTEXT_FIELDS,
    OUR_CONTEXT_FIELDS,
    SEED_CONTEXT_FIELDS,
    STEERING_FIELDS,
    behaviour_changed,
    split_by_scenario,
    summarize,
    upgrade_context_record,
)
from afscope.counterfactual.steering import (
    build_steering_dataset,
    condition_key,
    steering_items,
)

__all__ = [
    "CONTEXT_FIELDS", "OUR_CONTEXT_FIELDS", "SEED_CONTEXT_FIELDS", "STEERING_FIELDS",
    "BuildResult", "ContextConfig", "CounterfactualConfig", "Scenario", "SteeringConfig",
    "behaviour_changed", "build_context_dataset", "build_steering_dataset", "condition_key",
    "context_items", "context_record", "load_scenarios", "split_by_scenario", "steering_items",
    "summarize", "upgrade_context_record",
]
