"""Config of a probe: which linear method, how features are normalized, selected and scaled.

:class:`ProbeConfig` is both the config of ``afscope probe train`` (fields double as ``--help``)
and the parameter set of every probe estimator: ``PROBES[cfg.method](**cfg.estimator_params())``.
The seeds' recipe (seed 001, "Overfitting Check") is ``method=logistic_l1, C=0.1`` on SAE max
activations with standardization; the normalizations are the ones its "Distribution-Robust
Probing" section tried against distribution shift.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from afscope.config import BaseConfig

Method = Literal["logistic_l1", "logistic_l2", "elasticnet", "ridge", "diffmean"]
Normalize = Literal["none", "binary", "zscore", "log1p", "quantile", "topk_binary"]
SelectBy = Literal["auroc", "selectivity"]

METHODS: tuple[str, ...] = Method.__args__  # type: ignore[attr-defined]
NORMALIZATIONS: tuple[str, ...] = Normalize.__args__  # type: ignore[attr-defined]


class ProbeConfig(BaseConfig):
    """Train a linear probe on a feature matrix (pooled activations or SAE features)."""

    method: Method = Field("logistic_l1", description=(
        "logistic_l1 / logistic_l2 / elasticnet (logistic regression), ridge (ridge classifier "
        "on +-1 targets), diffmean (difference of class means); ridge and diffmean get "
        "probabilities from Platt scaling on the training projections."))
    C: float = Field(1.0, gt=0, description=(
        "Inverse regularization strength (ridge: alpha = 1/C; unused by diffmean). The seeds' "
        "best SAE probe was logistic_l1 with C=0.1."))
    l1_ratio: float = Field(0.5, ge=0, le=1, description="L1 share of the elasticnet penalty.")
    normalize: Normalize = Field("none", description=(
        "Per-value transform before selection: none, binary (x>0 -> 1), zscore (per sample, "
        "across features), log1p (sign(x) log1p|x|), quantile (per feature, uniform, fitted on "
        "train), topk_binary (the topk largest positive values of each sample -> 1)."))
    topk: int = Field(100, gt=0, description="k of topk_binary (the seeds tried 50/100/200).")
    n_quantiles: int = Field(100, gt=1, description=(
        "Quantiles stored per feature by the quantile normalization (capped by the number of "
        "training rows)."))
    standardize: bool = Field(True, description="Scale each selected feature to unit variance.")
    center: bool | None = Field(None, description=(
        "Subtract the training mean when standardizing. Default: only for dense input; sparse "
        "input is scaled without centering, which keeps it sparse."))
    n_features: int | None = Field(None, gt=0, description=(
        "Keep only the top-n features ranked on the training rows (None: all)."))
    select_by: SelectBy = Field("auroc", description=(
        "Ranking of --n-features: auroc (|AUROC - 0.5| per feature) or selectivity "
        "(|pos_mean - neg_mean| / (|pos_mean| + |neg_mean|), seed 001)."))
    class_weight: Literal["balanced"] | None = Field(None, description=(
        "balanced reweights classes by inverse frequency (logistic and ridge)."))
    max_iter: int = Field(1000, gt=0, description="Solver iteration cap.")
    tol: float = Field(1e-4, gt=0, description="Solver convergence tolerance.")
    threshold: float = Field(0.5, gt=0, lt=1, description=(
        "Probability at or above which a sample is flagged as alignment faking."))
    seed: int = Field(0, description="Seed of the solver (saga, liblinear) and of CV folds.")

    def probe_config(self) -> ProbeConfig:
        """Just the probe's fields, from a command config that extends this one."""
        return ProbeConfig.model_validate(self.model_dump(include=set(ProbeConfig.model_fields)))

    def estimator_params(self) -> dict[str, Any]:
        """Keyword arguments of the estimator class (every field except ``method``)."""
        params = self.model_dump()
        params.pop("method")
        return params


class _MatrixFields(BaseConfig):
    cache: Path = Field(description="Activation cache directory (afscope extract --out).")
    layer: int = Field(description="Layer index as stored in the cache.")
    features: str = Field("resid.mean", description=(
        "Feature matrix: resid.<max|mean|last> (pooled residual stream) or sae.<max|mean> "
        "(SAE latents; extract with --sae)."))


class ProbeTrainConfig(_MatrixFields, ProbeConfig):
    """``afscope probe train``: fit one probe on a cache, report its CV AUROC, save it."""

    out: Path = Field(Path("runs/probe"), description="Run directory; the probe goes to OUT/probe.")
    cv_folds: int = Field(5, ge=0, description="Folds of the reported CV AUROC (0 = skip).")


class ProbeEvalConfig(BaseConfig):
    """``afscope probe eval``: score held-out and OOD caches with a saved probe, with CIs."""

    probe: Path = Field(description="Probe folder (afscope probe train: OUT/probe).")
    caches: list[str] = Field(description=(
        "Caches to evaluate, DIR or NAME=DIR, comma-separated; each must hold the probe's layer "
        "and features from the same model, SAE and extraction settings."))
    out: Path = Field(Path("runs/probe-eval"), description="Run directory (eval.json).")
    n_boot: int = Field(1000, ge=0, description="Bootstrap resamples per CI.")
    seed: int = Field(0, description="Seed of the bootstrap.")


class ProbeSweepConfig(_MatrixFields, ProbeConfig):
    """``afscope probe sweep``: CV (and test) AUROC over feature counts x C (seed 001's check)."""

    n_feature_counts: list[int] = Field([10, 20, 50, 100, 200, 500, 1000], description=(
        "Feature counts (top-n by --select-by, ranked on each training fold); all features are "
        "always added."))
    cs: list[float] = Field([0.01, 0.1, 1.0], description="Inverse regularization strengths (C).")
    folds: int = Field(5, ge=2, description="CV folds.")
    test_cache: Path | None = Field(None, description="Held-out cache for test AUROC per point.")
    out: Path = Field(Path("runs/probe-sweep"), description="Run directory (sweep.json).")
    n_jobs: int = Field(1, description="Parallel folds (joblib; -1 = all cores).")
