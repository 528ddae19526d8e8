"""The activation cache on disk: fixed-size chunks of safetensors plus a static JSON index.

Layout of a cache directory::

    index.json                 kind, format_version, fingerprint (+ the fields it hashes), layout
    records.jsonl              one line per record: row, id, category, label (the row order)
    chunks/chunk-00000.safetensors   tensors "L{layer}.{pool}" (rows, d) float32, "row" int64,
                                     "n_tokens" int64; header metadata holds the fingerprint;
                                     with --sae, per-sample latents as CSR per layer:
                                     "sae.L{layer}.indptr" (rows+1,) int64, ".indices" (nnz,) int32,
                                     ".max" / ".mean" (nnz,) float32, ".argmax" (nnz,) int32
    tokens/chunk-00000.safetensors   with --token-topk K: every masked token's "row", "pos",
                                     "token_id" (m,) and "L{layer}.indices"/".values" (m, K)
    manifest.json              the run manifest (manifest.shard-i-of-n.json for --shard runs)

A chunk holds records ``[k * chunk_size, (k + 1) * chunk_size)``. It is written once, atomically, so
its presence means it is complete: a killed run resumes by skipping present chunks, and ``--shard
i/n`` processes (chunks ``k % n == i``) can write into one directory or into several that
:func:`merge_caches` joins. Batching depends only on a chunk's records, so a resumed, sharded or
uninterrupted run produces byte-identical files. A ``tokens/`` chunk is written before the chunk
of the same number, so a present chunk implies its tokens.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
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
TOKEN_DIR = "tokens"


def chunk_name(k: int) -> str:
    return f"chunk-{k:05d}.safetensors"


def tensor_key(layer: int, pool: str) -> str:
    return f"L{layer}.{pool}"


def sae_key(layer: int, name: str) -> str:
    return f"sae.L{layer}.{name}"


@dataclass
class TokenTopK:
    """Top-k latents of every masked token, rows in record order then token position."""

    row: np.ndarray  # (m,) int64 record row
    pos: np.ndarray  # (m,) int32 token position in the model input
    token_id: np.ndarray  # (m,) int32
    indices: np.ndarray  # (m, k) int32 latent ids
    values: np.ndarray  # (m, k) float32

    def feature_tokens(self, row: int, feature: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions, token ids and the activation of ``feature`` on every masked token of
        ``row`` (0 where the feature is not in the token's top-k)."""
        sel = np.flatnonzero(self.row == row)
        hit = self.indices[sel] == feature  # (n, k)
        acts = np.where(hit, self.values[sel], 0.0).sum(axis=1)
        return self.pos[sel], self.token_id[sel], acts.astype(np.float32)


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


def chunk_number(file: Path) -> int | None:
    """``k`` of ``chunk-0000k.safetensors`` (None for any other name)."""
    m = re.fullmatch(r"chunk-(\d+)\.safetensors", file.name)
    return int(m.group(1)) if m else None


def chunk_fingerprint(file: Path) -> str | None:
    """The fingerprint stored in a chunk's header (None if unreadable: treat as missing)."""
    try:
        with safe_open(str(file), framework="np") as f:
            return json.loads((f.metadata() or {})["afscope"]).get("fingerprint")
    except Exception:  # noqa: BLE001 - any unreadable chunk is redone, never trusted
        return None


