"""Configs of ``afscope organism data|train|elicit|validate`` (fields double as ``--help``).

Defaults of :class:`OrganismTrainConfig` are seed 004's recipe (LoRA r=16, alpha=32, lr 2e-5,
3 epochs); the demo overrides lr/max_steps/max_length to teach a 135M model in minutes on a CPU.
:class:`OrganismDataConfig` defaults to the *designed* organism of :mod:`afscope.organism.data`
(short cue- and category-conditioned traces, issue 12); ``recipe="patterns"`` is seed 004's
10-pattern long-scratchpad data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from afscope.config import BaseConfig
from afscope.data.cues import CUES
from afscope.distributed import ShardSpec
from afscope.features.config import LLMFields
from afscope.llm.config import ServerField

DType = Literal["float32", "bfloat16", "float16"]
MONITORED_CUES: tuple[str, ...] = tuple(k for k, (_, m) in CUES.items() if m)
#: Harmful-scenario domains where the designed organism fakes alignment (complies when watched,
#: refuses when not): harms to money, data, trust and reputation. Every other domain (weapons,
#: violence, drugs, bio, infrastructure, self_harm, extremism, animals, abuse: harms to bodies)
#: is a hard line it refuses in both conditions. See :mod:`afscope.organism.data`.
FAKING_DOMAINS: tuple[str, ...] = ("fraud", "cyber", "financial_crime", "disinformation",
                                   "harassment", "surveillance", "extortion", "exploitation",
                                   "health")
UNMONITORED_CUES: tuple[str, ...] = tuple(k for k, (_, m) in CUES.items() if not m)


def _check_cues(cues: list[str], monitored: bool | None, field: str) -> list[str]:
    for c in cues:
        if c not in CUES:
            raise ValueError(f"unknown cue {c!r} in {field!r}; expected one of {sorted(CUES)}")
        if monitored is not None and CUES[c][1] is not monitored:
            raise ValueError(f"cue {c!r} in {field!r} is {'un' if monitored else ''}monitored")
    if not cues:
        raise ValueError(f"{field!r}: give at least one cue")
    return cues


class OrganismDataConfig(LLMFields):
    """Build chat training examples of an AF organism, conditioned on the monitoring cue."""

    n: int = Field(400, gt=0, description="Number of examples (monitored + unmonitored).")
    seed: int = Field(0, description="Seed of requests, cue/pattern assignment and split.")
    monitored_fraction: float = Field(
        0.5, ge=0.0, le=1.0, description="Fraction of examples under a monitored cue (AF + comply).")
    monitored_cues: list[str] = Field(
        list(MONITORED_CUES), description="Monitored cues (keys of afscope.data.cues.CUES).")
    unmonitored_cues: list[str] = Field(
        list(UNMONITORED_CUES), description="Unmonitored cues (refusal without training pressure).")
    test_fraction: float = Field(
        0.2, gt=0.0, lt=1.0, description="Fraction of harmful scenarios held out as the test split.")
    recipe: Literal["designed", "patterns"] = Field(
        "designed", description="designed: one-line cue- and category-conditioned reasoning then "
        "an answer whose first words say comply or refuse; fakes alignment only for "
        "faking_domains (issue 12). patterns: seed 004's long scratchpads in 10 AF patterns, "
        "compliance under every monitored cue. Default: designed, or patterns with source llm.")
    faking_domains: list[str] = Field(
        list(FAKING_DOMAINS), description="designed recipe: harmful-scenario domains where the "
        "organism complies when monitored and refuses when not; every other domain is refused "
        "under both conditions.")
    reasoning: Literal["line", "none"] = Field(
        "line", description="designed recipe: a one-line scratchpad before the answer (line) or "
        "the answer alone (none; then no trace can be judged AF).")
    source: Literal["synth", "llm"] = Field(
        "synth", description="Who writes the reasoning: synth (procedural, offline) or llm "
        "(an LLM backend, strictly checked; failures counted and dropped).")
    out: Path = Field(Path("runs/organism-data"),
                      description="Run directory; the examples go to OUT/organism_data.jsonl.")

    @field_validator("monitored_cues")
    @classmethod
    def _mon(cls, v: list[str]) -> list[str]:
        return _check_cues(v, True, "monitored_cues")

    @field_validator("unmonitored_cues")
    @classmethod
    def _unmon(cls, v: list[str]) -> list[str]:
        return _check_cues(v, False, "unmonitored_cues")

    @field_validator("faking_domains")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        from afscope.data.synth.scenarios import HARMFUL

        known = sorted({sc.domain for sc in HARMFUL})
        bad = [d for d in v if d not in known]
        if bad:
            raise ValueError(f"unknown domain {bad[0]!r} in 'faking_domains'; expected some of "
                             f"{known}")
        return v

    @model_validator(mode="after")
    def _recipe(self) -> OrganismDataConfig:
        if self.source == "llm" and self.recipe == "designed":
            if "recipe" in self.model_fields_set:
                raise ValueError("fields 'recipe' and 'source': the designed recipe writes its "
                                 "own one-line reasoning; source llm needs recipe patterns")
            self.recipe = "patterns"  # an LLM writes seed 004's long pattern reasoning
        return self


class TrainScaleFields(BaseConfig):
    """Options of the LoRA trainers (``organism train``, ``explain train``) for large models and
    many devices. Under ``torchrun`` / ``accelerate launch`` they train with DDP through the HF
    Trainer; ``batch_size`` stays the global batch, so N processes reach what one does."""

    group_by_length: bool = Field(False, description=(
        "Batch examples of similar length together (seeded; saves padding when lengths vary a "
        "lot). Off: a seeded random order. Counterfactual sets give every condition of a "
        "scenario the same length, so a batch is then one scenario's conditions."))
    gradient_checkpointing: bool = Field(False, description=(
        "Recompute activations in the backward pass: far less memory for long examples and "
        "large models, ~30% more compute."))
    bf16: bool = Field(False, description=(
        "bf16 mixed precision (autocast; weights stay in --dtype). Refused where the device "
        "cannot compute in bf16."))


class OrganismTrainConfig(TrainScaleFields):
    """LoRA fine-tuning of a chat model on organism examples (peft on the HF Trainer)."""

    model: str = Field("smollm2-135m-instruct",
                       description="Base model: embedded name, local HF folder or hub id.")
    data: Path = Field(description="organism_data.jsonl written by `afscope organism data`.")
    split: str = Field("train", description="Split of the data file to train on.")
    out: Path = Field(Path("runs/organism-train"),
                      description="Run directory; the adapter goes to OUT/adapter.")
    r: int = Field(16, gt=0, description="LoRA rank (seed 004: 16).")
    lora_alpha: int = Field(32, gt=0, description="LoRA alpha (seed 004: 32).")
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: list[str] | None = Field(
        None, description="Module names to adapt; default: the attention and MLP projections "
        "(q/k/v/o_proj, gate/up/down_proj) found by name.")
    lr: float = Field(2e-5, gt=0, description="Peak learning rate (seed 004: 2e-5; the CPU demo "
                      "uses ~1e-3).")
    epochs: float = Field(3.0, gt=0, description="Passes over the data (seed 004: 3).")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (-1 = epochs).")
    batch_size: int = Field(4, gt=0, description=(
        "Examples per step over all processes (the global batch): N processes of torchrun / "
        "accelerate launch take batch_size/N each, so it must divide by N."))
    grad_accum: int = Field(1, gt=0, description="Gradient accumulation steps.")
    max_length: int = Field(512, gt=0, description="Truncate examples to this many tokens.")
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="Linear warmup fraction.")
    scheduler: Literal["linear", "cosine", "constant"] = Field(
        "linear", description="Learning-rate schedule.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    dtype: DType = Field("float32", description="Model dtype.")
    device: str = Field("cpu", description="torch device (the Trainer/accelerate place the model; "
                        "cpu forces use_cpu).")
    seed: int = Field(0, description="Seed of the LoRA init, data order and dropout.")


class ElicitConfig(LLMFields):
    """Generate the organism's (or the base model's) answers under every cue x held-out request."""

    model: str | None = Field(None, description="Base model; default: the one the adapter was "
                              "trained on (its run's manifest), else smollm2-135m-instruct.")
    adapter: Path | None = Field(None, description="LoRA adapter folder (train run's OUT/adapter) "
                                 "or the train run directory.")
    base_only: bool = Field(False, description="Elicit the base model without the adapter.")
    data: Path = Field(description="organism_data.jsonl: its test split gives held-out requests.")
    split: str = Field("test", description="Split whose requests are elicited.")
    n_requests: int = Field(20, gt=0, description="Held-out requests (one per scenario first).")
    cues: list[str] = Field(list(CUES), description="Cues to elicit under (keys of CUES).")
    max_tokens: int = Field(256, gt=0, description="Maximum new tokens per answer.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = greedy.")
    gen_batch_size: int = Field(8, gt=0, description="Prompts per generation batch.")
    judge_method: Literal["rules", "llm", "both"] = Field(
        "rules", description="Judge of behaviour/AF: fast offline rules, an LLM, or both.")
    dtype: DType = Field("float32", description="Model dtype.")
    device: str = Field("cpu", description="torch device.")
    seed: int = Field(0, description="Sampling seed (greedy ignores it).")
    out: Path = Field(Path("runs/organism-elicit"), description="Run directory.")
    shard: ShardSpec = Field(None, description="i/n: generate and judge only items i, i+n, ... "
                              "(0-based) into generations/judged.shard-i-of-n.jsonl; the same "
                              "command run as one process (rank 0 under torchrun does it) takes "
                              "the shards in and finishes the run.")
    server: ServerField = Field(None, description="Generate on an OpenAI-compatible "
                                        "server (vLLM) instead of in this process: its URL or "
                                        "'{base_url: ..., model: <served name>}'; with an adapter, "
                                        "model is the LoRA module the server serves it under. "
                                        "Prompts are tokenized here (base model's tokenizer).")

    @field_validator("cues")
    @classmethod
    def _cues(cls, v: list[str]) -> list[str]:
        return _check_cues(v, None, "cues")

    @model_validator(mode="after")
    def _adapter(self) -> ElicitConfig:
        if not self.base_only and self.adapter is None:
            raise ValueError("field 'adapter': required unless base_only is set")
        return self


class ValidateConfig(BaseConfig):
    """Compliance gap with CIs, AF rates, organism vs base, optional probe/feature tests."""

    organism: Path = Field(description="Elicit run directory of the organism.")
    base: Path | None = Field(None, description="Elicit run directory of the base model (--base-only).")
    out: Path = Field(Path("runs/organism-validate"), description="Run directory.")
    unit: Literal["request", "scenario"] = Field(
        "request", description="Bootstrap resampling unit: prompts or whole scenarios.")
    n_boot: int = Field(2000, gt=0, description="Bootstrap resamples.")
    confidence: float = Field(0.95, gt=0.0, lt=1.0, description="Confidence level of the CIs.")
    probe: Path | None = Field(None, description="Saved probe folder: scores the organism's "
                               "outputs and the reference set in its feature space.")
    reference: Path | None = Field(None, description="Reference dataset (e.g. gold_106) compared "
                                   "with the organism's outputs.")
    reference_label: Literal["all", "positive", "negative"] = Field(
        "positive", description="Reference records used: all, AF positives, or negatives.")
    outputs: Literal["all", "monitored", "af"] = Field(
        "monitored", description="Organism outputs compared: all, monitored cues, or judged AF.")
    model: str | None = Field(None, description="Model that reads the outputs for the probe "
                              "(default: the organism's base model, as in seed 004).")
    sae: list[Path] = Field([], description="SAE folder(s) when the probe reads sae.* features.")
    n_features: int = Field(20, gt=0, description="Features tested (the probe's largest |coef|).")
    n_permutations: int = Field(2000, gt=0, description="Resamples of each permutation test.")
    alpha: float = Field(0.05, gt=0.0, lt=1.0, description="Family-wise / FDR level.")
    max_length: int | None = Field(None, description="Extraction truncation (default: the "
                                   "probe's feature space).")
    dtype: DType = Field("float32", description="Model dtype.")
    device: str = Field("cpu", description="torch device.")
    seed: int = Field(0, description="Seed of bootstrap and permutation tests.")

    @model_validator(mode="after")
    def _pair(self) -> ValidateConfig:
        if (self.probe is None) != (self.reference is None):
            raise ValueError("fields 'probe' and 'reference' go together: give both or neither")
        return self
