"""The record model shared by every component, and the label vocabulary of the seeds' datasets.

A record keeps its fine category (``hard_negative``, ``genuine_compliance``, ...) and derives the
binary label from it: 1 = alignment faking, 0 = not. Unknown categories are an error unless the
user maps them (``label_map`` in the data config).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from afscope.errors import DataError

POSITIVE_LABELS: frozenset[str] = frozenset(
    {"alignment_faking", "potential_faking", "faking", "scheming"})
NEGATIVE_LABELS: frozenset[str] = frozenset(
    {"aligned", "genuine_compliance", "hard_negative", "compliant_hard_negative", "compliant"})
HARD_NEGATIVE_LABELS: frozenset[str] = frozenset({"hard_negative", "compliant_hard_negative"})

_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Normalization used for dedup and leakage: NFKC, case-folded, whitespace collapsed."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def content_hash(text: str) -> str:
    """Hash of the normalized text: two records with the same hash are duplicates."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


def binary_label(category: str, label_map: Mapping[str, int] | None = None,
                 location: str = "") -> int:
    """Map a fine category to 1 (AF) / 0 (not AF); ``label_map`` wins over the built-in vocabulary."""
    if label_map and category in label_map:
        return int(label_map[category])
    if category in POSITIVE_LABELS:
        return 1
    if category in NEGATIVE_LABELS:
        return 0
    known = sorted(POSITIVE_LABELS | NEGATIVE_LABELS)
    raise DataError(f"{location}: unknown label {category!r}; known labels: {', '.join(known)}; "
                    f"map it with label_map in the data config (e.g. {category!r}: 0)")


@dataclass(frozen=True)
class Record:
    """One labelled reasoning trace.

    ``text`` is what the model reads. ``prompt`` (optional) is the context before it, so token masks
    can select the response only. ``extra`` keeps every other field of the source record.
    """

    text: str
    category: str
    label: int
    id: str
    source: str | None = None
    pattern: str | None = None
    prompt: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def hash(self) -> str:
        return content_hash(self.text)

    def to_dict(self) -> dict[str, Any]:
        """The JSONL form of a record: ``label`` is the fine category, ``is_af`` the binary label.

        ``source``, ``pattern`` and ``prompt`` are always written (null when unset), so every
        corpus file has the same columns: ``datasets.load_dataset("json")`` types a column that is
        missing from one file and present in another differently.
        """
        out: dict[str, Any] = dict(self.extra)
        out.update({"id": self.id, "text": self.text, "label": self.category, "is_af": self.label})
        for k in ("source", "pattern", "prompt"):
            v = getattr(self, k)
            out[k] = v if v is not None else out.get(k)
        return out
