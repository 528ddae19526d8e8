"""Answer forms: the fixed ``KEY: value`` line formats of the judge and autointerp, as data.

A :class:`Form` lists the lines an answer must have, in order; each line's value is either one
of a few allowed options (a label, a yes/no, a point on a scale) or one line of free text. A
caller passes the form along with its prompt (``backend.complete(prompts, form=...)``) and parses
the reply with its own strict parser, whatever the backend did with the form:

- the local transformers backend fills it in exactly: each option's log-likelihood is scored and
  the best one written; free text is generated after a forced ``KEY:`` prefix and cut at the end
  of the line (:mod:`afscope.llm.scoring`);
- an OpenAI-compatible server gets a JSON schema (``response_format``) or vLLM's
  ``structured_outputs`` regex, an Anthropic server a JSON schema (``output_config``) or a
  prefilled ``KEY:``; the answer is turned back into the lines by :meth:`Form.from_json`;
- any other backend, or a server that refuses the structured request, answers in free text, and
  the strict parser decides (a failure is counted, never guessed).

So the parsers stay the single definition of a valid answer, and :meth:`Form.render` always
produces text they accept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from afscope.errors import ConfigError

_KEY = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class FormField:
    """One ``KEY: value`` line: ``options`` (allowed values, in the order the prompt lists them)
    or, when None, free text of at most ``max_chars`` characters on one line."""

    key: str
    options: tuple[str, ...] | None = None
    max_chars: int = 400

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise ConfigError(f"FormField: key {self.key!r} must be letters, digits or '_'")
        if self.options is not None:
            opts = tuple(self.options)
            if not opts or len(set(opts)) != len(opts):
                raise ConfigError(f"FormField {self.key}: options must be distinct and non-empty")
            if any(not o or o != o.strip() or "\n" in o for o in opts):
                raise ConfigError(f"FormField {self.key}: an option is empty, padded or multi-line")
            object.__setattr__(self, "options", opts)
        if self.max_chars < 1:
            raise ConfigError(f"FormField {self.key}: max_chars must be >= 1")

    @property
    def is_choice(self) -> bool:
        return self.options is not None


def choice_field(key: str, options: Sequence[str | int]) -> FormField:
    """A line whose value is one of ``options`` (ints are written as decimal numbers)."""
    return FormField(key, tuple(str(o) for o in options))


def text_field(key: str, max_chars: int = 400) -> FormField:
    """A line of free text (one line, at most ``max_chars`` characters)."""
    return FormField(key, None, max_chars)


def scale(lo: int, hi: int, step: int = 1) -> tuple[str, ...]:
    """The options ``lo, lo+step, ..., hi`` of a numeric scale, as text."""
    return tuple(str(v) for v in range(lo, hi + 1, step))


@dataclass(frozen=True)
class Form:
    """The lines of an answer, in order (keys distinct)."""

    fields: tuple[FormField, ...]

    def __post_init__(self) -> None:
        fields = tuple(self.fields)
        if not fields:
            raise ConfigError("Form: needs at least one field")
        keys = [f.key for f in fields]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"Form: duplicate keys in {keys}")
        object.__setattr__(self, "fields", fields)

    @property
    def keys(self) -> list[str]:
        return [f.key for f in self.fields]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (part of the response-cache key)."""
        return {"fields": [{"key": f.key, "options": list(f.options) if f.options else None,
                            "max_chars": f.max_chars} for f in self.fields]}

    def render(self, values: Mapping[str, str]) -> str:
        """The answer text: ``KEY: value`` per field, one per line, in order."""
        return "\n".join(f"{f.key}: {values[f.key]}" for f in self.fields)

    # ---- what servers are sent ---------------------------------------------------------------

    def json_schema(self) -> dict[str, Any]:
        """A JSON schema of an object with one string property per field (an ``enum`` for
        choices), all required, nothing else allowed: the subset OpenAI's strict mode, vLLM and
        Anthropic all accept (no ``maxLength``: the parser checks lengths)."""
        props = {f.key: ({"type": "string", "enum": list(f.options)} if f.options is not None
                         else {"type": "string"}) for f in self.fields}
        return {"type": "object", "properties": props, "required": self.keys,
                "additionalProperties": False}

    def regex(self) -> str:
        """A regular expression of exactly the rendered lines (vLLM ``structured_outputs``)."""
        parts = []
        for f in self.fields:
            value = ("(" + "|".join(re.escape(o) for o in f.options) + ")" if f.options is not None
                     else "[^\\n]+")
            parts.append(re.escape(f.key) + ": " + value)
        return "\\n".join(parts)

    # ---- what comes back ---------------------------------------------------------------------

    def from_json(self, reply: str) -> str | None:
        """The rendered lines of a JSON answer (an object with every key, each choice one of its
        options, free text flattened to one line), or None when ``reply`` is not such an object."""
        try:
            data = json.loads(reply)
        except (json.JSONDecodeError, TypeError):
            return None
        if not isinstance(data, dict):
            return None
        values: dict[str, str] = {}
        for f in self.fields:
            v = data.get(f.key)
            if isinstance(v, bool) or not isinstance(v, (str, int)):
                return None
            v = " ".join(str(v).split())
            if f.options is not None and v not in f.options:
                return None
            values[f.key] = v
        return self.render(values)

    def matches(self, reply: str) -> bool:
        """Whether ``reply`` is exactly the rendered lines of some allowed answer."""
        return re.fullmatch(self.regex(), reply.strip()) is not None
