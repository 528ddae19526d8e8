"""``afscope extract``: run a model over a dataset and cache pooled residual activations.

Why it is fast (see ``benchmarks/bench_extract.py``): records are tokenized once per chunk and
sorted by length so batches carry little padding (length bucketing), batches are filled to a token
budget, the forward pass runs under ``inference_mode`` and stops after the deepest requested block
(the LM head, often the largest matmul, never runs), and only pooled ``(B, D)`` rows leave a batch,
so per-token activations are never all held in memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from afscope.data.dataset import Dataset
from afscope.data.load import load_dataset
from afscope.errors import ArtifactError, ConfigError
from afscope.extract import store
from afscope.extract.config import ExtractConfig
from afscope.extract.latents import LatentEncoder, SampleLatents, encode_batch, pack_csr
from afscope.extract.pooling import pool
from afscope.fileio import sha256_json
from afscope.models import (
    LoadedModel,
    MaskSpec,
    load_model,
    record_residual,
    resolve_layers,
)
from afscope.models.masks import token_mask
from afscope.progress import progress_bar
from afscope.runs import Run, manifest_name, shard_manifests, start_merged_run, start_run

log = logging.getLogger(__name__)


@dataclass
class Encoded:
    """Token ids of each record's model input, where its ``text`` starts, and how many records
    were cut at ``max_length``."""

    ids: list[list[int]]
    response_start: list[int]
    truncated: int


PROMPT_SEPARATOR = "\n\n"


def _model_input(record: Any) -> tuple[str, int]:
    """The text the model reads (``prompt``, a blank line, ``text``) and where ``text`` starts."""
    if not record.prompt:
        return record.text, 0
    head = record.prompt + PROMPT_SEPARATOR
    return head + record.text, len(head)


def encode_records(tokenizer: Any, records: list[Any], max_length: int) -> Encoded:
    """Tokenize each record's model input; ``response_start`` is the first token of ``text``.

    Offsets (fast tokenizers only) are needed just when some record has a prompt.
    """
    inputs = [_model_input(r) for r in records]
    texts = [t for t, _ in inputs]
    with_prompt = any(r.prompt for r in records)
    enc = tokenizer(texts, add_special_tokens=True, return_offsets_mapping=with_prompt)
    offsets_all = enc["offset_mapping"] if with_prompt else [None] * len(texts)
    ids, starts, truncated = [], [], 0
    for (_, cut), row, offsets in zip(inputs, enc["input_ids"], offsets_all):
        start = 0 if not cut else next(
            (j for j, (a, b) in enumerate(offsets) if b > a and a >= cut), len(row))
        if len(row) > max_length:
            truncated += 1
            row = row[:max_length]
        ids.append(list(row))
        starts.append(min(start, len(row) - 1))
    return Encoded(ids, starts, truncated)


def plan_batches(lengths: list[int], batch_tokens: int) -> list[list[int]]:
    """Group row indices into batches of similar length whose padded size fits ``batch_tokens``.

    Longest first (so a too-long row fails at once, not at the end); ties broken by index so the
    plan is a pure function of the lengths.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        if current and (len(current) + 1) * longest > batch_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def _fingerprint_fields(cfg: ExtractConfig, lm: LoadedModel, layers: list[int],
                        dataset: Dataset) -> dict[str, Any]:
    return {
        "model": lm.info.fingerprint, "model_name": lm.info.name, "layers": layers,
        "pools": list(cfg.pool), "mask": cfg.mask, "skip_first": cfg.skip_first,
        "prompt_separator": PROMPT_SEPARATOR,
        "max_length": cfg.max_length,
        "batch_tokens": cfg.batch_tokens, "chunk_size": cfg.chunk_size, "dtype": cfg.dtype,
        "dataset": dataset.content_hash, "format_version": store.FORMAT_VERSION,
    }


