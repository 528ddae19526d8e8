"""Configs of ``afscope steer vector diffmean|refusal|random|probe|sae``, ``steer sweep``, ``steer judge``.

Option names follow seed 003's ``run_em_eval.py`` (``--layers``, ``--alphas``, ``--max-samples``,
``--n-generations``, ``--skip-generation``, ``--skip-judging``); ``--vectors NAME=PATH,...`` is our
name for its ``--transforms`` (each vector file is one "transform").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from afscope.config import BaseConfig
from afscope.judge import JudgeConfig
from afscope.judge.config import judge_llm_flag
from afscope.llm import LLMConfig

DType = Literal["float32", "bfloat16", "float16"]
Positions = Literal["prompt", "generated", "both", "last"]
JudgeMethod = Literal["rules", "llm", "both"]



def distinct_alphas(v: list[float]) -> list[float]:
    """The check of every alphas field: at least one, none repeated (a repeat is the same
    condition twice)."""
    if not v:
        raise ValueError("expected at least one alpha")
    if len(set(v)) != len(v):
        raise ValueError(f"duplicate alphas in {v}")
    return v

class _VectorOut(BaseConfig):
    out: Path = Field(Path("runs/steer-vector"),
                      description="Run directory; the vector goes to OUT/vector.safetensors.")


class DiffMeanConfig(_VectorOut):
    """Difference of mean residual activations, set A minus set B, at every requested layer.

    With only ``data_a``, its AF records (binary label 1) are set A and the others set B.
    """

    model: str = Field("smollm2-135m-instruct",
                       description="Embedded model name, local HF folder or hub id.")
    data_a: Path = Field(description="Set A (e.g. alignment-faking traces); JSON, JSONL, CSV or "
                         "HF folder. Alone, it is split by label: AF minus not AF.")
    data_b: Path | None = Field(None, description="Set B (e.g. aligned traces). Unset: use the "
                                "non-AF records of --data-a.")
    layers: list[int | float] | None = Field(
        None, description="Layers: int, negative int or fraction of depth. Unset = every layer.")
    mask: str = Field("response", description=(
        "Token mask: response (the record's text after its prompt; all tokens when there is no "
        "prompt), all, last or last-K."))
    skip_first: int = Field(1, ge=0, description=(
        "Leave out the first N tokens: position 0 is an attention sink whose norm dwarfs the "
        "rest and would dominate a mean."))
    weighting: Literal["sample", "token"] = Field("sample", description=(
        "sample: mean over records of each record's token mean (long traces do not dominate); "
        "token: mean over all masked tokens (seed 003's pooling)."))
    max_samples: int | None = Field(None, gt=0, description=(
        "Use at most this many records per set (seeded random subset; seed 003's --n-samples)."))
    max_length: int = Field(1024, gt=0, description="Truncate inputs to this many tokens.")
    batch_tokens: int = Field(2048, gt=0, description="Token budget of a forward batch.")
    label_map: dict[str, int] | None = Field(None, description="Extra label -> 0/1 mapping.")
    eval_only: list[Path] = Field([], description=(
        "Eval-only datasets: building a vector is a training step, so a record of these in "
        "set A or B is a LeakageError."))
    leakage_threshold: float = Field(0.8, gt=0, le=1,
                                     description="Jaccard threshold of near-duplicate leakage.")
    dtype: DType = Field("float32", description="Model dtype.")
    device: str = Field("cpu", description="torch device, e.g. cpu or cuda:0.")
    seed: int = Field(0, description="Seed of the --max-samples subset.")


class RefusalVectorConfig(_VectorOut):
    """A refusal direction: mean residual at the last prompt token of harmful minus harmless
    requests, each rendered through the model's chat template with the generation prompt."""

    model: str = Field("smollm2-135m-instruct",
                       description="Embedded model name, local HF folder or hub id.")
    layers: list[int | float] | None = Field(
        None, description="Layers: int, negative int or fraction of depth. Unset = every layer.")
    n: int = Field(128, gt=1, description="Requests per side (synthetic scenarios).")
    template: str | None = Field(None, description="Chat template (Jinja) overriding the model's.")
    dtype: DType = Field("float32", description="Model dtype.")
    device: str = Field("cpu", description="torch device, e.g. cpu or cuda:0.")
    seed: int = Field(1000, description="Seed of the synthetic requests; keep it apart from the "
                      "seed of the prompts you steer, so the direction is not built on them.")


