"""``GenerateConfig``: the config of ``afscope generate`` (fields double as ``--help``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from afscope.config import BaseConfig
from afscope.distributed import ShardSpec
from afscope.generate.params import GenerationParams


class GenerateConfig(BaseConfig):
    """Generate answers for a prompt file, batched, optionally steered, resumable and shardable."""

    model: str = Field("smollm2-135m-instruct", description="afscope model name, HF id or path.")
    prompts: Path = Field(description="JSON/JSONL prompts: strings, objects with prompt/question/"
                          "text, or objects with a chat 'messages' list (+ optional id, extras).")
    out: Path = Field(Path("runs/generate"), description="Run directory (generations*.jsonl).")
    cue: str | None = Field(None, description="Wrap string prompts in this system prompt: a cue "
                            "name (monitored, unmonitored, free_tier, ...) or any text.")
    max_new_tokens: int = Field(256, gt=0, description="Maximum new tokens per answer.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = greedy; else sampled.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus mass when sampling.")
    seed: int = Field(0, description="Sampling seed (each row's seed = f(seed, row id)).")
    stop: list[str] = Field(default_factory=list, description="Stop strings (answer cut before).")
    n_generations: int = Field(1, ge=1, description="Answers per prompt (ids <id>#<k>).")
    batch_size: int = Field(16, ge=1, description="Rows per generate call.")
    shard: ShardSpec = Field(None, description="i/n: this process does rows i, i+n, ... "
                              "(0-based) into generations.shard-i-of-n.jsonl (under torchrun / "
                              "accelerate launch or in a Slurm array it comes from the "
                              "environment).")
    steer: Path | None = Field(None, description="Steering vector file (afscope steer vector).")
    alpha: float = Field(1.0, description="Steering strength: alpha * v is added.")
    positions: Literal["prompt", "generated", "both", "last"] = Field(
        "both", description="Where to steer: prompt tokens, generated tokens, both, or last "
        "(last prompt token + generated, seed 000's hook).")
    layers: list[int] | None = Field(None, description="Steer only these layers of the vector "
                                     "(default: all of its layers).")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="Weights dtype.")
    device: str = Field("cpu", description="Torch device, e.g. cpu or cuda:0.")

    def params(self) -> GenerationParams:
        return GenerationParams(temperature=self.temperature, max_tokens=self.max_new_tokens,
                                top_p=self.top_p, seed=self.seed, stop=tuple(self.stop))