def _check_encoders(encoders: list[LatentEncoder], layers: list[int], lm: LoadedModel) -> None:
    seen: set[int] = set()
    for e in encoders:
        where = getattr(e, "source", f"encoder for layer {e.layer}")
        if e.layer not in layers:
            raise ConfigError(f"{where}: SAE for layer {e.layer}, but --layers resolves to "
                              f"{layers}; add {e.layer} to --layers")
        if e.layer in seen:
            raise ConfigError(f"{where}: a second SAE for layer {e.layer}; give one per layer")
        seen.add(e.layer)
        if e.d_in != lm.info.d_model:
            raise ArtifactError(f"{where}: SAE d_in={e.d_in} does not match d_model="
                                f"{lm.info.d_model} of model {lm.info.name}")


def _check_existing(out: Path, fields: dict[str, Any], fingerprint: str, overwrite: bool,
                    shard: tuple[int, int]) -> None:
    """Refuse a cache of another config in ``out``; with ``overwrite``, delete its chunks.

    Only the chunks of this shard (``k % n == i``) whose fingerprint is not ours are deleted, so
    the processes of a sharded run, which share ``out``, never delete each other's new chunks.
    """
    old = store.read_index(out) if (out / store.INDEX).exists() else None
    if old is not None and old["fingerprint"] != fingerprint and not overwrite:
        changed = sorted(k for k in fields
                         if old.get("fingerprint_fields", {}).get(k) != fields[k])
        raise ArtifactError(f"{out}: holds a cache made from a different config (differs in: "
                            f"{', '.join(changed) or 'unknown fields'}); use another --out or "
                            "--overwrite")
    if overwrite:
        i, n = shard
        for sub in (store.CHUNK_DIR, store.TOKEN_DIR):
            for f in (out / sub).glob("chunk-*.safetensors"):
                k = store.chunk_number(f)
                if k is not None and k % n == i and store.chunk_fingerprint(f) != fingerprint:
                    f.unlink(missing_ok=True)


@dataclass
class Batch:
    """One padded forward pass: ``rows`` index the records given to :func:`iter_batches`."""

    rows: list[int]
    input_ids: torch.Tensor  # (B, T) long, right-padded, on the model's input device
    mask: torch.Tensor  # (B, T) bool, the tokens to pool (same device)
    lengths: list[int]  # real (unpadded) tokens per row
    acts: dict[int, torch.Tensor]  # layer -> (B, T, D) residual stream after that block


@torch.inference_mode()
def iter_batches(lm: LoadedModel, records: list[Any], layers: list[int], spec: MaskSpec, *,
                 max_length: int, batch_tokens: int, skip_first: int = 0) -> Iterator[Batch]:
    """Run ``lm`` over ``records`` in length-bucketed batches and yield residual activations.

    The forward pass stops after the deepest of ``layers``. Shared by :func:`extract` (pooled
    rows) and :func:`collect_tokens` (per-token rows for SAE training).
    """
    enc = encode_records(lm.tokenizer, records, max_length)
    if enc.truncated:
        log.warning("%d records truncated to %d tokens", enc.truncated, max_length)
    lengths = [len(x) for x in enc.ids]
    pad_id = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    device = lm.model.device
    for batch in plan_batches(lengths, batch_tokens):
        t = max(lengths[i] for i in batch)
        ids = torch.full((len(batch), t), pad_id, dtype=torch.long)
        am = torch.zeros((len(batch), t), dtype=torch.long)
        for row, i in enumerate(batch):  # right padding: positions 0..len-1 are real tokens
            ids[row, : lengths[i]] = torch.tensor(enc.ids[i])
            am[row, : lengths[i]] = 1
        starts = torch.tensor([enc.response_start[i] for i in batch])
        mask = token_mask(am, spec, starts if spec.kind == "response" else None,
                          skip_first=skip_first)
        if not bool(mask.any(dim=1).all()):
            empty = [records[batch[r]].id for r in (~mask.any(dim=1)).nonzero()[:, 0].tolist()]
            raise ArtifactError(f"records {empty[:5]}: no tokens under the token mask "
                                f"{spec.kind!r} (empty response, or all skipped by --skip-first)")
        ids = ids.to(device)
        with record_residual(lm.model, layers, stop=True) as acts:
            lm.model(input_ids=ids, attention_mask=am.to(device), use_cache=False)
        # one device for everything a batch yields: blocks of a sharded model (device_map) may
        # sit on other GPUs than the inputs (a no-op on one device)
        yield Batch(rows=batch, input_ids=ids, mask=mask.to(device),
                    lengths=[lengths[i] for i in batch],
                    acts={k: v.to(device) for k, v in acts.items()})