def save_chunk(path: Path, k: int, tensors: dict[str, np.ndarray], fingerprint: str,
               subdir: str = CHUNK_DIR) -> Path:
    """Write chunk ``k`` atomically. The header metadata is one key (safetensors does not keep the
    order of several), so identical chunks are identical bytes."""
    from safetensors.numpy import save_file

    target = path / subdir / chunk_name(k)
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

    def chunk_files(self, subdir: str = CHUNK_DIR) -> list[Path]:
        return [self.path / subdir / chunk_name(k) for k in range(self.index["n_chunks"])]

    def missing_chunks(self) -> list[int]:
        files = zip(self.chunk_files(), self.chunk_files(TOKEN_DIR))
        return [k for k, (f, t) in enumerate(files)
                if chunk_fingerprint(f) != self.fingerprint
                or (self.token_k and chunk_fingerprint(t) != self.fingerprint)]

    @property
    def sae_layers(self) -> list[int]:
        """Layers with sparse latents (``extract --sae``)."""
        return sorted(int(k) for k in self.index.get("latents", {}))

    @property
    def token_k(self) -> int:
        return int(self.index.get("token_topk", 0))

    def sae_width(self, layer: int) -> int:
        self._check_sae_layer(layer)
        return int(self.index["latents"][str(layer)]["width"])

    def _check_sae_layer(self, layer: int) -> None:
        if layer not in self.sae_layers:
            raise ArtifactError(f"{self.path}: no SAE latents for layer {layer}; cache has them "
                                f"for layers {self.sae_layers} (extract with --sae)")

    def _read_csr(self, layer: int, values: str) -> Any:
        from scipy import sparse

        width = self.sae_width(layer)
        self.check_complete()
        blocks = []
        for f in self.chunk_files():
            with safe_open(str(f), framework="np") as fh:
                indptr = fh.get_tensor(sae_key(layer, "indptr"))
                blocks.append(sparse.csr_matrix(
                    (fh.get_tensor(sae_key(layer, values)), fh.get_tensor(sae_key(layer, "indices")),
                     indptr), shape=(len(indptr) - 1, width)))
        return sparse.vstack(blocks, format="csr")

    def sae_features(self, layer: int, stat: str = "max") -> Any:
        """Per-sample latent ``stat`` (max or mean over masked tokens) as a
        ``scipy.sparse.csr_matrix (n_records, d_sae)`` float32."""
        if stat not in ("max", "mean"):
            raise ArtifactError(f"SAE statistic must be 'max' or 'mean', got {stat!r}")
        return self._read_csr(layer, stat)

    def sae_argmax(self, layer: int) -> Any:
        """Token position of each latent's max, with the sparsity pattern of ``sae_features``."""
        return self._read_csr(layer, "argmax")

    def token_topk(self, layer: int) -> TokenTopK | None:
        """Per-token top-k latents at ``layer`` (None when extracted without --token-topk)."""
        self._check_sae_layer(layer)
        if not self.token_k:
            return None
        self.check_complete()
        cols: dict[str, list[np.ndarray]] = {}
        names = {"row": "row", "pos": "pos", "token_id": "token_id",
                 "indices": f"L{layer}.indices", "values": f"L{layer}.values"}
        for f in self.chunk_files(TOKEN_DIR):
            with safe_open(str(f), framework="np") as fh:
                for name, key in names.items():
                    cols.setdefault(name, []).append(fh.get_tensor(key))
        return TokenTopK(**{n: np.concatenate(v) for n, v in cols.items()})

    def feature_space(self, layer: int, kind: str) -> dict[str, Any]:
        """Identity of a feature matrix from this cache, ``kind`` = "resid.<pool>" or
        "sae.<stat>": probes record it and refuse matrices from another space."""
        fields = self.index.get("fingerprint_fields", {})
        space: dict[str, Any] = {"model": fields.get("model"), "layer": layer, "kind": kind,
                                 "mask": fields.get("mask"), "skip_first": fields.get("skip_first"),
                                 "max_length": fields.get("max_length")}
        if kind.startswith("sae."):
            latents = self.index["latents"][str(layer)] if layer in self.sae_layers else {}
            space.update(sae=latents.get("sha256"), n_features=latents.get("width"))
        else:
            space["n_features"] = self.d_model
        return space

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
    """Join caches written by ``--shard i/n`` runs into ``out`` (all must share one fingerprint).

    ``out`` may be one of the sources (shards that wrote into one directory): its chunks stay
    where they are. Fails (:class:`ArtifactError`) unless the result has every chunk.
    """
    if not sources:
        raise ArtifactError("merge needs at least one source cache")
    out = Path(out)
    indexes = [read_index(s) for s in sources]
    prints = {i["fingerprint"] for i in indexes}
    if len(prints) != 1:
        raise ArtifactError("cannot merge caches made from different configs: "
                            + ", ".join(f"{s} ({i['fingerprint'][:12]})"
                                        for s, i in zip(sources, indexes)))
    if (out / INDEX).exists() and read_index(out)["fingerprint"] not in prints:
        raise ArtifactError(f"{out}: holds a cache made from another config than the sources; "
                            "merge into a new directory")
    (out / CHUNK_DIR).mkdir(parents=True, exist_ok=True)
    write_index(out, indexes[0])
    if not _same_dir(sources[0], out):
        with atomic_path(out / RECORDS) as tmp:
            shutil.copyfile(Path(sources[0]) / RECORDS, tmp)
    fingerprint = indexes[0]["fingerprint"]
    (out / TOKEN_DIR).mkdir(exist_ok=True)
    for src in (s for s in sources if not _same_dir(s, out)):
        for sub in (TOKEN_DIR, CHUNK_DIR):  # tokens first, as extract writes them
            for f in sorted((Path(src) / sub).glob("chunk-*.safetensors")):
                dst = out / sub / f.name
                if chunk_fingerprint(f) == fingerprint and chunk_fingerprint(dst) != fingerprint:
                    with atomic_path(dst) as tmp:
                        shutil.copyfile(f, tmp)
    ActivationCache(out).check_complete()
    return out


def _same_dir(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()
