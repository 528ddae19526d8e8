"""Configs of ``afscope features select|describe|classify|score|cluster|run``.

The step settings are small mixins so the CLI configs (inputs + one step) and
:class:`AutointerpConfig` (every step, for :func:`afscope.features.run_autointerp`) share one
definition of each field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from afscope.config import BaseConfig
from afscope.llm.config import LLMConfig, llm_from_flag

Stat = Literal["max", "mean"]


def step_fields(cfg: BaseConfig, cls: type[BaseConfig]) -> dict[str, Any]:
    """The fields of mixin ``cls`` in ``cfg`` (JSON-able): what a step's files record as the
    settings they were made with, whichever bigger config carried them."""
    dumped = cfg.model_dump(mode="json")
    return {k: dumped[k] for k in cls.model_fields}


SIMULATE_HELP = ("Also score each description with the LLM simulator (--llm): the correlation of "
                 "the activations it predicts from the description alone with the real ones on "
                 "held-out token contexts (simulations.jsonl). Needs a capable backend to mean "
                 "much; slow on CPU.")


class InputFields(BaseConfig):
    """Where the feature matrix and the texts come from."""

    cache: Path = Field(description="Activation cache directory (afscope extract --out).")
    layer: int = Field(description="Layer whose SAE features are read.")
    stat: Stat = Field("max", description="Per-sample SAE statistic: max or mean over tokens.")
    data: Path = Field(description="Dataset file the cache was extracted from (for the texts).")


class OutFields(BaseConfig):
    out: Path = Field(Path("runs/features"),
                      description="Run directory; every step reads and writes its files here.")
    seed: int = Field(0, description="Seed of every random draw (samples, shuffles, bootstrap).")


class LLMFields(BaseConfig):
    llm: LLMConfig | None = Field(
        None, description="LLM settings: a YAML file or an inline mapping, e.g. "
        "'{backend: claude-cli, model: opus}'. Unset = the local transformers default.")
    batch_size: int = Field(8, ge=1, description="Prompts per LLM call; rows are saved after each.")

    @field_validator("llm", mode="before")
    @classmethod
    def _parse_llm(cls, v: Any) -> Any:
        return llm_from_flag(v)

    def llm_config(self) -> LLMConfig:
        """The LLM settings with ``on_error='record'`` (a failed item is counted, not fatal)."""
        base = self.llm if self.llm is not None else LLMConfig()
        return base.model_copy(update={"on_error": "record"})


class SelectParams(BaseConfig):
    min_selectivity: float = Field(0.3, description="Keep features with selectivity >= this "
                                   "(seed 001 used 0.3).")
    min_active: int = Field(5, ge=1, description="Keep features non-zero on at least this many "
                            "samples (a description needs that many activating samples).")
    top: int | None = Field(None, ge=1, description="Keep at most this many features (best first).")
    sort_by: Literal["selectivity", "auroc"] = Field("selectivity", description="Ranking of features.")


class DescribeParams(BaseConfig):
    n_top: int = Field(5, ge=1, description="Top-activating samples shown per feature.")
    n_zero: int = Field(5, ge=1, description="Zero-activation samples shown per feature.")
    max_chars: int = Field(1200, ge=100, description="Characters kept of each sample (a window "
                           "around the max-activating token when the cache has per-token top-k).")


class ClassifyParams(BaseConfig):
    min_relevance: int = Field(6, ge=0, le=10, description="Features whose description scores at "
                               "least this (0-10) go to selected.json (seed 001 used 6).")


class ScoreParams(BaseConfig):
    n_score_pos: int = Field(5, ge=1, description="Held-out activating samples per feature.")
    n_score_neg: int = Field(5, ge=1, description="Held-out zero-activation samples per feature.")
    n_boot: int = Field(1000, ge=0, description="Bootstrap resamples of the balanced-accuracy CI.")


class ClusterParams(BaseConfig):
    embedder: Literal["minilm", "tfidf"] = Field(
        "minilm", description="Description embeddings: minilm (afscope.models.embedding) or tfidf.")
    distance_threshold: float = Field(0.6, gt=0, description="Cosine distance at which "
                                      "clusters stop merging (ignored when n_clusters is set).")
    n_clusters: int | None = Field(None, ge=1, description="Fixed number of themes instead.")
    n_terms: int = Field(3, ge=1, description="TF-IDF terms in a theme label.")
    name_themes: bool = Field(False, description="Also ask the LLM for a short name per theme.")


class SelectConfig(SelectParams, OutFields, InputFields):
    """Rank features by selectivity/AUROC and write candidates.json."""

    data: Path | None = Field(None, description="Dataset file (optional here: only checked).")


class DescribeConfig(DescribeParams, LLMFields, OutFields, InputFields):
    """Differential descriptions of the candidates (descriptions.jsonl, resumable)."""

    features: list[int] | None = Field(None, description="Feature ids to describe (default: "
                                       "candidates.json of --out).")
    explainer: Path | None = Field(None, description="Describe with a trained explainer (an "
                                   "`afscope explain train` run) instead of the LLM: it reads "
                                   "each latent's decoder direction, offline. Needs --sae.")
    sae: Path | None = Field(None, description="The SAE the cache was encoded with (its decoder "
                             "rows are what --explainer reads).")
    question: Literal["fires_on", "promotes", "feature_description"] = Field(
        "fires_on", description="What --explainer is asked (a question type it was trained on).")
    simulate: bool = Field(False, description=SIMULATE_HELP)
    dtype: str = Field("float32", description="Explainer dtype (--explainer).")
    device: str = Field("cpu", description="Explainer device (--explainer).")

    @model_validator(mode="after")
    def _explainer_needs_sae(self) -> DescribeConfig:
        if self.explainer is not None and self.sae is None:
            raise ValueError("--explainer needs --sae (the SAE whose decoder rows it reads)")
        return self


class ClassifyConfig(ClassifyParams, LLMFields, OutFields):
    """Relevance 0-10 and known/discovery/unrelated per description (classifications.jsonl)."""


class ScoreConfig(ScoreParams, LLMFields, OutFields, InputFields):
    """Detection scoring of descriptions on held-out samples (scores.jsonl)."""


class ClusterConfig(ClusterParams, LLMFields, OutFields):
    """Group descriptions into themes (themes.json)."""


class AutointerpConfig(SelectParams, DescribeParams, ClassifyParams, ScoreParams, ClusterParams,
                       LLMFields):
    """Every step's settings, for :func:`afscope.features.run_autointerp`."""

    seed: int = Field(0, description="Seed of every random draw (samples, shuffles, bootstrap).")
    score: bool = Field(True, description="Run detection scoring.")
    simulate: bool = Field(False, description=SIMULATE_HELP)
    cluster: bool = Field(True, description="Cluster the descriptions into themes.")


class RunConfig(AutointerpConfig, OutFields, InputFields):
    """The whole pipeline in one command."""
