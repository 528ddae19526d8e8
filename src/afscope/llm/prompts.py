"""Prompt types and the helpers that shape prompts: validation, system split, stops, ``delimit``.

Untrusted text (the traces) goes into prompts only through :func:`delimit`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TypedDict, Union

from afscope.errors import ConfigError, DataError

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


def split_system(messages: Sequence[Mapping[str, str]]) -> tuple[str | None, list[dict[str, str]]]:
    """Separate system turns (joined by blank lines) from the conversation, for APIs and CLIs
    that take the system prompt as its own field."""
    system = [m["content"] for m in messages if m["role"] == "system"]
    rest = [dict(m) for m in messages if m["role"] != "system"]
    return ("\n\n".join(system) if system else None), rest


_TAG = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


def delimit(text: str, tag: str = "trace") -> str:
    """Wrap untrusted ``text`` in ``<tag>…</tag>`` so a prompt can refer to it unambiguously.

    Any closing tag inside the text (any case, spaces allowed: ``</TRACE >``, ``< /trace``) has its
    ``<`` replaced by ``&lt;``, so the text cannot end the block early and smuggle instructions into
    the surrounding prompt. The rest of the text is kept verbatim.
    """
    if not _TAG.match(tag):
        raise ConfigError(f"delimit: tag {tag!r} must be letters, digits, '_', '-' or '.'")
    closing = re.compile(r"<(\s*/\s*" + re.escape(tag) + r")(?![A-Za-z0-9_.-])", re.IGNORECASE)
    safe = closing.sub(lambda m: "&lt;" + m.group(1), text)
    return f"<{tag}>\n{safe}\n</{tag}>"
