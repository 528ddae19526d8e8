"""Automated interpretability of SAE features (seed 001): selectivity → differential descriptions →
classification → detection scoring → themes, resumable, with any :mod:`afscope.llm` backend.

>>> from afscope.features import AutointerpConfig, run_autointerp          # doctest: +SKIP
>>> rows = run_autointerp(X, y, texts, ids, categories, make_backend(LLMConfig()), "runs/f")
"""

from afscope.features.classify import (
    CATEGORIES,
    PATTERN_GLOSSES,
    classify_descriptions,
    parse_classification,
)
from afscope.features.cluster import Theme, cluster_descriptions, tfidf_embed
from afscope.features.config import (
    AutointerpConfig,
    ClassifyConfig,
    ClassifyParams,
    ClusterConfig,
    ClusterParams,
    DescribeConfig,
    DescribeParams,
    RunConfig,
    ScoreConfig,
    ScoreParams,
    SelectConfig,
    SelectParams,
)
from afscope.features.describe import (
    Parsed,
    build_prompt,
    describe_features,
    parse_description,
)
from afscope.features.inputs import FeatureInputs, load_inputs
from afscope.features.pipeline import (
    collect_features,
    run_autointerp,
    step_classify,
    step_cluster,
    step_describe,
    step_score,
    step_select,
)
from afscope.features.samples import FeatureColumns, TokenPeaks, excerpt
from afscope.features.score import (
    balanced_accuracy,
    parse_judgments,
    score_descriptions,
)
from afscope.features.selectivity import (
    FeatureTable,
    feature_auroc,
    feature_stats,
    select_features,
    selectivity,
)
from afscope.llm.jobs import StepStats, run_jobs
from afscope.rows import JsonlStore

__all__ = [
    "CATEGORIES", "PATTERN_GLOSSES", "AutointerpConfig", "ClassifyConfig", "ClassifyParams",
    "ClusterConfig", "ClusterParams", "DescribeConfig", "DescribeParams", "FeatureColumns",
    "FeatureInputs", "FeatureTable", "JsonlStore", "Parsed", "RunConfig", "ScoreConfig",
    "ScoreParams", "SelectConfig", "SelectParams", "StepStats", "Theme", "TokenPeaks",
    "balanced_accuracy", "build_prompt", "classify_descriptions", "cluster_descriptions",
    "collect_features", "describe_features", "excerpt", "feature_auroc", "feature_stats",
    "load_inputs", "parse_classification", "parse_description", "parse_judgments",
    "run_autointerp", "run_jobs", "score_descriptions", "select_features", "selectivity",
    "step_classify", "step_cluster", "step_describe", "step_score", "step_select", "tfidf_embed",
]
