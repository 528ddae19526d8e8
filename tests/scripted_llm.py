"""One scripted LLM backend for the tests: answers by a function of the last user turn.

Imported as ``scripted_llm`` (pytest puts ``tests/`` on ``sys.path``), like ``tiny_models``.
"""

from __future__ import annotations

from collections.abc import Callable

from afscope.llm import Completion, LLMBackend


class ScriptedBackend(LLMBackend):
    """Replies ``reply(user_text)``; records every chat in ``prompts``; fails the items whose
    text contains ``error_on`` (a recorded backend failure) or raises after ``fail_after`` items
    (a killed process)."""

    def __init__(self, reply: Callable[[str], str], *, fail_after: int | None = None,
                 error_on: str | None = None):
        super().__init__("scripted", on_error="record")
        self.reply = reply
        self.fail_after = fail_after
        self.error_on = error_on
        self.prompts: list[list[dict[str, str]]] = []

    @classmethod
    def from_config(cls, cfg, **overrides):  # pragma: no cover - never built from config
        raise NotImplementedError

    def _generate(self, convos, params):
        out = []
        for c in convos:
            if self.fail_after is not None and len(self.prompts) >= self.fail_after:
                raise RuntimeError("simulated kill")
            self.prompts.append(c)
            user = c[-1]["content"]
            if self.error_on is not None and self.error_on in user:
                out.append(Completion("", "error", error="scripted failure"))
            else:
                out.append(Completion(self.reply(user), "stop"))
        return out
