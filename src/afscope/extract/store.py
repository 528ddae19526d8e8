"""The activation cache on disk: fixed-size chunks of safetensors plus a static JSON index.

Layout of a cache directory::

    index.json                 kind, format_version, fingerprint (+ the fields it hashes), layout
    records.jsonl              one line per record: row, id, category, label (the row order)
    chunks/chunk-00000.safetensors   tensors "L{layer}.{pool}" (rows, d) float32, "row" int64,
                                     "n_tokens" int64; header metadata holds the fingerprint
    manifest.json              the run manifest (manifest.shard-i-of-n.json for --shard runs)

A chunk holds records ``[k * chunk_size, (k + 1) * chunk_size)``. It is written once, atomically, so
its presence means it is complete: a killed run resumes by skipping present chunks, and ``--shard
i/n`` processes (chunks ``k % n == i``) can write into one directory or into several that
:func:`merge_caches` joins. Batching depends only on a chunk's records, so a resumed, sharded or
uninterrupted run produces byte-identical files. Per-token sparse SAE activations will live beside
these as ``tokens/`` chunks with the same numbering.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open

from afscope.errors import ArtifactError
from afscope.fileio import atomic_path, atomic_write_json, atomic_write_text, dumps_json

KIND = "activation_cache"
FORMAT_VERSION = 1
INDEX = "index.json"
RECORDS = "records.jsonl"
CHUNK_DIR = "chunks"


def chunk_name(k: int) -> str:
    return f"chunk-{k:05d}.safetensors"


def tensor_key(layer: int, pool: str) -> str:
    return f"L{layer}.{pool}"


def write_index(path: Path, index: dict[str, Any]) -> None:
    atomic_write_json(path / INDEX, index)


def read_index(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        index = json.loads((path / INDEX).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: not an activation cache (no {INDEX})") from None
    except ValueError as e:
        raise ArtifactError(f"{path / INDEX}: corrupt JSON: {e}") from None
    if index.get("kind") != KIND:
        raise ArtifactError(f"{path / INDEX}: kind {index.get('kind')!r}, expected {KIND!r}")
    if index.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path / INDEX}: format_version {index.get('format_version')} is not "
                            f"supported (this afscope reads {FORMAT_VERSION})")
    return index


def write_records(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    atomic_write_text(path / RECORDS, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def chunk_fingerprint(file: Path) -> str | None:
    """The fingerprint stored in a chunk's header (None if unreadable: treat as missing)."""
    try:
        with safe_open(str(file), framework="np") as f:
            return json.loads((f.metadata() or {})["afscope"]).get("fingerprint")
    except Exception:  # noqa: BLE001 - any unreadable chunk is redone, never trusted
        return None


def save_chunk(path: Path, k: int, tensors: dict[str, np.ndarray], fingerprint: str) -> Path:
    """Write chunk ``k`` atomically. The header metadata is one key (safetensors does not keep the
    order of several), so identical chunks are identical bytes."""
    from safetensors.numpy import save_file

    target = path / CHUNK_DIR / chunk_name(k)
    with atomic_path(target) as tmp:
        save_file({n: np.ascontiguousarray(t) for n, t in tensors.items()}, str(tmp),
                  metadata={"afscope": json.dumps({"fingerprint": fingerprint, "chunk": k},
                                                  sort_keys=True)})
    return target


class ActivationCache:
    """Read side of a cache directory: ``cache.get(layer, pool)`` is an ``(n_records, d)`` array."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.index = read_index(self.path)
        self.layers: list[int] = list(self.index["layers"])
        self.pools: list[str] = list(self.index["pools"])
        self.n_records: int = int(self.index["n_records"])
        self.d_model: int = int(self.index["d_model"])

    @property
    def fingerprint(self) -> str:
        return str(self.index["fingerprint"])

    def chunk_files(self) -> list[Path]:
        return [self.path / CHUNK_DIR / chunk_name(k) for k in range(self.index["n_chunks"])]

    def missing_chunks(self) -> list[int]:
        return [k for k, f in enumerate(self.chunk_files())
                if chunk_fingerprint(f) != self.fingerprint]

    def check_complete(self) -> None:
        missing = self.missing_chunks()
        if missing:
            raise ArtifactError(
                f"{self.path}: cache incomplete, {len(missing)} of {self.index['n_chunks']} chunks "
                f"missing (first: {missing[:5]}); rerun the same extract command to resume")

    def records(self) -> list[dict[str, Any]]:
        lines = (self.path / RECORDS).read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line]

    @property
    def labels(self) -> np.ndarray:
        return np.array([r["label"] for r in self.records()], dtype=np.int64)

    def _read(self, key: str) -> np.ndarray:
        self.check_complete()
        parts = []
        for f in self.chunk_files():
            with safe_open(str(f), framework="np") as fh:
                parts.append(fh.get_tensor(key))
        return np.concatenate(parts, axis=0)

    def get(self, layer: int, pool: str) -> np.ndarray:
        """Pooled activations ``(n_records, d_model)`` float32, rows in dataset order."""
        if layer not in self.layers or pool not in self.pools:
            raise ArtifactError(f"{self.path}: no activations for layer {layer} / pool {pool!r}; "
                                f"cache has layers {self.layers} and pools {self.pools}")
        return self._read(tensor_key(layer, pool))

    def n_tokens(self) -> np.ndarray:
        return self._read("n_tokens")

    def export_npy(self, out_dir: str | Path) -> list[Path]:
        """Dense ``.npy`` per layer and pool, shaped like the seeds' ``(n_samples, d)`` arrays."""
        out_dir = Path(out_dir)
        written = []
        for layer in self.layers:
            for pool in self.pools:
                target = out_dir / f"layer{layer}_{pool}.npy"
                with atomic_path(target) as tmp, open(tmp, "wb") as f:
                    np.save(f, self.get(layer, pool), allow_pickle=False)
                written.append(target)
        atomic_write_text(out_dir / "labels.json", dumps_json(self.labels.tolist()))
        return written


def merge_caches(sources: list[str | Path], out: str | Path) -> Path:
    """Join caches written by ``--shard i/n`` runs into ``out`` (all must share one fingerprint)."""
    if not sources:
        raise ArtifactError("merge needs at least one source cache")
    out = Path(out)
    indexes = [read_index(s) for s in sources]
    prints = {i["fingerprint"] for i in indexes}
    if len(prints) != 1:
        raise ArtifactError("cannot merge caches made from different configs: "
                            + ", ".join(f"{s} ({i['fingerprint'][:12]})"
                                        for s, i in zip(sources, indexes)))
    (out / CHUNK_DIR).mkdir(parents=True, exist_ok=True)
    write_index(out, indexes[0])
    shutil.copyfile(Path(sources[0]) / RECORDS, out / RECORDS)
    fingerprint = indexes[0]["fingerprint"]
    for src in sources:
        for f in sorted((Path(src) / CHUNK_DIR).glob("chunk-*.safetensors")):
            dst = out / CHUNK_DIR / f.name
            if chunk_fingerprint(f) == fingerprint and chunk_fingerprint(dst) != fingerprint:
                with atomic_path(dst) as tmp:
                    shutil.copyfile(f, tmp)
    ActivationCache(out).check_complete()
    return out
