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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from afscope.data.dataset import Dataset
from afscope.data.load import load_dataset
from afscope.errors import ArtifactError
from afscope.extract import store
from afscope.extract.config import ExtractConfig
from afscope.extract.pooling import pool
from afscope.fileio import sha256_json
from afscope.models import LoadedModel, MaskSpec, load_model, record_residual, resolve_layers
from afscope.models.masks import token_mask
from afscope.progress import progress_bar
from afscope.runs import start_run

log = logging.getLogger(__name__)


@dataclass
class _Encoded:
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


def _encode(tokenizer: Any, records: list[Any], max_length: int) -> _Encoded:
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
    return _Encoded(ids, starts, truncated)


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


def _check_existing(out: Path, fields: dict[str, Any], fingerprint: str, overwrite: bool) -> None:
    if not (out / store.INDEX).exists():
        return
    old = store.read_index(out)
    if old["fingerprint"] == fingerprint:
        return
    if overwrite:
        for f in (out / store.CHUNK_DIR).glob("chunk-*.safetensors"):
            f.unlink()
        return
    changed = sorted(k for k in fields if old.get("fingerprint_fields", {}).get(k) != fields[k])
    raise ArtifactError(f"{out}: holds a cache made from a different config (differs in: "
                        f"{', '.join(changed) or 'unknown fields'}); use another --out or "
                        "--overwrite")


@torch.inference_mode()
def _run_chunk(lm: LoadedModel, records: list[Any], cfg: ExtractConfig, layers: list[int],
               spec: MaskSpec, on_rows: Any) -> tuple[dict[str, np.ndarray], int]:
    enc = _encode(lm.tokenizer, records, cfg.max_length)
    if enc.truncated:
        log.warning("%d records truncated to %d tokens", enc.truncated, cfg.max_length)
    n, d = len(records), lm.info.d_model
    out = {store.tensor_key(layer, p): np.empty((n, d), np.float32)
           for layer in layers for p in cfg.pool}
    lengths = [len(x) for x in enc.ids]
    pad_id = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    device = lm.model.device
    for batch in plan_batches(lengths, cfg.batch_tokens):
        t = max(lengths[i] for i in batch)
        ids = torch.full((len(batch), t), pad_id, dtype=torch.long)
        am = torch.zeros((len(batch), t), dtype=torch.long)
        for row, i in enumerate(batch):  # right padding: positions 0..len-1 are real tokens
            ids[row, : lengths[i]] = torch.tensor(enc.ids[i])
            am[row, : lengths[i]] = 1
        starts = torch.tensor([enc.response_start[i] for i in batch])
        mask = token_mask(am, spec, starts if spec.kind == "response" else None,
                          skip_first=cfg.skip_first)
        with record_residual(lm.model, layers, stop=True) as acts:
            lm.model(input_ids=ids.to(device), attention_mask=am.to(device), use_cache=False)
        for layer in layers:
            try:
                pooled = pool(acts[layer], mask.to(device), list(cfg.pool))
            except ArtifactError as e:
                raise ArtifactError(f"{e}: records {[records[i].id for i in batch][:5]}") from None
            for p, v in pooled.items():
                arr = v.cpu().numpy()
                if not np.isfinite(arr).all():
                    bad = [records[batch[r]].id for r in np.where(~np.isfinite(arr).all(1))[0]]
                    raise ArtifactError(f"non-finite activations at layer {layer} for records "
                                        f"{bad[:5]} (dtype {cfg.dtype}; try float32)")
                out[store.tensor_key(layer, p)][batch] = arr
        on_rows(len(batch))
    out["n_tokens"] = np.asarray(lengths, dtype=np.int64)
    return out, sum(lengths)


def extract(cfg: ExtractConfig, *, lm: LoadedModel | None = None,
            dataset: Dataset | None = None) -> store.ActivationCache | None:
    """Build (or resume) the cache at ``cfg.out``; returns it when all chunks are present.

    ``lm`` / ``dataset`` may be passed to reuse objects already in memory (the demo does).
    """
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    shard_i, shard_n = cfg.shard_index
    manifest = "manifest.json" if cfg.shard is None else f"manifest.shard-{shard_i}-of-{shard_n}.json"
    with start_run("extract", cfg.to_dict(), out, manifest_name=manifest) as run:
        with run.timer("load_data"):
            dataset = dataset or load_dataset(cfg.data, label_map=cfg.label_map)
        run.add_dataset("data", dataset.info())
        with run.timer("load_model"):
            lm = lm or load_model(cfg.model, dtype=cfg.dtype, device=cfg.device)
        run.add_model("model", lm.info.to_dict())
        layers = resolve_layers(cfg.layers, lm.info.n_layers)
        spec = MaskSpec.parse(cfg.mask)
        if spec.kind == "response" and not any(r.prompt for r in dataset.records):
            log.warning("mask 'response' but no record has a prompt: pooling over all tokens")
        fields = _fingerprint_fields(cfg, lm, layers, dataset)
        fingerprint = sha256_json(fields)
        _check_existing(out, fields, fingerprint, cfg.overwrite)
        n = len(dataset)
        n_chunks = (n + cfg.chunk_size - 1) // cfg.chunk_size
        store.write_index(out, {
            "kind": store.KIND, "format_version": store.FORMAT_VERSION,
            "fingerprint": fingerprint, "fingerprint_fields": fields, "model": lm.info.name,
            "layers": layers, "pools": list(cfg.pool), "mask": cfg.mask,
            "d_model": lm.info.d_model, "n_records": n, "chunk_size": cfg.chunk_size,
            "n_chunks": n_chunks})
        store.write_records(out, ({"row": i, "id": r.id, "category": r.category, "label": r.label}
                                  for i, r in enumerate(dataset.records)))
        mine = [k for k in range(n_chunks) if k % shard_n == shard_i]
        todo = [k for k in mine if store.chunk_fingerprint(
            out / store.CHUNK_DIR / store.chunk_name(k)) != fingerprint]
        if len(todo) < len(mine):
            log.info("resuming: %d of %d chunks already done", len(mine) - len(todo), len(mine))
        tokens, t0 = 0, time.perf_counter()
        with run.timer("extract"), progress_bar() as bar:
            task = bar.add_task(f"extract {lm.info.name}", total=sum(
                min(cfg.chunk_size, n - k * cfg.chunk_size) for k in todo))
            for k in todo:
                lo, hi = k * cfg.chunk_size, min(n, (k + 1) * cfg.chunk_size)
                tensors, n_tok = _run_chunk(lm, dataset.records[lo:hi], cfg, layers, spec,
                                            lambda m: bar.advance(task, m))
                tensors["row"] = np.arange(lo, hi, dtype=np.int64)
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
