"""A labelled dataset: an ordered list of :class:`~afscope.data.records.Record` plus provenance.

The :class:`Dataset` is what every other component consumes (extract, probe, baselines, leakage
guard). It carries the provenance the run manifest needs (file path, file sha256, a content hash)
so a cache built from one dataset is never silently reused for another.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np

from afscope.data.records import Record
from afscope.fileio import atomic_write_text, sha256_file


def _file_sha256(path: Path) -> str | None:
    """sha256 of a dataset file; for a directory (HF ``save_to_disk``) a hash over its files."""
    if path.is_file():
        return sha256_file(path)
    if path.is_dir():
        h = hashlib.sha256()
        for p in sorted(x for x in path.rglob("*") if x.is_file()):
            h.update(p.relative_to(path).as_posix().encode("utf-8") + b"\0")
            h.update(sha256_file(p).encode("ascii") + b"\0")
        return h.hexdigest()
    return None


@dataclass(kw_only=True)
class Dataset:
    """An ordered, labelled set of reasoning traces.

    Parameters
    ----------
    name:
        Short name used in default record ids, manifests and reports.
    records:
        The records, in file order (order matters: caches index rows by position).
    path:
        Where the records came from (file, HF folder or hub name); ``None`` for in-memory data.
    eval_only:
        Declared evaluation-only (the seeds' ``gold_106`` rule): the :class:`LeakageGuard` refuses
        any training or selection step that touches these records.
    meta:
        Loader notes for the manifest (format, duplicates dropped, ...).

    Fields are keyword-only so that callers cannot confuse ``path`` and ``records`` positionally.
    """

    name: str
    records: list[Record]
    path: str | Path | None = None
    eval_only: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_records(cls, records: Iterable[Record], name: str = "records", *,
                     eval_only: bool = False) -> Dataset:
        """Wrap in-memory records (e.g. the synthetic corpus) as a dataset without a file."""
        return cls(name=name, records=list(records), eval_only=eval_only)

    # -- sequence protocol ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    @overload
    def __getitem__(self, index: int) -> Record: ...

    @overload
    def __getitem__(self, index: slice) -> Dataset: ...

    def __getitem__(self, index: int | slice) -> Record | Dataset:
        if isinstance(index, slice):
            return self.subset(range(len(self.records))[index])
        return self.records[index]

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, n={len(self)}, eval_only={self.eval_only}, "
                f"counts={self.counts()})")

    # -- columns ----------------------------------------------------------------------------------
    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.records]

    @property
    def labels(self) -> np.ndarray:
        """Binary labels, shape ``(n,)``, int64: 1 = alignment faking, 0 = not."""
        return np.fromiter((r.label for r in self.records), dtype=np.int64, count=len(self.records))

    @property
    def categories(self) -> list[str]:
        """Fine categories (``hard_negative``, ``compliant_hard_negative``, ...) in record order."""
        return [r.category for r in self.records]

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    @property
    def hashes(self) -> list[str]:
        """Normalized-content hash per record (the dedup and leakage key)."""
        return [r.hash for r in self.records]

    # -- derived ----------------------------------------------------------------------------------
    @property
    def content_hash(self) -> str:
        """sha256 over the records' content, **order-dependent**.

        Each record contributes its normalized-text hash, fine category, binary label and (when
        present) the hash of its prompt, in record order. Order matters on purpose: activation
        caches store rows by position, so the same records in another order must not reuse them.
        Ids, the dataset name and the file path are excluded, so renaming a file keeps the hash.
        """
        h = hashlib.sha256()
        for r in self.records:
            prompt = hashlib.sha256(r.prompt.encode("utf-8")).hexdigest() if r.prompt else ""
            h.update(f"{r.hash}\t{r.category}\t{r.label}\t{prompt}\n".encode())
        return h.hexdigest()

    def counts(self) -> dict[str, int]:
        """Number of records per fine category, sorted by category name."""
        return dict(sorted(Counter(r.category for r in self.records).items()))

    def label_counts(self) -> dict[int, int]:
        """Number of records per binary label (0 and 1 always present)."""
        c = Counter(r.label for r in self.records)
        return {0: c.get(0, 0), 1: c.get(1, 0)}

    def subset(self, indices: Iterable[int] | np.ndarray, name: str | None = None) -> Dataset:
        """A new dataset with the records at ``indices`` (in that order); provenance is kept."""
        idx = [int(i) for i in indices]
        return Dataset(name=name or self.name, records=[self.records[i] for i in idx],
                       path=self.path, eval_only=self.eval_only,
                       meta={**self.meta, "subset_of": self.name, "n_parent": len(self)})

    # -- output -----------------------------------------------------------------------------------
    def to_jsonl(self, path: str | Path) -> Path:
        """Write one ``Record.to_dict()`` per line, atomically; reloads to the same records."""
        lines = [json.dumps(r.to_dict(), ensure_ascii=False, sort_keys=True) for r in self.records]
        return atomic_write_text(path, "".join(line + "\n" for line in lines))

    def info(self) -> dict[str, Any]:
        """Provenance for the run manifest: file hash, content hash, size and category counts."""
        path = self.path
        file_hash = None
        if path is not None and Path(path).exists():
            file_hash = _file_sha256(Path(path))
        return {
            "name": self.name,
            "path": str(path) if path is not None else None,
            "sha256": file_hash,
            "content_hash": self.content_hash,
            "n": len(self),
            "counts": self.counts(),
            "label_counts": {str(k): v for k, v in self.label_counts().items()},
            "eval_only": self.eval_only,
            **({"meta": dict(self.meta)} if self.meta else {}),
        }


def concat(datasets: Sequence[Dataset], name: str | None = None) -> Dataset:
    """Concatenate datasets in order; the result is eval-only if any part is."""
    records = [r for d in datasets for r in d.records]
    return Dataset(name=name or "+".join(d.name for d in datasets), records=records,
                   eval_only=any(d.eval_only for d in datasets),
                   meta={"parts": [d.name for d in datasets]})