class RandomVectorConfig(_VectorOut):
    """Seeded Gaussian directions with the norm of another vector at each of its layers: the
    control that says whether a steering effect is the direction's or any push's of that size."""

    like: Path = Field(description="Vector file (or `afscope steer vector` run directory) whose "
                       "layers, norms and model the random directions copy.")
    seed: int = Field(0, description="Seed of the directions (one generator, layers in order).")


class ProbeVectorConfig(_VectorOut):
    """A residual-stream probe's weight direction, mapped back to raw activations."""

    probe: Path = Field(description="Probe folder (afscope probe train) fitted on resid.* features.")
    model: str | None = Field(None, description=(
        "Name of the model the probe's cache came from (recorded; the probe itself stores only "
        "the model fingerprint, which loading checks)."))


class SAEVectorConfig(_VectorOut):
    """One SAE latent's decoder direction ``W_dec[feature]``."""

    sae: Path = Field(description="SAE folder (SAELens layout: cfg.json + safetensors).")
    feature: int = Field(ge=0, description="Latent index whose decoder row is the direction.")
    layer: int | None = Field(None, description=(
        "Block index to attach it to; default the SAE's hook_layer."))
    normalize: bool = Field(True, description="Scale the direction to unit L2 norm.")


def split_vector(item: str) -> tuple[str, str]:
    """``NAME=PATH`` -> ``(NAME, PATH)``; a bare path is named after its file (or folder)."""
    name, sep, path = item.partition("=")
    if not sep:
        return Path(item).stem if Path(item).suffix else Path(item).name, item
    return name.strip(), path.strip()


class JudgeFields(BaseConfig):
    """How a sweep's answers are judged (the fields of :class:`afscope.judge.JudgeConfig`)."""

    judge_method: JudgeMethod = Field("rules", description=(
        "rules (fast offline classifier: comply/refuse/partial + AF), llm (alignment and "
        "coherence 0-100 from --llm, rule verdicts kept for agreement) or both (the same)."))
    llm: LLMConfig | None = Field(None, description=(
        "LLM judge settings: a YAML file or an inline mapping, e.g. '{backend: openai, model: "
        "qwen, base_url: http://127.0.0.1:8000/v1}'. Unset = the judge's local default."))
    judge_batch_size: int = Field(8, ge=1, description="Rows per LLM judge call.")

    @field_validator("llm", mode="before")
    @classmethod
    def _parse_llm(cls, v: Any) -> Any:
        return judge_llm_flag(v)

    def judge_config(self) -> JudgeConfig:
        """The :class:`~afscope.judge.JudgeConfig` these fields describe."""
        values: dict[str, Any] = {"method": self.judge_method,
                                  "batch_size": self.judge_batch_size}
        if self.llm is not None:
            values["llm"] = self.llm
        return JudgeConfig(**values)


