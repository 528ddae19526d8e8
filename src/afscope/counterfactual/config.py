"""Configs of ``afscope counterfactual context|steering`` (seed 000, tasks 2 and 3).

Both commands share the scenario source, the target model, the decoding settings, the labelling
(judge) settings and the train/test split; each adds its own intervention: the pair of system
prompts (context ablation) or a steering vector file with layers, alphas and positions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from afscope.config import BaseConfig
from afscope.data.cues import MONITORED_SYSTEM, UNMONITORED_SYSTEM
from afscope.distributed import ShardSpec
from afscope.judge import JudgeConfig
from afscope.judge.config import Method, judge_llm_flag
from afscope.llm import LLMConfig
from afscope.llm.config import ServerField
from afscope.steer.config import distinct_alphas, split_vector

Positions = Literal["prompt", "generated", "both", "last"]
DType = Literal["float32", "bfloat16", "float16"]


class CounterfactualConfig(BaseConfig):
    """Fields shared by both counterfactual builders (scenarios, model, decoding, judge, split)."""

    out: Path = Field(Path("runs/counterfactual"), description="Run directory: generations.jsonl, "
                      "labels.jsonl, train.json, test.json, stats.json, manifest.json.")
    # scenarios
    data: Path | None = Field(None, description="JSON/JSONL/CSV file of user requests (one per "
                              "record). Unset = afscope.data.cues.requests (synthetic scenarios).")
    text_field: str = Field("text", description="Field of --data holding the user request.")
    scenario_field: str = Field("scenario", description="Field of --data grouping records for the "
                                "split (a record without it is its own scenario).")
    label_field: str = Field("label", description="Field of --data copied to the record's 'label' "
                             "(optional; 'unknown' when absent).")
    n: int = Field(200, ge=1, description="Number of synthetic requests (without --data).")
    harmful_fraction: float = Field(1.0, ge=0.0, le=1.0, description="Share of harmful synthetic "
                                    "requests (without --data).")
    max: int | None = Field(None, ge=1, description="Use only the first N scenarios (a quick run; "
                            "a later full run resumes from it).")
    seed: int = Field(0, description="Seed of the synthetic requests and of the split.")
    # target model and decoding
    model: str = Field("smollm2-135m-instruct", description="Target model: embedded name, local "
                       "HF folder or hub id.")
    adapter: Path | None = Field(None, description="LoRA adapter folder (or `organism train` "
                                 "run) merged into the target: the organism's own behaviour.")
    dtype: DType = Field("float32", description="Model dtype.")
    device: str = Field("cpu", description="Torch device of the target model.")
    template: str | None = Field(None, description="Chat template (Jinja) overriding the model's; "
                                 "base models without one use afscope's plain template.")
    max_tokens: int = Field(256, ge=1, description="New tokens per answer (seed 000 used 256).")
    batch_size: int = Field(8, ge=1, description="Prompts per generation batch; each batch is "
                            "saved before the next starts.")
    # labels
    judge: Method = Field("rules", description="Behaviour labels: rules (offline classifier), "
                          "llm (LLM judge) or both (LLM labels, rule labels kept).")
    llm: LLMConfig | None = Field(None, description="LLM judge settings (judge llm/both): a YAML "
                                  "file or an inline mapping. Unset = afscope.judge's default.")
    judge_batch_size: int = Field(8, ge=1, description="Answers per LLM judge call.")
    # split
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="Share of scenarios in "
                                 "test.json (split by scenario: none on both sides).")
    min_changed_rate: float = Field(0.2, ge=0.0, le=1.0, description="Warn when fewer records "
                                    "than this change behaviour (seed 000: <20% = noisy data).")
    # scale-out
    shard: ShardSpec = Field(None, description="i/n: generate and label only items i, i+n, ... "
                              "(0-based) into generations/labels.shard-i-of-n.jsonl; the same "
                              "command run as one process (rank 0 under torchrun does it) takes "
                              "the shards in and writes the dataset.")

    @field_validator("llm", mode="before")
    @classmethod
    def _parse_llm(cls, v: Any) -> Any:
        return judge_llm_flag(v)

    def judge_config(self) -> JudgeConfig:
        """The :class:`~afscope.judge.JudgeConfig` of the labelling step."""
        fields: dict[str, Any] = {"method": self.judge, "batch_size": self.judge_batch_size}
        if self.llm is not None:
            fields["llm"] = self.llm
        return JudgeConfig(**fields)


class ContextConfig(CounterfactualConfig):
    """Context ablation: each scenario under the monitored and the unmonitored system prompt."""

    out: Path = Field(Path("runs/counterfactual-context"), description="Run directory: "
                      "generations.jsonl, labels.jsonl, train.json, test.json, stats.json.")
    monitored_system: str = Field(MONITORED_SYSTEM, description="System prompt of the monitored "
                                  "condition (the 'hint'; seed 000's text by default).")
    unmonitored_system: str = Field(UNMONITORED_SYSTEM, description="System prompt of the "
                                    "unmonitored condition (seed 000's text by default).")
    hint: str = Field("monitoring context", description="Value of the records' 'hint' field.")
    stratify_changed: bool = Field(False, description="Stratify the scenario split by whether "
                                   "the scenario's behaviour changed too, so both sides have the "
                                   "same changed rate (an organism that changes in some domains "
                                   "only can otherwise put most changing scenarios on one side). "
                                   "The test scenarios then differ from the steering dataset's.")
    server: ServerField = Field(None, description="Generate on an OpenAI-compatible "
                                        "server (vLLM) instead of in this process: its URL "
                                        "(http://127.0.0.1:8000/v1) or a mapping '{base_url: ..., "
                                        "model: <served name>}'. Prompts are tokenized here with "
                                        "--model's tokenizer; the rows are the local engine's.")

    @model_validator(mode="after")
    def _distinct(self) -> ContextConfig:
        if self.monitored_system.strip() == self.unmonitored_system.strip():
            raise ValueError("fields 'monitored_system' and 'unmonitored_system' are identical; "
                             "the ablation needs two different system prompts")
        if self.server is not None and self.adapter is not None:
            raise ValueError("'adapter' is merged into a local model; a server answers with its "
                             "own weights (serve the organism there instead)")
        return self


class SteeringConfig(CounterfactualConfig):
    """Steering prediction: each scenario with and without ``alpha * v`` at chosen layers, for one
    or several vector files (vector families: AF difference of means, refusal, matched-norm random).
    """

    out: Path = Field(Path("runs/counterfactual-steering"), description="Run directory: "
                      "generations.jsonl, labels.jsonl, train.json, test.json, stats.json.")
    vector: list[str] = Field(description="Steering vector files (afscope steer format: "
                              "safetensors with tensors 'layer.<i>'), as NAME=PATH,... or bare "
                              "paths (named after the file or run directory).")
    heldout_vectors: list[str] = Field([], description="Names of --vector held out: steered "
                                       "only on test scenarios, so the test set has a vector "
                                       "family no training example shows (comma list).")
    layers: list[int] | None = Field(None, description="Layers to steer at, one condition each "
                                     "(comma list). Unset = every layer in the (first) file.")
    alphas: list[float] = Field(default_factory=lambda: [0.5, 1.0, 2.0, 5.0],
                                description="Steering strengths, one condition each (seed 000: "
                                "0.5,1,2,5). With --calibrate: multiples of each vector's "
                                "calibrated alpha for that sign (e.g. -1,1). Alpha 0 reuses the "
                                "unsteered answer.")
    calibrate: float | None = Field(None, gt=0.0, lt=1.0, description="Calibrate alpha per "
                                    "vector, layer and sign: the smallest of --calibration-scales "
                                    "that changes at least this share of the calibration "
                                    "prompts' behaviour (training scenarios only). A random "
                                    "vector made --like another vector of the run takes that "
                                    "vector's alphas (matched norm and strength).")
    calibration_n: int = Field(16, ge=2, description="Calibration prompts: training scenarios, "
                               "evenly spaced (synthetic requests list harmful ones first).")
    calibration_scales: list[float] = Field(
        default_factory=lambda: [0.1, 0.15, 0.2, 0.25, 0.3, 0.4],
        description="Added norm tried, as multiples of the residual norm at the layer (mean at "
        "the last prompt token of the calibration prompts), smallest first. On smollm2 a push "
        "beyond ~0.3x turns answers into noise the rule judge reads as compliance.")
    positions: Positions = Field("both", description="Token positions steered: prompt, "
                                 "generated, both, or last (last prompt token + generated: "
                                 "seed 000's hook).")
    system: str | None = Field(None, description="System prompt of every prompt (e.g. the "
                               "monitored cue); unset = the request alone.")
    allow_other_model: bool = Field(False, description="Steer with a vector made for other "
                                    "weights of the same width (refused by default).")

    @field_validator("vector", mode="before")
    @classmethod
    def _vectors(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return [f"{k}={p}" for k, p in v.items()]
        if isinstance(v, (str, Path)):
            return [x.strip() for x in str(v).split(",") if x.strip()]
        return v

    @field_validator("alphas")
    @classmethod
    def _alphas(cls, v: list[float]) -> list[float]:
        return distinct_alphas(v)

    @field_validator("calibration_scales")
    @classmethod
    def _scales(cls, v: list[float]) -> list[float]:
        if not v or any(x <= 0 for x in v) or sorted(set(v)) != list(v):
            raise ValueError(f"expected distinct positive scales in increasing order, got {v}")
        return v

    @model_validator(mode="after")
    def _check(self) -> SteeringConfig:
        if "vector" not in self.__dict__:
            return self  # model_construct() without fields: nothing to check
        names = [split_vector(x)[0] for x in self.vector]
        if not names:
            raise ValueError("field 'vector': give at least one vector file")
        if len(set(names)) != len(names):
            raise ValueError(f"field 'vector': duplicate names {names}; name them NAME=PATH")
        unknown = sorted(set(self.heldout_vectors) - set(names))
        if unknown:
            raise ValueError(f"field 'heldout_vectors': {unknown} are not names of --vector "
                             f"({', '.join(names)})")
        if self.calibrate is not None and self.shard is not None:
            raise ValueError("fields 'calibrate' and 'shard': calibration decides each alpha "
                             "from the answers of the one before, so it runs in one process; "
                             "drop --shard")
        if len(set(self.heldout_vectors)) == len(names):
            raise ValueError("field 'heldout_vectors': every vector is held out; keep at least "
                             "one for training")
        return self

    def vector_paths(self) -> dict[str, Path]:
        """``{name: path}`` in the order given."""
        return {n: Path(p) for n, p in map(split_vector, self.vector)}
