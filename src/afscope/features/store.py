"""Append-only JSONL result files, one per autointerp step, that make every step resumable.

Each row is keyed by its ``feature`` id. A rerun skips the ids already on disk; every batch of LLM
answers is appended and fsynced before the next batch is asked for, so a killed run loses at most the
batch in flight. A last line without its newline (the process died mid-write) is cut off when the
file is reopened and that feature is simply redone. A sidecar ``<name>.meta.json`` records the
settings the rows were made with; resuming with other settings is refused instead of mixing rows.

Backend failures (``Completion.error``) are *not* written: they are counted and retried by the next
run. Parse failures are written (the model did answer; greedy decoding would answer the same).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from afscope.errors import ArtifactError
from afscope.fileio import atomic_write_json
from afscope.llm import Completion, LLMBackend, PromptLike

logger = logging.getLogger(__name__)

DESCRIPTIONS = "descriptions.jsonl"
CLASSIFICATIONS = "classifications.jsonl"
SCORES = "scores.jsonl"


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

    def __init__(self, path: str | Path, *, key: str = "feature", meta: dict[str, Any] | None = None):
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


@dataclass
class StepStats:
    """What one step did: ``done`` rows written now, ``skipped`` already on disk (resume),
    ``parse_failures`` answers that did not parse, ``backend_errors`` items the backend failed."""

    done: int = 0
    skipped: int = 0
    parse_failures: int = 0
    backend_errors: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"done": self.done, "skipped": self.skipped, "parse_failures": self.parse_failures,
                "backend_errors": self.backend_errors, "errors": self.errors[:20]}


@dataclass(frozen=True)
class Job:
    """One LLM request of a step: the row key, its prompt and what the row builder needs."""

    key: Any
    prompt: PromptLike
    context: dict[str, Any]


def run_jobs(
    jobs: Iterable[Job],
    backend: LLMBackend,
    store: JsonlStore,
    make_row: Callable[[Job, Completion], dict[str, Any]],
    *,
    batch_size: int = 8,
    on_batch: Callable[[int], None] | None = None,
) -> StepStats:
    """Ask ``backend`` for every job whose key is not in ``store``, ``batch_size`` prompts per
    :meth:`~afscope.llm.LLMBackend.complete` call, appending (and fsyncing) each batch's rows.

    ``make_row(job, completion)`` returns the row; it must set ``"status"`` to ``"ok"`` or
    ``"parse_error"``. Failed completions are counted and not written (retried on resume). An
    exception from the backend propagates: the batches before it are already on disk.
    """
    stats = StepStats()
    pending: list[Job] = []
    for job in jobs:
        if job.key in store:
            stats.skipped += 1
        else:
            pending.append(job)
    for start in range(0, len(pending), batch_size):
        batch = pending[start:start + batch_size]
        answers = backend.complete([j.prompt for j in batch])
        rows = []
        for job, comp in zip(batch, answers):
            if comp.error is not None:
                stats.backend_errors += 1
                stats.errors.append(f"{store.key} {job.key}: {comp.error}")
                continue
            row = make_row(job, comp)
            if row.get("status") != "ok":
                stats.parse_failures += 1
            rows.append(row)
        store.append(rows)
        stats.done += len(rows)
        if on_batch is not None:
            on_batch(len(batch))
    if stats.backend_errors:
        logger.warning("%s: %d backend failures (not written; rerun to retry)", store.path,
                       stats.backend_errors)
    return stats