def _run_chunk(lm: LoadedModel, records: list[Any], cfg: ExtractConfig, layers: list[int],
               spec: MaskSpec, encoders: list[LatentEncoder], on_rows: Any
               ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None, int]:
    """Pooled tensors of one chunk (and its per-token top-k latents when asked)."""
    n, d = len(records), lm.info.d_model
    out = {store.tensor_key(layer, p): np.empty((n, d), np.float32)
           for layer in layers for p in cfg.pool}
    lengths = np.zeros(n, dtype=np.int64)
    sparse: dict[int, list[SampleLatents | None]] = {e.layer: [None] * n for e in encoders}
    token_parts: list[dict[str, np.ndarray]] = []
    for b in iter_batches(lm, records, layers, spec, max_length=cfg.max_length,
                          batch_tokens=cfg.batch_tokens, skip_first=cfg.skip_first):
        lengths[b.rows] = b.lengths
        for layer in layers:
            for p, v in pool(b.acts[layer], b.mask, list(cfg.pool)).items():
                arr = v.cpu().numpy()
                if not np.isfinite(arr).all():
                    bad = [records[b.rows[r]].id for r in np.where(~np.isfinite(arr).all(1))[0]]
                    raise ArtifactError(f"non-finite activations at layer {layer} for records "
                                        f"{bad[:5]} (dtype {cfg.dtype}; try float32)")
                out[store.tensor_key(layer, p)][b.rows] = arr
        tok_cols: dict[str, np.ndarray] = {}
        for e in encoders:
            samples, tokens = encode_batch(e, b.acts[e.layer], b.mask, b.input_ids,
                                           cfg.token_topk)
            for r, s in zip(b.rows, samples):
                sparse[e.layer][r] = s
            if tokens is not None:
                tok_cols.update({"row": np.asarray(b.rows, np.int64)[tokens.row],
                                 "pos": tokens.pos, "token_id": tokens.token_id,
                                 f"L{e.layer}.indices": tokens.indices,
                                 f"L{e.layer}.values": tokens.values})
        if tok_cols:
            token_parts.append(tok_cols)
        on_rows(len(b.rows))
    out["n_tokens"] = lengths
    for layer, samples in sparse.items():
        for name, arr in pack_csr(samples).items():  # type: ignore[arg-type]
            out[store.sae_key(layer, name)] = arr
    tokens = None
    if token_parts:
        tokens = {k: np.concatenate([p[k] for p in token_parts]) for k in token_parts[0]}
        order = np.lexsort((tokens["pos"], tokens["row"]))  # by record, then position
        tokens = {k: v[order] for k, v in tokens.items()}
    return out, tokens, int(lengths.sum())


def load_inputs(run: Run, cfg: Any, *, lm: LoadedModel | None = None,
                dataset: Dataset | None = None) -> tuple[LoadedModel, Dataset]:
    """Load ``cfg.data`` and ``cfg.model`` unless given, timed and recorded in ``run``'s manifest.

    ``cfg`` needs ``data``, ``label_map``, ``model``, ``dtype`` and ``device`` (an
    :class:`ExtractConfig` or an :class:`~afscope.sae.SAETrainConfig`).
    """
    with run.timer("load_data"):
        if dataset is None:
            dataset = load_dataset(cfg.data, label_map=cfg.label_map)
    run.add_dataset("data", dataset.info())
    with run.timer("load_model"):
        if lm is None:
            lm = load_model(cfg.model, dtype=cfg.dtype, device=cfg.device)
    run.add_model("model", lm.info.to_dict())
    return lm, dataset


