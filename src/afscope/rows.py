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
from afscope.fileio import atomic_write_json

logger = logging.getLogger(__name__)


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".jsonl") + ".meta.json")


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
        text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        for r in rows:
            self._rows[r[self.key]] = r
