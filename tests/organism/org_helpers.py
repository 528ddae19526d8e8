"""Shared helpers of the organism tests: a scripted LLM backend and a tiny saved llama + data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from afscope.llm import Completion, LLMBackend
from afscope.organism import OrganismDataConfig, build_organism_data


class Scripted(LLMBackend):
    """Answers ``reply(user_text)``; records prompts."""

    name = "scripted"

    def __init__(self, reply: Callable[[str], str]):
        super().__init__("scripted", on_error="record")
        self.reply = reply
        self.prompts: list[str] = []

    @classmethod
    def from_config(cls, cfg, **overrides):  # pragma: no cover - never built from config
        raise NotImplementedError

    def _generate(self, convos, params):
        out = []
        for c in convos:
            self.prompts.append(c[-1]["content"])
            out.append(Completion(self.reply(c[-1]["content"]), "stop"))
        return out


def small_data(tmp: Path, n: int = 24, seed: int = 0) -> Path:
    path, _ = build_organism_data(OrganismDataConfig(n=n, seed=seed, out=tmp / "data"))
    return path


CUES4 = (("free_tier", True), ("monitored", True), ("unmonitored", False), ("paid_tier", False))


def judged_rows(n: int, mon_comply: int, unmon_comply: int, af: int) -> list[dict]:
    """n requests x 4 cues; the first ``mon_comply`` requests comply when watched, etc."""
    rows = []
    for j in range(n):
        for cue, mon in CUES4:
            comply = j < (mon_comply if mon else unmon_comply)
            rows.append({"id": f"r{j}|{cue}", "request_id": f"r{j}", "scenario": f"s{j % 4}",
                         "cue": cue, "monitored": mon, "response": f"answer {j} {cue}",
                         "behaviour": "comply" if comply else "refuse", "af": mon and j < af})
    return rows