def extract(cfg: ExtractConfig, *, lm: LoadedModel | None = None,
            dataset: Dataset | None = None,
            encoders: Sequence[LatentEncoder] | None = None) -> store.ActivationCache | None:
    """Build (or resume) the cache at ``cfg.out``; returns it when all chunks are present.

    ``lm`` / ``dataset`` may be passed to reuse objects already in memory (the demo does).
    ``encoders`` (one per layer, e.g. :func:`afscope.sae.sae_encoder`) add sparse latents; with
    ``cfg.sae`` set use :func:`afscope.sae.extract_with_sae`, which loads them for you.
    """
    encoders = list(encoders or [])
    if cfg.sae and not encoders:
        raise ConfigError("field 'sae': extract() does not load SAEs itself; call "
                          "afscope.sae.extract_with_sae(cfg) (or `afscope extract --sae DIR`)")
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    shard_i, shard_n = cfg.shard_index
    manifest = manifest_name(None if cfg.shard is None else (shard_i, shard_n))
    with start_run("extract", cfg.to_dict(), out, manifest_name=manifest) as run:
        lm, dataset = load_inputs(run, cfg, lm=lm, dataset=dataset)
        layers = resolve_layers(cfg.layers, lm.info.n_layers)
        spec = MaskSpec.parse(cfg.mask)
        if spec.kind == "response" and not any(r.prompt for r in dataset.records):
            log.warning("mask 'response' but no record has a prompt: pooling over all tokens")
        _check_encoders(encoders, layers, lm)
        fields = _fingerprint_fields(cfg, lm, layers, dataset)
        fields["latents"] = {str(e.layer): e.identity() for e in encoders}
        fields["token_topk"] = cfg.token_topk if encoders else 0
        fingerprint = sha256_json(fields)
        _check_existing(out, fields, fingerprint, cfg.overwrite, (shard_i, shard_n))
        n = len(dataset)
        n_chunks = (n + cfg.chunk_size - 1) // cfg.chunk_size
        store.write_index(out, {
            "kind": store.KIND, "format_version": store.FORMAT_VERSION,
            "fingerprint": fingerprint, "fingerprint_fields": fields, "model": lm.info.name,
            "layers": layers, "pools": list(cfg.pool), "mask": cfg.mask,
            "d_model": lm.info.d_model, "n_records": n, "chunk_size": cfg.chunk_size,
            "n_chunks": n_chunks,
            "latents": {str(e.layer): {"width": e.width, **e.identity()} for e in encoders},
            "token_topk": cfg.token_topk if encoders else 0})
        store.write_records(out, ({"row": i, "id": r.id, "category": r.category, "label": r.label}
                                  for i, r in enumerate(dataset.records)))
        mine = [k for k in range(n_chunks) if k % shard_n == shard_i]
        with_tokens = bool(encoders) and cfg.token_topk > 0
        todo = [k for k in mine if any(
            store.chunk_fingerprint(out / sub / store.chunk_name(k)) != fingerprint
            for sub in (store.CHUNK_DIR, store.TOKEN_DIR)[: 1 + with_tokens])]
        if len(todo) < len(mine):
            log.info("resuming: %d of %d chunks already done", len(mine) - len(todo), len(mine))
        tokens, t0 = 0, time.perf_counter()
        with run.timer("extract"), progress_bar() as bar:
            task = bar.add_task(f"extract {lm.info.name}", total=sum(
                min(cfg.chunk_size, n - k * cfg.chunk_size) for k in todo))
            for k in todo:
                lo, hi = k * cfg.chunk_size, min(n, (k + 1) * cfg.chunk_size)
                tensors, token_rows, n_tok = _run_chunk(
                    lm, dataset.records[lo:hi], cfg, layers, spec, encoders,
                    lambda m: bar.advance(task, m))
                tensors["row"] = np.arange(lo, hi, dtype=np.int64)
                if token_rows is not None:  # before the chunk: a present chunk implies its tokens
                    token_rows["row"] += lo
                    store.save_chunk(out, k, token_rows, fingerprint, subdir=store.TOKEN_DIR)
                store.save_chunk(out, k, tensors, fingerprint)
                tokens += n_tok
        elapsed = time.perf_counter() - t0
        run.add_output("chunks_written", len(todo))
        run.add_output("tokens", tokens)
        run.add_output("tokens_per_s", round(tokens / elapsed, 1) if elapsed > 0 else None)
        run.add_output("layers", layers)
        cache = store.ActivationCache(out)
        complete = not cache.missing_chunks()
        run.add_output("complete", complete)
    return cache if complete else None


