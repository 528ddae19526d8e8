"""The ``claude -p`` CLI as a backend (what the seeds used: no API key, the CLI's own login).

Runs ``claude -p --output-format json [--model M] [--system-prompt S] [extra args]`` per prompt and
reads the ``result`` field of the JSON it prints. The prompt goes through **stdin**, not argv: argv
is visible to every user in ``ps`` and one argument is limited to 128 KiB on Linux, which a prompt of
several traces can exceed. Multi-turn chats are rendered as one transcript (the CLI has no turns).

The CLI cannot set temperature or max_tokens, so answers are not deterministic; the cache is used
only when a model is named (the CLI's default model changes over time). A timed-out CLI is killed
with its whole process group. A missing binary is a clear, non-retried error.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
from collections.abc import Sequence
from typing import Any

from afscope.generate.params import apply_stop
from afscope.llm.base import (
    Completion,
    ConcurrentBackend,
    GenerationParams,
    concurrent_kwargs,
    register_backend,
)
from afscope.llm.config import LLMConfig
from afscope.llm.prompts import split_system
from afscope.llm.retry import PermanentError, TransientError

logger = logging.getLogger(__name__)
_SNIPPET = 300


def render_transcript(turns: Sequence[dict[str, str]]) -> str:
    """One user turn as-is; several turns as ``[user]`` / ``[assistant]`` sections."""
    if len(turns) == 1 and turns[0]["role"] == "user":
        return turns[0]["content"]
    return "\n\n".join(f"[{t['role']}]\n{t['content']}" for t in turns)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill the CLI and anything it spawned (it runs in its own session)."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover (Windows)
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


@register_backend("claude-cli")
class ClaudeCLIBackend(ConcurrentBackend):
    """Claude through the local ``claude`` CLI. ``binary`` may be a name on PATH or a path."""

    def __init__(self, model: str | None = None, *, binary: str = "claude",
                 extra_args: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(model or "", **kwargs)
        self.binary = binary
        self.extra_args = tuple(extra_args)
        self._warned_params = False

    @classmethod
    def from_config(cls, cfg: LLMConfig, **overrides: Any) -> ClaudeCLIBackend:
        kwargs: dict[str, Any] = dict(
            binary=cfg.cli_binary, extra_args=cfg.cli_extra_args, **concurrent_kwargs(cfg))
        kwargs.update(overrides)
        return cls(cfg.model, **kwargs)

    def __repr__(self) -> str:
        return f"ClaudeCLIBackend(model={self.model or None!r}, binary={self.binary!r})"

    def describe(self) -> str:
        return f"claude-cli model {self.model or '(CLI default)'!r}"

    def argv(self, system: str | None) -> list[str]:
        args = [self.binary, "-p", "--output-format", "json"]
        if self.model:
            args += ["--model", self.model]
        if system is not None:
            args += ["--system-prompt", system]
        return args + list(self.extra_args)

    def _attempt(self, messages: list[dict[str, str]], params: GenerationParams) -> Completion:
        if not self._warned_params:
            self._warned_params = True
            logger.warning("claude-cli cannot set temperature or max_tokens: answers are not deterministic")
        system, turns = split_system(messages)
        if not turns:
            raise PermanentError("the prompt has no user turn")
        try:
            proc = subprocess.Popen(
                self.argv(system), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, encoding="utf-8", errors="replace", start_new_session=True)
        except FileNotFoundError:
            raise PermanentError(f"claude CLI not found: {self.binary!r} is not on PATH or does not exist "
                                 "(install Claude Code, or set cli_binary)") from None
        except PermissionError:
            raise PermanentError(f"claude CLI {self.binary!r} is not executable") from None
        try:
            out, err = proc.communicate(render_transcript(turns), timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            raise TransientError(f"claude CLI timed out after {self.timeout_s} s") from None
        except BaseException:
            _kill_group(proc)
            proc.communicate()
            raise
        if proc.returncode != 0:
            detail = (err or out).strip()[:_SNIPPET]
            raise TransientError(f"claude CLI exited with status {proc.returncode}: {detail}")
        comp = _parse_result(out)
        text, _ = apply_stop(comp.text, params.stop)  # the CLI takes no stop strings: cut afterwards
        return Completion(text, comp.finish_reason)


def _parse_result(out: str) -> Completion:
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        raise PermanentError(f"claude CLI output is not JSON: {out[:_SNIPPET]!r}") from None
    if not isinstance(data, dict):
        raise PermanentError(f"claude CLI output is not a JSON object: {out[:_SNIPPET]!r}")
    if data.get("is_error") is True or data.get("subtype", "success") != "success":
        detail = str(data.get("result") or data.get("subtype") or "")[:_SNIPPET]
        raise PermanentError(f"claude CLI reported an error ({data.get('subtype')}): {detail}")
    result = data.get("result")
    if not isinstance(result, str):
        raise PermanentError("claude CLI output has no 'result' string")
    return Completion(result, "stop")

