"""Append-only, keyed JSONL row files that make every long step resumable (autointerp, judging,
generation, counterfactual datasets).

Each row is keyed by one field (``feature``, ``id``...). A rerun skips the keys already on disk;
every batch is appended and fsynced before the next one is computed, so a killed run loses at most
the batch in flight. A last line without its newline (the process died mid-write) is cut off when
the file is reopened and that row is simply redone. A sidecar ``<name>.meta.json`` records the
settings the rows were made with; resuming with other settings is refused instead of mixing rows.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from afscope.errors import ArtifactError
from afscope.fileio import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".jsonl") + ".meta.json")


def meta_path(path: str | Path) -> Path:
    """The settings sidecar of a row file: ``rows.jsonl`` -> ``rows.meta.json``."""
    return _meta_path(Path(path))


def row_line(row: dict[str, Any]) -> str:
    """One row as :class:`JsonlStore` writes it (sorted keys, UTF-8 kept, newline)."""
    return json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n"


def write_rows(path: str | Path, rows: Sequence[dict[str, Any]], *,
               meta: dict[str, Any] | None = None) -> Path:
    """Write a complete row file at once (atomically), with its sidecar when ``meta`` is given:
    the bytes :class:`JsonlStore` would have appended, in this order. The merge step of sharded
    runs writes its joined file with it."""
    path = Path(path)
    if meta is not None:
        atomic_write_json(_meta_path(path), meta)
    atomic_write_text(path, "".join(row_line(r) for r in rows))
    return path


class JsonlStore:
    """Rows of one step, keyed by ``key`` (default ``"feature"``), in ``path``.

    Parameters
    ----------
    path:
        The ``.jsonl`` file (created with its parent on first append).
    meta:
        Settings that produced the rows; compared with the sidecar of an existing file
        (:class:`ArtifactError` naming the differing keys on mismatch).
    """

    def __init__(self, path: str | Path, *, key: str = "id", meta: dict[str, Any] | None = None):
        self.path = Path(path)
        self.key = key
        self.meta = meta
        self._rows: dict[Any, dict[str, Any]] = {}
        self._load()
        if meta is not None:
            self._check_meta(meta)

    # ---- reading ------------------------------------------------------------------------------

    def _load(self) -> None:
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        end = raw.rfind(b"\n") + 1
        if end < len(raw):
            logger.warning("%s: dropping a truncated last line (%d bytes); it will be redone",
                           self.path, len(raw) - end)
            with open(self.path, "r+b") as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
        for lineno, line in enumerate(raw[:end].decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ArtifactError(f"{self.path}: line {lineno}: not valid JSON ({e.msg}); the file "
                                    "is corrupt beyond a truncated last line") from None
            if not isinstance(row, dict) or self.key not in row:
                raise ArtifactError(f"{self.path}: line {lineno}: expected an object with field "
                                    f"{self.key!r}")
            if row[self.key] in self._rows:
                raise ArtifactError(f"{self.path}: line {lineno}: duplicate {self.key} "
                                    f"{row[self.key]!r}")
            self._rows[row[self.key]] = row

    def _check_meta(self, meta: dict[str, Any]) -> None:
        side = _meta_path(self.path)
        if side.exists():
            old = json.loads(side.read_text(encoding="utf-8"))
            diff = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
            if diff and self._rows:
                raise ArtifactError(f"{self.path}: rows were made with other settings (differs in: "
                                    f"{', '.join(diff)}); use another --out or delete the file")
        atomic_write_json(side, meta)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def rows(self) -> list[dict[str, Any]]:
        """All rows, in file order."""
        return list(self._rows.values())

    def get(self, key: Any) -> dict[str, Any] | None:
        return self._rows.get(key)

    # ---- writing ------------------------------------------------------------------------------

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append ``rows`` and fsync. A key already stored is an :class:`ArtifactError`."""
        if not rows:
            return
        seen = set()
        for r in rows:
            k = r[self.key]
            if k in self._rows or k in seen:
                raise ArtifactError(f"{self.path}: {self.key} {k!r} is already stored")
            seen.add(k)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(row_line(r) for r in rows)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        for r in rows:
            self._rows[r[self.key]] = r


# ---- shards: one step split over processes -----------------------------------------------------

def shard_path(path: str | Path, shard: tuple[int, int] | None) -> Path:
    """The row file of shard ``(i, n)``: ``rows.jsonl`` -> ``rows.shard-i-of-n.jsonl``."""
    path = Path(path)
    if shard is None:
        return path
    stem = path.name.removesuffix(".jsonl")
    return path.with_name(f"{stem}.shard-{shard[0]}-of-{shard[1]}.jsonl")


def take_in_shards(store: JsonlStore, order: Sequence[Any]) -> int:
    """Append to ``store`` the rows it lacks, among the keys ``order``, that a shard file beside
    it (:func:`shard_path`, any ``n``) holds with the same settings (sidecar equal to
    ``store.meta``), in ``order``; returns how many. How a step run as one process finishes the
    work of its shards: rows made elsewhere are reused, the rest is done as usual."""
    stem = store.path.name.removesuffix(".jsonl")
    found: dict[Any, dict[str, Any]] = {}
    for f in sorted(store.path.parent.glob(f"{stem}.shard-*-of-*.jsonl")):
        side = _meta_path(f)
        if side.exists() and json.loads(side.read_text(encoding="utf-8")) == store.meta:
            for row in JsonlStore(f, key=store.key).rows():
                found.setdefault(row[store.key], row)
    rows = [found[k] for k in order if k in found and k not in store]
    store.append(rows)
    return len(rows)


def put_in_order(store: JsonlStore, order: Sequence[Any]) -> JsonlStore:
    """``store`` with the rows of ``order`` first, in that order (any others after, as they were):
    the file one uninterrupted process writes. Rewritten (atomically) only when out of order."""
    keys = [r[store.key] for r in store.rows()]
    pos = {k: i for i, k in enumerate(order)}
    wanted = sorted(keys, key=lambda k: (0, pos[k]) if k in pos else (1, 0))
    if wanted == keys:
        return store
    write_rows(store.path, [store._rows[k] for k in wanted])
    return JsonlStore(store.path, key=store.key, meta=store.meta)
