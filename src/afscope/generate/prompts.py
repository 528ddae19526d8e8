"""Prompts: their types and validation, and the one reader of prompt files (generation, sweeps)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict, Union

from afscope.errors import DataError

_PROMPT_KEYS = ("prompt", "question", "text")


ROLES = ("system", "user", "assistant")


class Message(TypedDict):
    """One chat turn: ``{"role": "system" | "user" | "assistant", "content": str}``."""

    role: str
    content: str


ChatPrompt = list[Message]
#: What ``complete`` accepts per item: a chat, or a bare string (one user turn).
PromptLike = Union[Sequence[Mapping[str, str]], str]


def normalize_prompt(prompt: PromptLike, index: int = 0) -> list[dict[str, str]]:
    """Validate one prompt into a list of ``{"role", "content"}`` dicts (a fresh copy).

    Raises :class:`DataError` naming the prompt and message index on a bad role or content.
    """
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, Mapping) or not isinstance(prompt, Sequence) or len(prompt) == 0:
        raise DataError(f"prompt {index}: expected a string or a non-empty list of messages")
    out = []
    for j, m in enumerate(prompt):
        if not isinstance(m, Mapping):
            raise DataError(f"prompt {index}: message {j}: expected a dict with 'role' and 'content'")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise DataError(f"prompt {index}: message {j}: field 'role': expected one of {ROLES}, got {role!r}")
        if not isinstance(content, str):
            raise DataError(f"prompt {index}: message {j}: field 'content': expected a string")
        out.append({"role": role, "content": content})
    return out


def _prompt_text(obj: Any, path: Path, i: int) -> tuple[str | list[dict[str, str]], dict[str, Any]]:
    if isinstance(obj, str):
        text, extra = obj, {}
    elif isinstance(obj, dict) and isinstance(obj.get("messages"), list) and obj["messages"]:
        extra = {k: v for k, v in obj.items() if k != "messages"}
        try:
            return normalize_prompt(obj["messages"], i), extra
        except DataError as e:
            raise DataError(f"{path}: record {i}: field 'messages': {e}") from None
    elif isinstance(obj, dict):
        key = next((k for k in _PROMPT_KEYS if k in obj), None)
        if key is None:
            raise DataError(f"{path}: record {i}: no prompt field (expected one of "
                            f"{', '.join(_PROMPT_KEYS)})")
        text = obj[key]
        extra = {k: v for k, v in obj.items() if k != key}
    else:
        raise DataError(f"{path}: record {i}: expected a string or an object, got "
                        f"{type(obj).__name__}")
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{path}: record {i}: the prompt is empty or not a string")
    return text, extra


def load_prompts(path: str | Path) -> list[dict[str, Any]]:
    """Prompts from a JSON file (a list, or ``{"prompts"|"questions": [...]}``) or JSONL; each a
    string, an object with ``prompt``/``question``/``text``, or an object with a chat ``messages``
    list (+ optional ``id`` and extras).

    Returns ``[{"prompt_id", "prompt", ...extras}]``.
    """
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read prompts: {e}") from None
    try:
        if path.suffix == ".jsonl":
            data = [json.loads(line) for line in raw.splitlines() if line.strip()]
        else:
            data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON: {e}") from None
    if isinstance(data, dict):
        data = next((data[k] for k in ("prompts", "questions") if k in data), None)
    if not isinstance(data, list) or not data:
        raise DataError(f"{path}: expected a non-empty list of prompts (or {{'prompts': [...]}})")
    out, seen = [], set()
    for i, obj in enumerate(data):
        text, extra = _prompt_text(obj, path, i)
        pid = str(extra.pop("id", f"p{i:04d}"))
        if pid in seen:
            raise DataError(f"{path}: record {i}: field 'id': duplicate {pid!r}")
        seen.add(pid)
        out.append({**extra, "prompt_id": pid, "prompt": text})
    return out
