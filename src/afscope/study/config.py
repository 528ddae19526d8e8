"""Config of ``afscope study``: one YAML that reruns a detection study end to end.

A study trains on a split of one labelled file, evaluates on the held-out part and on any number
of out-of-distribution files, for every model x layer x pooling (residual stream) and SAE
statistic, beside text-only baselines fitted on the same split, and ends with the HTML report.
Relative paths are read from the working directory (run studies from the repository root).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from afscope.config import BaseConfig
from afscope.features.config import AutointerpConfig
from afscope.probe.config import ProbeConfig


class TrainData(BaseConfig):
    """The labelled file that is split into train and test."""

    data: Path = Field(description="Dataset file (JSON, JSONL, CSV) or HF dataset folder.")
    test_fraction: float = Field(0.3, gt=0, lt=1, description="Share held out for testing.")
    stratify_by: str | None = Field("category", description="Stratify the split by this field.")
    group_by: str | None = Field(None, description="Keep records sharing this field together.")
    max_records: int | None = Field(None, gt=0, description="Seeded stratified subsample first.")
    label_map: dict[str, int] | None = Field(None, description="Extra label -> 0/1 mapping.")


class EvalData(BaseConfig):
    """An out-of-distribution evaluation file (may hold a single class, e.g. all AF)."""

    name: str = Field(description="Short name used in tables.")
    data: Path = Field(description="Dataset file or HF dataset folder.")
    max_records: int | None = Field(None, gt=0, description="Seeded stratified subsample.")
    label_map: dict[str, int] | None = Field(None, description="Extra label -> 0/1 mapping.")


class SAESpec(BaseConfig):
    """Train one TopK SAE per layer on the train split's tokens, then encode every dataset."""

    d_sae: int = Field(2048, gt=0, description="Latents per SAE.")
    k: int = Field(32, gt=0, description="Active latents per token.")
    max_tokens: int = Field(60_000, gt=0, description="Training tokens collected per layer.")
    epochs: int = Field(8, gt=0, description="Passes over the collected tokens.")
    batch_size: int = Field(512, gt=0, description="Tokens per optimizer step.")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate.")
    token_topk: int = Field(8, ge=0, description="Per-token top-k latents kept (0 = none).")
    stats: list[Literal["max", "mean"]] = Field(["max"], description="SAE statistics probed.")


class ModelSpec(BaseConfig):
    name: str = Field(description="Embedded model name, local HF folder or hub id.")
    layers: list[int | float] = Field([0.25, 0.5, 0.75], description="Layers (int or fraction).")
    pools: list[Literal["max", "mean", "last"]] = Field(["max", "mean"],
                                                       description="Poolings probed.")
    sae: SAESpec | None = Field(None, description="Train and probe SAE features too.")


class ExtractSettings(BaseConfig):
    mask: str = Field("all", description="Token mask: all, response, last or last-K.")
    skip_first: int = Field(1, ge=0, description="Leave out the first N tokens (attention sink).")
    max_length: int = Field(512, gt=0, description="Truncate inputs to this many tokens.")
    batch_tokens: int = Field(2048, gt=0, description="Token budget of a forward batch.")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="Model dtype.")
    device: str = Field("cpu", description="torch device.")


class SweepSpec(BaseConfig):
    """Feature-count x C sweep with k-fold CV of the first SAE probe, on every SAE feature matrix
    (seed 001's overfitting check)."""

    n_features: list[int] = Field([10, 20, 50, 100, 200, 500, 1000], description="Counts.")
    Cs: list[float] = Field([0.1], description="Inverse regularization strengths.")
    folds: int = Field(5, ge=2, description="CV folds.")


class StudyConfig(BaseConfig):
    """Train/test split + OOD sets x models x layers x features x probes + baselines -> report."""

    title: str = Field("afscope study", description="Title of the report.")
    out: Path = Field(Path("runs/study"), description="Run directory.")
    seed: int = Field(0, description="Seed of subsampling, the split, SAEs, probes, bootstrap.")
    train: TrainData = Field(description="The labelled file split into train and test.")
    ood: list[EvalData] = Field([], description="Out-of-distribution evaluation files.")
    leakage_threshold: float = Field(0.8, gt=0, le=1, description=(
        "Records of the training file whose word-shingle Jaccard with an OOD record is >= this "
        "are removed before the split."))
    models: list[ModelSpec] = Field(description="Models to probe.")
    extract: ExtractSettings = Field(ExtractSettings(), description="Extraction settings.")
    probes: list[ProbeConfig] = Field(
        [ProbeConfig(method="logistic_l2", C=1.0), ProbeConfig(method="diffmean")],
        description="Probes on residual activations.")
    sae_probes: list[ProbeConfig] = Field(
        [ProbeConfig(method="logistic_l1", C=0.1, normalize="log1p")],
        description="Probes on SAE features.")
    sweep: SweepSpec | None = Field(SweepSpec(), description="SAE feature-count sweep (or null).")
    baselines: list[str] = Field(["tfidf", "keyword", "embedding"],
                                 description="Text-only baselines on the same split.")
    autointerp: AutointerpConfig | None = Field(None, description=(
        "Describe, classify and score SAE features with an LLM (null = skip)."))
    autointerp_target: str | None = Field(None, description=(
        "'<model>/L<layer>' whose SAE features autointerp describes (default: the first SAE)."))
    n_boot: int = Field(1000, ge=0, description="Bootstrap resamples for every CI.")
    cv_folds: int = Field(5, ge=2, description="Folds of the CV AUROC reported per method.")
    report: bool = Field(True, description="Write the HTML report at the end.")

    @model_validator(mode="after")
    def _check_names(self) -> StudyConfig:
        names = ["train", "test", *(d.name for d in self.ood)]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"dataset names must be unique (train, test and ood), repeated: {dup}")
        return self