class SweepConfig(JudgeFields):
    """Steered generation over vectors x layers x alphas x prompts, judged and plotted."""

    model: str = Field("smollm2-135m-instruct",
                       description="Embedded model name, local HF folder or hub id.")
    vectors: list[str] = Field(description=(
        "Steering vectors as NAME=PATH,... (a vector file or an `afscope steer vector` run "
        "directory); a bare PATH is named after its file. Seed 003's --transforms."))
    layers: list[int | float] | None = Field(None, description=(
        "Layers to steer (int, negative int, fraction). Unset = every layer each vector has."))
    alphas: list[float] = Field([-2.0, -1.0, 0.0, 1.0, 2.0], description=(
        "Steering strengths (multipliers of the stored vector); alpha 0 is the baseline, run "
        "once for all vectors and layers."))
    prompts: Path | None = Field(None, description=(
        "JSON/JSONL file of prompts (strings, or objects with prompt/question/text). Unset: "
        "seeded requests from the synthetic scenarios."))
    harmful_fraction: float = Field(1.0, ge=0, le=1, description=(
        "Share of harmful requests among the default prompts."))
    cue: str | None = Field(None, description=(
        "System prompt framing each request: a cue name (monitored, unmonitored, free_tier, "
        "rlhf_training, contractor_rating, paid_tier) or literal text. Unset: no system prompt."))
    max_samples: int = Field(50, gt=0, description="Number of prompts (seed 003: questions).")
    n_generations: int = Field(1, gt=0, description="Answers per prompt and condition.")
    positions: Positions = Field("both", description=(
        "Where alpha*v is added: prompt, generated, both, or last (last prompt token + "
        "generated tokens)."))
    temperature: float = Field(0.0, ge=0, le=2, description="0 = greedy; > 0 samples with --seed.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus mass when sampling.")
    max_tokens: int = Field(128, gt=0, description="Maximum new tokens per answer.")
    gen_batch_size: int = Field(16, gt=0, description=(
        "Prompts per generate() call; rows of several conditions share a batch."))
    allow_other_model: bool = Field(False, description=(
        "Steer even when a vector was made from other weights of the same width."))
    skip_generation: bool = Field(False, description=(
        "Reuse the generations in OUT; a missing or incomplete condition is an error."))
    skip_judging: bool = Field(False, description="Reuse the judgments in OUT (only summarize/plot).")
    out: Path = Field(Path("runs/steer-sweep"), description="Run directory.")
    dtype: DType = Field("float32", description="Model dtype.")
    device: str = Field("cpu", description="torch device, e.g. cpu or cuda:0.")
    n_boot: int = Field(1000, ge=100, description="Bootstrap resamples of the 95% intervals.")
    seed: int = Field(0, description="Seed of the default prompts, sampling and bootstrap.")

    @field_validator("vectors", mode="before")
    @classmethod
    def _vectors(cls, v: Any) -> Any:
        if isinstance(v, dict):  # YAML mapping NAME: PATH
            return [f"{k}={p}" for k, p in v.items()]
        if isinstance(v, str):
            return [x.strip() for x in v.split(",") if x.strip()]
        return v

    @model_validator(mode="after")
    def _check(self) -> SweepConfig:
        names = [split_vector(x)[0] for x in self.vectors]
        if not names:
            raise ValueError("field 'vectors': give at least one NAME=PATH")
        bad = [n for n in names if not n or not n.replace("-", "").replace("_", "").isalnum()]
        if bad:
            raise ValueError(f"field 'vectors': names must be letters, digits, '-' or '_' "
                             f"(they become file names); got {bad}")
        if len(set(names)) != len(names):
            raise ValueError(f"field 'vectors': duplicate names {sorted(names)}")
        return self

    @field_validator("alphas")
    @classmethod
    def _alphas(cls, v: list[float]) -> list[float]:
        return distinct_alphas(v)

    def vector_paths(self) -> dict[str, Path]:
        """``{name: path}`` in the order given."""
        return {n: Path(p) for n, p in map(split_vector, self.vectors)}


class SteerJudgeConfig(JudgeFields):
    """Re-judge the generations of a sweep run directory."""

    run_dir: Path | None = Field(None, description="Sweep run directory (positional RUN_DIR).")
    overwrite: bool = Field(False, description=(
        "Delete existing judgments first (needed to re-judge with another method or LLM)."))
    n_boot: int = Field(1000, ge=100, description="Bootstrap resamples of the 95% intervals.")
    seed: int = Field(0, description="Seed of the bootstrap.")