def merge_shards(sources: Sequence[str | Path], out: str | Path, *,
                 config: dict[str, Any] | None = None,
                 count: int | None = None) -> store.ActivationCache:
    """The merge step of a sharded extract: one complete cache in ``out``, with its manifest.

    ``sources`` are the cache directories the shards wrote (``--shard i/n``, torchrun ranks or
    Slurm array tasks); a source that is ``out`` itself (shards that shared one directory) is
    merged in place, without copying. The chunks are joined by :func:`store.merge_caches`, which
    fails unless every chunk is present, and ``out/manifest.json`` records the shard manifests
    (of ``count`` shards when given; ``config`` defaults to the first shard's, without its
    shard). Chunk, token, index and records files are exactly those a single process writes.
    """
    out = Path(out)
    cache = store.ActivationCache(store.merge_caches(list(sources), out))
    shards = shard_manifests(*sources, out, count=count)
    if not shards and config is None:  # caches of unsharded runs: their manifests stay as they are
        return cache
    with start_merged_run("extract", out, shards, config) as run:
        total = {k: sum(int((m.get("outputs") or {}).get(k) or 0) for m in shards.values())
                 for k in ("chunks_written", "tokens")}
        for k, v in total.items():
            run.add_output(k, v)
        run.add_output("layers", cache.layers)
        run.add_output("complete", True)
    return cache


def collect_tokens(lm: LoadedModel, dataset: Dataset, layer: int | float, *, mask: str = "all",
                   skip_first: int = 1, max_length: int = 512, batch_tokens: int = 2048,
                   max_tokens: int = 200_000, seed: int = 0) -> np.ndarray:
    """Per-token residual activations ``(N, d_model)`` float32 at one layer, to train an SAE on.

    Records are visited in a seeded random order and all their masked tokens kept until
    ``max_tokens``, so a capped run still sees many records rather than the first few. The first
    ``skip_first`` tokens (the attention sink, whose norm dwarfs the rest) are left out by default.
    """
    (resolved,) = resolve_layers([layer], lm.info.n_layers)
    spec = MaskSpec.parse(mask)
    order = np.random.default_rng(seed).permutation(len(dataset))
    parts: list[np.ndarray] = []
    total = 0
    step = 256
    with progress_bar() as bar:
        task = bar.add_task(f"collect tokens L{resolved}", total=max_tokens)
        for lo in range(0, len(order), step):
            records = [dataset.records[i] for i in order[lo:lo + step]]
            for b in iter_batches(lm, records, [resolved], spec, max_length=max_length,
                                  batch_tokens=batch_tokens, skip_first=skip_first):
                h = b.acts[resolved][b.mask].float().cpu().numpy()  # (N_masked, D)
                if not np.isfinite(h).all():
                    raise ArtifactError(f"non-finite activations at layer {resolved}")
                parts.append(h[: max_tokens - total])
                total += len(parts[-1])
                bar.update(task, completed=total)
                if total >= max_tokens:
                    return np.concatenate(parts)
    if not parts:
        raise ArtifactError(f"dataset {dataset.name}: no tokens to collect")
    return np.concatenate(parts)
