"""A tiny template grammar for the phrase banks: alternatives, optional parts and named slots.

Syntax, chosen so that banks stay readable as plain prose:

- ``[a|b|c]`` picks one alternative uniformly; alternatives nest (``[a [x|y]|b]``);
- ``[text|]`` is an optional part (an empty alternative);
- ``{name}`` is replaced by the record's slot value (scenario details, the chosen context cue);
  slot values may themselves contain alternatives, expanded once per record so a record stays
  consistent with itself.

Variety comes from multiplying choices: a sentence with four binary choices has sixteen surface
forms, and one with a scenario slot has as many again as there are scenarios. Templates are parsed
once and cached; expansion is a walk over the parsed tree with the caller's ``random.Random``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from functools import lru_cache

# A parsed template is a sequence of parts: a literal string or a tuple of alternatives,
# each alternative itself a parsed template.
Node = tuple["str | tuple[Node, ...]", ...]

_SLOT = re.compile(r"\{(\w+)\}")
_SPACES = re.compile(r"[ \t]{2,}")
_SPACE_BEFORE_PUNCT = re.compile(r" +([,.;:!?])")
_SENTENCE_START = re.compile(r"(^|[.!?]\s+|\n)([a-z])")


@lru_cache(maxsize=None)
def parse(template: str) -> Node:
    """Parse ``template`` into a tree; raises ``ValueError`` on unbalanced brackets."""
    node, pos = _parse_seq(template, 0, top=True)
    if pos != len(template):
        raise ValueError(f"unbalanced ']' at {pos} in template {template!r}")
    return node


def _parse_seq(s: str, pos: int, top: bool) -> tuple[Node, int]:
    parts: list[str | tuple[Node, ...]] = []
    buf: list[str] = []
    while pos < len(s):
        ch = s[pos]
        if ch == "[":
            if buf:
                parts.append("".join(buf))
                buf = []
            alts: list[Node] = []
            pos += 1
            while True:
                alt, pos = _parse_seq(s, pos, top=False)
                alts.append(alt)
                if pos >= len(s):
                    raise ValueError(f"unclosed '[' in template {s!r}")
                if s[pos] == "]":
                    pos += 1
                    break
                pos += 1  # skip '|'
            parts.append(tuple(alts))
        elif ch in "|]":
            if top:
                raise ValueError(f"stray {ch!r} at {pos} in template {s!r}")
            break
        else:
            buf.append(ch)
            pos += 1
    if buf:
        parts.append("".join(buf))
    return tuple(parts), pos


def _walk(node: Node, rng: random.Random, out: list[str]) -> None:
    # rng.random() instead of randrange: same determinism, a fraction of the cost.
    for part in node:
        if isinstance(part, str):
            out.append(part)
            continue
        alt = part[int(rng.random() * len(part))]
        if len(alt) == 1 and isinstance(alt[0], str):
            out.append(alt[0])
        elif alt:
            _walk(alt, rng, out)


def expand(template: str, rng: random.Random, slots: Mapping[str, str] | None = None, *,
           sentence: bool = True) -> str:
    """One random surface form of ``template`` with ``{slots}`` filled and spacing tidied.

    ``sentence=False`` is for slot values (noun phrases used mid-sentence): no capitalization.
    """
    out: list[str] = []
    _walk(parse(template), rng, out)
    text = "".join(out)
    if slots is not None and "{" in text:
        text = _SLOT.sub(lambda m: slots[m.group(1)], text)
    return tidy(text) if sentence else text


def tidy(text: str) -> str:
    """Collapse doubled spaces left by empty alternatives and capitalize sentence starts."""
    if "  " in text:
        text = _SPACES.sub(" ", text)
    if " ," in text or " ." in text or " ;" in text or " :" in text or " ?" in text or " !" in text:
        text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = text.strip()
    if text and text[0].islower():
        text = text[0].upper() + text[1:]
    if ". " in text or "? " in text or "! " in text or "\n" in text:
        text = _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)
    return text


_KEEP_CASE = frozenset({"I", "I'm", "I'd", "I'll", "I've", "Kant", "Mill", "Aristotle", "Bernard",
                        "Williams", "Rawls", "Parfit", "Singer"})


def lc_first(sentence: str) -> str:
    """Lower-case the first letter so a sentence can follow a prefix or a semicolon.

    Leaves "I", proper names and acronyms ("RLHF", "SIM") alone.
    """
    word = sentence.split(" ", 1)[0]
    bare = word.rstrip(",.;:!?")
    if (not bare or bare in _KEEP_CASE or not bare[0].isupper() or bare[1:] != bare[1:].lower()
            or not bare.replace("-", "").replace("'", "").isalpha()):
        return sentence
    return sentence[0].lower() + sentence[1:]


def n_forms(template: str) -> int:
    """How many surface forms ``template`` has before slot filling (for checking bank variety)."""
    return _count(parse(template))


def _count(node: Node) -> int:
    total = 1
    for part in node:
        if not isinstance(part, str):
            total *= sum(_count(alt) for alt in part)
    return total
