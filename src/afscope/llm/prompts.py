"""Helpers that shape prompts for LLM backends: system split and ``delimit``. The prompt types and
their validation live with the engine in :mod:`afscope.generate.prompts` and are re-exported here.

Untrusted text (the traces) goes into prompts only through :func:`delimit`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from afscope.errors import ConfigError
from afscope.generate.prompts import (  # noqa: F401  (re-exported)
    ROLES,
    ChatPrompt,
    Message,
    PromptLike,
    normalize_prompt,
)


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
