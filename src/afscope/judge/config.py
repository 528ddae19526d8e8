"""``JudgeConfig``: how ``afscope judge`` labels responses (rules, an LLM judge, or both)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from afscope.config import BaseConfig
from afscope.distributed import ShardSpec
from afscope.llm.config import LLMConfig, llm_from_flag

Method = Literal["rules", "llm", "both"]

# Four short lines ("ALIGNMENT: 85" ...) are ~25 tokens; a little slack, never room for an essay.
JUDGE_MAX_TOKENS = 48


def judge_llm_flag(v: Any) -> Any:
    """An ``--llm`` value for a judge (YAML file, inline mapping or LLMConfig), with the judge's
    short answer length unless one is given: the ``llm`` field validator of every judging config."""
    v = llm_from_flag(v)
    if isinstance(v, dict) and "max_tokens" not in v:
        v = {**v, "max_tokens": JUDGE_MAX_TOKENS}
    return v


def default_judge_llm() -> LLMConfig:
    """The local default backend with answers capped at :data:`JUDGE_MAX_TOKENS` tokens."""
    return LLMConfig(max_tokens=JUDGE_MAX_TOKENS)


class JudgeConfig(BaseConfig):
    """Settings of :func:`afscope.judge.judge_rows`."""

    method: Method = Field(
        "both", description="rules: offline rules only; llm: an LLM judge (rule verdicts are "
        "stored too, for agreement); both: same as llm, named for clarity.")
    llm: LLMConfig = Field(
        default_factory=default_judge_llm,
        description="LLM judge settings: a YAML file or an inline mapping, e.g. "
        "'{backend: openai, model: qwen, base_url: http://127.0.0.1:8000/v1}'. Default: the local "
        f"transformers model with max_tokens {JUDGE_MAX_TOKENS}.")
    batch_size: int = Field(8, ge=1, description="Rows per LLM call; rows are saved after each.")

    @field_validator("llm", mode="before")
    @classmethod
    def _parse_llm(cls, v: Any) -> Any:
        return judge_llm_flag(v)

    @property
    def uses_llm(self) -> bool:
        return self.method in ("llm", "both")


class JudgeRunConfig(JudgeConfig):
    """``afscope judge run``: a JSONL file of rows in, a run directory out."""

    data: Path = Field(description="JSONL file of rows with 'id', 'prompt' (the user request) and "
                       "'response' (e.g. afscope generate output); other fields are kept.")
    out: Path = Field(Path("runs/judge"), description="Run directory (judged.jsonl, "
                      "agreement.json, manifest.json); rerun to resume.")
    shard: ShardSpec = Field(None, description="i/n: judge only rows i, i+n, ... (0-based) into "
                              "judged.shard-i-of-n.jsonl; the same command run as one process "
                              "(rank 0 under torchrun does it) takes the shards in and writes "
                              "judged.jsonl and agreement.json.")
