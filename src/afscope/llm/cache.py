"""On-disk response cache: one small JSON file per request, written atomically.

Why one file per key rather than one JSONL: several threads *and* several processes (a Slurm array
judging shards of one dataset) may share a cache directory. ``os.replace`` of a complete file is
atomic, so readers see either nothing or a whole entry, with no locking and no interleaved lines.
Files live under ``<cache_dir>/<key[:2]>/<key>.json`` to keep directories small.

The key is the sha256 of (backend, model, messages, generation params) and a format version — never
the API key, the base URL or the timeout, which do not change the answer. A file that cannot be read
or parsed (disk trouble, a hand edit) is skipped with a warning and treated as a miss; the next
successful answer overwrites it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from afscope.fileio import atomic_write_json, sha256_json

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1


def cache_key(
    backend: str, model: str, messages: Sequence[Mapping[str, str]], params: Mapping[str, Any]
) -> str:
    """sha256 over everything that determines an answer (and nothing secret)."""
    return sha256_json(
        {
            "format_version": CACHE_FORMAT_VERSION,
            "backend": backend,
            "model": model,
            "messages": [dict(m) for m in messages],
            "params": dict(params),
        }
    )


class ResponseCache:
    """A directory of cached completions, safe to share between threads and processes.

    Entries are plain dicts; ``entry["completion"]`` holds at least ``text`` and ``finish_reason``.
    ``hits``/``misses``/``corrupt`` count lookups since construction (for run summaries).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self.corrupt = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.root)!r})"

    def path_for(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored entry for ``key``, or None on a miss or an unreadable file (warned)."""
        path = self.path_for(key)
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self._count("misses")
            return None
        except (OSError, UnicodeDecodeError) as e:
            return self._skip(path, f"unreadable ({e.__class__.__name__})")
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError as e:
            return self._skip(path, f"not valid JSON ({e.msg} at line {e.lineno})")
        if not _valid_entry(entry, key):
            return self._skip(path, "missing or mistyped fields")
        self._count("hits")
        return entry

    def put(self, key: str, entry: Mapping[str, Any]) -> None:
        """Store ``entry`` under ``key`` (atomically; a concurrent reader never sees half a file)."""
        record = dict(entry)
        record["key"] = key
        record["format_version"] = CACHE_FORMAT_VERSION
        atomic_write_json(self.path_for(key), record)

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("??/*.json")) if self.root.is_dir() else 0

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def _skip(self, path: Path, why: str) -> None:
        logger.warning("LLM cache: skipping %s: %s", path, why)
        self._count("corrupt")
        self._count("misses")
        return None


def _valid_entry(entry: Any, key: str) -> bool:
    if not isinstance(entry, dict) or entry.get("key") != key:
        return False
    completion = entry.get("completion")
    return (
        isinstance(completion, dict)
        and isinstance(completion.get("text"), str)
        and (completion.get("finish_reason") is None or isinstance(completion["finish_reason"], str))
    )
