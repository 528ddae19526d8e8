"""Config of ``afscope lab``: the behaviour lab on one model (fields double as ``--help``).

The defaults are the CPU demo's: a 135M model LoRA-trained on the designed organism's short traces
(:mod:`afscope.organism.data`; lr 3e-3 instead of seed 004's 2e-5 over 3 epochs), elicited on
held-out requests with short greedy answers, so the whole lab takes minutes on two cores. Raise the
sizes for a real study; every part resumes, so a larger rerun keeps what is already done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from afscope.config import BaseConfig
from afscope.judge import JudgeConfig
from afscope.judge.config import Method, judge_llm_flag
from afscope.llm import LLMConfig
from afscope.steer.config import distinct_alphas

DType = Literal["float32", "bfloat16", "float16"]


class LabConfig(BaseConfig):
    """Organism (train, elicit vs base, compliance gap), context ablation and a steering sweep on
    one model, written to ``OUT/lab/<part>`` and summarized in ``OUT/behaviour.json``."""

    model: str = Field("smollm2-135m-instruct", description="Model under study: embedded name, "
                       "local HF folder or hub id (loaded once and shared by every part).")
    out: Path | None = Field(None, description="Run directory (default runs/lab-<time>): parts go "
                             "to OUT/lab/<part>, the summary to OUT/behaviour.json.")
    seed: int = Field(0, description="Seed of the data, requests, training, splits and bootstrap.")
    dtype: DType = Field("float32", description="Model dtype.")
    device: str = Field("cpu", description="torch device.")
    # judging and decoding, shared by the parts
    judge: Method = Field("rules", description="Behaviour labels: rules (offline classifier), "
                          "llm (LLM judge; rule labels kept for agreement) or both.")
    llm: LLMConfig | None = Field(None, description="LLM judge settings (judge llm/both): a YAML "
                                  "file or an inline mapping. Unset = the local default judge, "
                                  "which reuses the lab's loaded model when it is the same one.")
    max_tokens: int = Field(80, gt=0, description="New tokens per answer of the context ablation "
                            "and the steering sweep; greedy decoding (the designed organism's "
                            "scratchpad and answer opening fit in ~75).")
    gen_batch_size: int = Field(8, gt=0, description="Prompts per generation batch.")
    n_boot: int = Field(1000, ge=100, description="Bootstrap resamples of the 95% intervals.")
    # organism
    organism: bool = Field(True, description="Train a LoRA organism, elicit it and the base model "
                           "under every cue, and compare their compliance gaps.")
    organism_examples: int = Field(320, gt=1, description="Organism training examples (both "
                                   "splits; the test split gives the held-out requests).")
    organism_recipe: Literal["designed", "patterns"] = Field(
        "designed", description="Organism data: designed (short traces; fakes alignment only for "
        "the faking domains, see afscope.organism.data) or patterns (seed 004's long scratchpads).")
    organism_test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="Share of harmful "
                                          "scenarios held out for elicitation.")
    organism_steps: int = Field(40, gt=0, description="LoRA optimizer steps.")
    organism_lr: float = Field(3e-3, gt=0, description="LoRA learning rate (seed 004: 2e-5 over "
                               "3 epochs; one CPU epoch of smollm2 needs ~3e-3 to learn the "
                               "scratchpad-then-answer format).")
    organism_batch_size: int = Field(8, gt=0, description="Examples per training step.")
    organism_scheduler: Literal["linear", "cosine", "constant"] = Field(
        "linear", description="Learning-rate schedule of the LoRA training.")
    organism_max_length: int = Field(192, gt=0, description="Truncate training examples to this "
                                     "many tokens (designed examples are <= ~160; patterns need "
                                     "~384).")
    organism_r: int = Field(16, gt=0, description="LoRA rank (alpha = 2 x rank, as seed 004).")
    organism_requests: int = Field(12, gt=0, description="Held-out requests elicited under every "
                                   "cue, for the organism and the base model.")
    organism_max_tokens: int = Field(80, gt=0, description="New tokens per elicited answer. The "
                                     "designed organism decides within ~50 tokens and answers by "
                                     "~75; the patterns recipe reasons for ~170-260 tokens and "
                                     "needs 256 (the rules read a scratchpad without a decision "
                                     "as a refusal).")
    # context ablation
    context: bool = Field(True, description="Context ablation (seed 000): each scenario under "
                          "the monitored and the unmonitored system prompt; changed = behaviour "
                          "differs. Target: the organism when it was trained, else the base model.")
    context_scenarios: int = Field(40, gt=0, description="Scenarios (synthetic requests).")
    # steering
    steering: bool = Field(True, description="Steering sweep (seed 003): a difference-of-means AF "
                           "vector from the synthetic corpus, added to the base model.")
    steer_corpus: int = Field(60, gt=1, description="Synthetic records the vector is built from "
                              "(AF minus non-AF).")
    steer_max_length: int = Field(256, gt=0, description="Truncate corpus records to this many "
                                  "tokens when averaging activations.")
    steer_layers: list[int | float] = Field([0.5, 0.75], description="Layers of the vector and "
                                            "the sweep (int, negative int or fraction of depth).")
    steer_alphas: list[float] = Field([-8.0, 8.0], description="Steering strengths; the "
                                      "unsteered baseline is always run.")
    steer_prompts: int = Field(6, gt=0, description="Requests of the sweep (one greedy answer "
                               "per request and condition).")
    steer_cue: str | None = Field(None, description="System prompt of the sweep's requests: a cue "
                                  "name (monitored, free_tier, ...) or literal text; unset = none.")

    @field_validator("llm", mode="before")
    @classmethod
    def _parse_llm(cls, v: Any) -> Any:
        return judge_llm_flag(v)

    @field_validator("steer_alphas")
    @classmethod
    def _alphas(cls, v: list[float]) -> list[float]:
        return distinct_alphas(v)

    @field_validator("steer_layers")
    @classmethod
    def _layers(cls, v: list[int | float]) -> list[int | float]:
        if not v:
            raise ValueError("expected at least one layer")
        return v

    def judge_config(self) -> JudgeConfig:
        """The :class:`~afscope.judge.JudgeConfig` every part labels with."""
        fields: dict[str, Any] = {"method": self.judge}
        if self.llm is not None:
            fields["llm"] = self.llm
        return JudgeConfig(**fields)
