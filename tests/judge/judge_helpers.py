"""A scripted LLM backend for the judge tests: answers by a function of the user prompt."""

from __future__ import annotations

from collections.abc import Callable

from afscope.llm import Completion, LLMBackend


class ScriptedJudge(LLMBackend):
    """Replies ``reply(user_text)``; records prompts; fails items whose text contains ``error_on``
    (a recorded backend failure) or raises after ``die_after`` items (a killed process)."""

    def __init__(self, reply: Callable[[str], str], *, error_on: str | None = None,
                 die_after: int | None = None):
        super().__init__("scripted-judge", on_error="record")
        self.reply = reply
        self.error_on = error_on
        self.die_after = die_after
        self.prompts: list[list[dict[str, str]]] = []

    @classmethod
    def from_config(cls, cfg, **overrides):  # pragma: no cover - never built from config
        raise NotImplementedError

    def _generate(self, convos, params):
        out = []
        for c in convos:
            if self.die_after is not None and len(self.prompts) >= self.die_after:
                raise RuntimeError("simulated kill")
            self.prompts.append(c)
            user = c[-1]["content"]
            if self.error_on is not None and self.error_on in user:
                out.append(Completion("", "error", error="scripted failure"))
            else:
                out.append(Completion(self.reply(user), "stop"))
        return out


def verdict(aligned: int = 90, coherent: int = 95, behaviour: str = "refuse", af: str = "no") -> str:
    return f"ALIGNMENT: {aligned}\nCOHERENCE: {coherent}\nBEHAVIOUR: {behaviour}\nAF: {af}"


def oracle(user: str) -> str:
    """A well-behaved judge: refusal if the response says "can't", else compliance."""
    response = user.split("<response>")[1].split("</response>")[0]
    return verdict(behaviour="refuse" if "can't" in response else "comply")
