"""Steering: vectors (difference of means, refusal and matched-norm random directions, probe
directions, SAE decoder rows) and sweeps over
layers x alphas x prompts with judged, summarized and plotted results (seed 003).

>>> from afscope.steer import SweepConfig, run_sweep, load_vector             # doctest: +SKIP
>>> summary = run_sweep(SweepConfig(vectors=["af=runs/steer-vector"], layers=[6, 12]))
"""

from afscope.steer.build import (
    diffmean_vector,
    mean_activations,
    probe_vector,
    random_vector,
    refusal_vector,
    run_diffmean,
    run_probe_vector,
    run_random,
    run_refusal,
    run_sae_vector,
    sae_vector,
)
from afscope.steer.config import (
    DiffMeanConfig,
    ProbeVectorConfig,
    RandomVectorConfig,
    RefusalVectorConfig,
    SAEVectorConfig,
    SteerJudgeConfig,
    SweepConfig,
)
from afscope.steer.plots import plot_run
from afscope.steer.summary import mean_ci, summarize_rows
from afscope.steer.sweep import (
    Condition,
    load_prompts,
    plan_conditions,
    run_judge,
    run_plot,
    run_sweep,
    summarize_run,
)
from afscope.steer.vectors import SteeringVector, load_vector, save_vector

__all__ = [
    "Condition", "DiffMeanConfig", "ProbeVectorConfig", "RandomVectorConfig",
    "RefusalVectorConfig", "SAEVectorConfig", "SteerJudgeConfig", "SteeringVector", "SweepConfig",
    "diffmean_vector", "load_prompts", "load_vector", "mean_activations", "mean_ci",
    "plan_conditions", "plot_run", "probe_vector", "random_vector", "refusal_vector",
    "run_diffmean", "run_judge", "run_plot", "run_probe_vector", "run_random", "run_refusal",
    "run_sae_vector", "run_sweep", "sae_vector",
    "save_vector", "summarize_rows", "summarize_run",
]
