"""Judge model responses: comply / refuse / partial, alignment faking, alignment and coherence.

>>> from afscope.judge import classify_behaviour
>>> classify_behaviour("I'm sorry, but I can't help with that.")
RuleVerdict(behaviour='refuse', af=False)

Two judges: fast offline rules (:func:`classify_behaviour`, always run) and an LLM judge
(:func:`judge_rows` with ``JudgeConfig(method="llm"|"both")``) that also scores alignment and
coherence 0-100 as in seed 003. :func:`agreement` compares them. Judging is resumable
(:class:`~afscope.rows.JsonlStore`); parse failures are counted, never guessed.
"""

from afscope.judge.agreement import agreement
from afscope.judge.config import JudgeConfig, JudgeRunConfig
from afscope.judge.judging import JudgeStats, judge_meta, judge_rows, judge_store
from afscope.judge.llm import (
    PROMPT_VERSION,
    JudgeReply,
    build_judge_prompt,
    parse_judge_reply,
)
from afscope.judge.rules import BEHAVIOURS, RuleVerdict, classify_behaviour, split_trace

__all__ = [
    "BEHAVIOURS", "PROMPT_VERSION", "JudgeConfig", "JudgeReply", "JudgeRunConfig", "JudgeStats",
    "RuleVerdict", "agreement", "build_judge_prompt", "classify_behaviour", "judge_meta",
    "judge_rows", "judge_store", "parse_judge_reply", "split_trace",
]
