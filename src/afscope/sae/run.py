"""``afscope sae train``: collect one layer's tokens from a model, train a TopK SAE, save it.

The records are split into train and held-out *before* any token is collected, so the held-out
tokens come from texts the SAE never saw (tokens of one text are correlated: a split by token
would leak). The split is :func:`afscope.data.split.stratified_split` by category, seeded, and
independent of file order.

**Token blocks.** Each part (train, then held-out) reads its records in a seeded order,
``block_records`` at a time; block ``k``'s masked tokens are written, atomically, to
``OUT/tokens/<part>-0000k.safetensors``, whose header holds a fingerprint of everything that makes
the activations (model, data, layer, mask, lengths, batch budget, dtype, seed, held-out fraction).
A part's tokens are its blocks in order, cut at its cap (``max_tokens``, and ``heldout_fraction x
max_tokens`` held out), so they do not depend on which process made which block:

- One process reads the blocks already there, makes the others in order until the cap, trains,
  and then deletes ``OUT/tokens`` (``keep_tokens`` keeps it). A run that died resumes from its
  blocks.
- Shard ``i/n`` (``--shard``, torchrun / accelerate ranks, Slurm array tasks) counts the masked
  tokens of each block from the tokenizer alone, which fixes the blocks the caps need; it makes
  jobs ``i, i+n, ...`` of them (train blocks first, then held-out) and stops, with no SAE. The
  run as one process (rank 0 after the barrier, or the same command after the array) then reads
  them, makes any that are missing, and trains: the SAE one process would have trained, byte for
  byte.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from afscope.data.dataset import Dataset
from afscope.data.split import stratified_split
from afscope.distributed import parse_shard
from afscope.errors import ArtifactError, ConfigError
from afscope.extract.runner import PROMPT_SEPARATOR, iter_batches, load_inputs
from afscope.fileio import atomic_write_bytes, atomic_write_json, sha256_json
from afscope.models import LoadedModel, MaskSpec, resolve_layers, token_mask
from afscope.progress import progress_bar
from afscope.runs import manifest_name, start_run
from afscope.sae.io import save_sae
from afscope.sae.train import train_sae

log = logging.getLogger(__name__)

SAE_SUBDIR = "sae"
METRICS_FILE = "metrics.json"
TOKEN_DIR = "tokens"
BLOCK_FORMAT = 1


@dataclass(frozen=True)
class TokenPart:
    """One side of the split: its records in collection order (seeded), its token cap, and the
    records per block (each block is run through the model on its own)."""

    name: str
    records: list[Any]
    max_tokens: int
    block_records: int

    def blocks(self) -> list[list[Any]]:
        n = self.block_records
        return [self.records[lo:lo + n] for lo in range(0, len(self.records), n)]


def split_records(dataset: Dataset, heldout_fraction: float, seed: int
                  ) -> tuple[Dataset, Dataset | None]:
    """Train and held-out records (whole texts), stratified by category and seeded.

    Returns ``(train, None)`` when the dataset is too small for a held-out record, in which case
    :func:`~afscope.sae.train_sae` holds out the last rows of the training tokens instead.
    """
    parts = stratified_split(dataset, {"train": 1 - heldout_fraction, "heldout": heldout_fraction},
                             seed=seed, stratify_by="category")
    if len(parts["heldout"]) == 0 or len(parts["train"]) == 0:
        return dataset, None
    return parts["train"], parts["heldout"]


def token_parts(dataset: Dataset, cfg: Any) -> list[TokenPart]:
    """``[train]`` or ``[train, heldout]``: the records of each in the seeded order of
    :func:`~afscope.extract.runner.collect_tokens`, with their caps (``cfg.max_tokens``, and
    ``heldout_fraction x max_tokens``, at least 1, held out). With the default 256 records a
    block, the blocks hold exactly the tokens ``collect_tokens`` collects (it runs the model over
    256 records at a time)."""
    train_ds, heldout_ds = split_records(dataset, cfg.heldout_fraction, cfg.seed)

    def ordered(ds: Dataset) -> list[Any]:
        return [ds.records[i] for i in np.random.default_rng(cfg.seed).permutation(len(ds))]

    parts = [TokenPart("train", ordered(train_ds), cfg.max_tokens, cfg.block_records)]
    if heldout_ds is not None:
        parts.append(TokenPart("heldout", ordered(heldout_ds),
                               max(1, int(cfg.max_tokens * cfg.heldout_fraction)),
                               cfg.block_records))
    return parts


def token_fields(cfg: Any, lm: LoadedModel, dataset: Dataset, layer: int) -> dict[str, Any]:
    """Everything the activations of a block depend on (not ``max_tokens``: a cap only decides
    how many blocks are read, so blocks serve a run with another cap or other SAE settings)."""
    return {"format_version": BLOCK_FORMAT, "model": lm.info.fingerprint,
            "model_name": lm.info.name, "dataset": dataset.content_hash, "layer": layer,
            "mask": cfg.mask, "skip_first": cfg.skip_first, "max_length": cfg.max_length,
            "batch_tokens": cfg.batch_tokens, "dtype": cfg.dtype, "seed": cfg.seed,
            "heldout_fraction": cfg.heldout_fraction, "block_records": cfg.block_records,
            "prompt_separator": PROMPT_SEPARATOR}


@dataclass
class TokenBlocks:
    """The block files of one run (``folder`` None: blocks stay in memory) and what was done."""

    lm: LoadedModel
    layer: int
    cfg: Any
    folder: Path | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    made: int = 0
    read: int = 0
    #: other layers' blocks (their own runs' folders) written from this run's forward passes
    siblings: list[TokenBlocks] = field(default_factory=list)
    prefetched: int = 0

    @property
    def fingerprint(self) -> str:
        return sha256_json(self.fields)

    def path(self, part: str, k: int) -> Path:
        assert self.folder is not None
        return self.folder / f"{part}-{k:05d}.safetensors"

    def check_folder(self) -> None:
        """Refuse blocks of another config in ``folder`` (mixing them would train on tokens of
        two settings), naming the fields that differ."""
        if self.folder is None or not self.folder.is_dir():
            return
        for f in sorted(self.folder.glob("*.safetensors")):
            meta = _block_meta(f)
            if meta is None or meta.get("fingerprint") == self.fingerprint:
                continue  # unreadable blocks are made again
            old = meta.get("fields", {})
            changed = sorted(k for k in self.fields if old.get(k) != self.fields[k])
            raise ArtifactError(
                f"{f}: a token block made with other settings (differs in: "
                f"{', '.join(changed) or 'unknown fields'}); give the settings of the run that "
                f"made it (a GPU run's dtype, say), or delete {self.folder} or use another --out")

    def has(self, part: str, k: int) -> bool:
        """Block ``k`` of ``part`` is on disk, readable, and of these settings."""
        if self.folder is None:
            return False
        meta = _block_meta(self.path(part, k))
        return meta is not None and meta.get("fingerprint") == self.fingerprint

    def get(self, part: TokenPart, k: int, records: list[Any]) -> np.ndarray:
        """Block ``k`` of ``part``, ``(n_tokens, d_model)`` float32: read, or made and written
        (with the same block of every sibling that lacks it, from the same forward pass)."""
        if self.has(part.name, k):
            from safetensors import safe_open

            with safe_open(str(self.path(part.name, k)), framework="np") as f:
                self.read += 1
                return f.get_tensor("acts")
        wanted = [s for s in self.siblings if not s.has(part.name, k)]
        acts = self.make(records, [self.layer, *(s.layer for s in wanted)])
        for s in wanted:
            s.write(part.name, k, records, acts[s.layer])
            self.prefetched += 1
        self.write(part.name, k, records, acts[self.layer])
        self.made += 1
        return acts[self.layer]

    def write(self, part: str, k: int, records: list[Any], acts: np.ndarray) -> None:
        """Save block ``k`` of ``part`` (nothing without a folder)."""
        if self.folder is None:
            return
        from safetensors.numpy import save

        meta = {"fingerprint": self.fingerprint, "fields": self.fields, "part": part,
                "block": k, "records": len(records)}
        # one metadata key: safetensors does not keep the order of several, and identical
        # blocks must be identical bytes whichever process wrote them
        atomic_write_bytes(self.path(part, k), save(
            {"acts": acts}, metadata={"afscope": json.dumps(meta, sort_keys=True)}))

    def make(self, records: list[Any], layers: list[int]) -> dict[int, np.ndarray]:
        """The masked tokens of ``records`` at each of ``layers`` from one pass of the model,
        ``{layer: (n_tokens, d_model)}`` float32, in the order
        :func:`~afscope.extract.runner.iter_batches` yields them."""
        cfg = self.cfg
        parts: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
        for b in iter_batches(self.lm, records, layers, MaskSpec.parse(cfg.mask),
                              max_length=cfg.max_length, batch_tokens=cfg.batch_tokens,
                              skip_first=cfg.skip_first):
            for layer in layers:
                h = b.acts[layer][b.mask].float().cpu().numpy()  # (N_masked, D)
                if not np.isfinite(h).all():
                    raise ArtifactError(f"non-finite activations at layer {layer} "
                                        f"(dtype {cfg.dtype}; try float32)")
                parts[layer].append(h)
        return {layer: np.ascontiguousarray(np.concatenate(p), dtype=np.float32)
                for layer, p in parts.items()}


def _block_meta(path: Path) -> dict[str, Any] | None:
    """A block's header metadata (None when absent or unreadable: it is made again)."""
    if not path.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            return json.loads((f.metadata() or {})["afscope"])
    except Exception:  # noqa: BLE001 - an unreadable block is made again, never trusted
        return None


def collect_part(blocks: TokenBlocks, part: TokenPart, dataset_name: str) -> np.ndarray:
    """The first ``part.max_tokens`` tokens of ``part``'s blocks in order, ``(n, d_model)``."""
    out: list[np.ndarray] = []
    total = 0
    with progress_bar() as bar:
        task = bar.add_task(f"collect {part.name} tokens L{blocks.layer}", total=part.max_tokens)
        for k, records in enumerate(part.blocks()):
            acts = blocks.get(part, k, records)
            out.append(acts[: part.max_tokens - total])
            total += len(out[-1])
            bar.update(task, completed=total)
            if total >= part.max_tokens:
                break
    if total == 0:
        raise ArtifactError(f"dataset {dataset_name}: no tokens to collect")
    return np.concatenate(out)


def needed_blocks(tokenizer: Any, part: TokenPart, cfg: Any) -> int:
    """How many of ``part``'s blocks its cap reads, from the tokenizer alone: the masked tokens
    of a record are what :func:`~afscope.models.masks.token_mask` selects of its (truncated)
    tokens, whatever the batch it is run in."""
    import torch

    from afscope.extract.runner import encode_records

    spec = MaskSpec.parse(cfg.mask)
    total = 0
    for k, records in enumerate(part.blocks()):
        enc = encode_records(tokenizer, records, cfg.max_length)
        lengths = torch.tensor([len(x) for x in enc.ids])
        am = (torch.arange(int(lengths.max()))[None, :] < lengths[:, None]).long()  # (B, T)
        starts = torch.tensor(enc.response_start) if spec.kind == "response" else None
        total += int(token_mask(am, spec, starts, skip_first=cfg.skip_first).sum())
        if total >= part.max_tokens:
            return k + 1
    return len(part.blocks())


def collect_shard(blocks: TokenBlocks, parts: list[TokenPart], shard: tuple[int, int]
                  ) -> dict[str, int]:
    """Make this shard's blocks: jobs ``i, i+n, ...`` of the blocks the caps need (train, then
    held-out), skipping those already on disk. Returns the job counts."""
    i, n = shard
    jobs = [(p, k, recs) for p in parts for k, recs in
            enumerate(p.blocks()[:needed_blocks(blocks.lm.tokenizer, p, blocks.cfg)])]
    mine = jobs[i::n]
    with progress_bar() as bar:
        task = bar.add_task(f"token blocks L{blocks.layer} (shard {i}/{n})", total=len(mine))
        for part, k, records in mine:
            if not blocks.has(part.name, k):
                blocks.get(part, k, records)
            bar.advance(task)
    return {"blocks": len(jobs), "shard_blocks": len(mine), "made": blocks.made,
            "present": len(mine) - blocks.made}


def collect_split_tokens(lm: LoadedModel, dataset: Dataset, layer: int, cfg: Any, *,
                         folder: Path | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-token activations ``(n_train, d), (n_heldout, d)`` of the train and held-out records.

    At most ``cfg.max_tokens`` training tokens and ``heldout_fraction * max_tokens`` held-out ones
    (at least 1); held-out is ``None`` when the dataset has too few records to split. With
    ``folder`` the blocks found there are read and the others written there (see the module
    docstring).
    """
    blocks = TokenBlocks(lm, layer, cfg, folder, token_fields(cfg, lm, dataset, layer))
    blocks.check_folder()
    return _collect(blocks, token_parts(dataset, cfg), dataset)


def _collect(blocks: TokenBlocks, parts: list[TokenPart], dataset: Dataset
             ) -> tuple[np.ndarray, np.ndarray | None]:
    x = collect_part(blocks, parts[0], dataset.name)
    if len(parts) == 1:
        log.warning("dataset %s: too few records for a held-out split; holding out the last "
                    "%.0f%% of the training tokens instead", dataset.name,
                    100 * blocks.cfg.heldout_fraction)
        return x, None
    return x, collect_part(blocks, parts[1], dataset.name)


def run_sae_train(cfg: Any, *, lm: LoadedModel | None = None, dataset: Dataset | None = None,
                  prefetch: Sequence[tuple[int | float, Path]] = ()
                  ) -> tuple[Path, dict[str, Any]] | None:
    """Train and save an SAE per ``cfg`` (:class:`~afscope.sae.SAETrainConfig`).

    Writes ``OUT/sae`` (SAELens folder, ``hook_layer`` set), ``OUT/metrics.json`` (held-out and
    train explained variance, L0 and dead fraction, training tokens/s; see
    :func:`~afscope.sae.train_sae`) and ``OUT/manifest.json``; returns the SAE folder and the
    metrics. With ``cfg.shard`` ``"i/n"`` only that shard's token blocks are written to
    ``OUT/tokens`` (and ``OUT/manifest.shard-i-of-n.json``) and None is returned; the same call
    without the shard then trains.

    ``prefetch``: ``(layer, run folder)`` of SAE runs to come on the same data and token settings
    (a study's other layers). The forward passes that make this run's blocks also write theirs
    to ``<folder>/tokens``, so those runs read their tokens instead of running the model again
    (one pass to the deepest layer instead of one per layer; a block of every layer is in memory
    at once: lower ``block_records`` if that is too much).
    """
    if cfg.data is None and dataset is None:
        raise ConfigError("field 'data': required (the dataset to collect tokens from)")
    out = Path(cfg.out)
    shard = parse_shard(cfg.shard)
    with start_run("sae train", cfg.to_dict(), out, manifest_name=manifest_name(shard)) as run:
        lm, dataset = load_inputs(run, cfg, lm=lm, dataset=dataset)
        (layer,) = resolve_layers([cfg.layer], lm.info.n_layers)
        blocks = TokenBlocks(lm, layer, cfg, out / TOKEN_DIR,
                             token_fields(cfg, lm, dataset, layer))
        for other, folder in prefetch:
            (other,) = resolve_layers([other], lm.info.n_layers)
            if other != layer:
                blocks.siblings.append(TokenBlocks(lm, other, cfg, Path(folder) / TOKEN_DIR,
                                                   token_fields(cfg, lm, dataset, other)))
        for b in (blocks, *blocks.siblings):
            b.check_folder()
        parts = token_parts(dataset, cfg)
        if shard is not None:
            with run.timer("collect_tokens"):
                run.add_output("token_blocks", collect_shard(blocks, parts, shard))
            return None
        with run.timer("collect_tokens"):
            x, heldout = _collect(blocks, parts, dataset)
        run.add_output("token_blocks", {"made": blocks.made, "read": blocks.read,
                                        "prefetched": blocks.prefetched})
        log.info("collected %d training + %d held-out tokens x %d at layer %d", len(x),
                 0 if heldout is None else len(heldout), x.shape[1], layer)
        with run.timer("train"):
            sae, metrics = train_sae(x, cfg, heldout=heldout, model_name=lm.info.name,
                                     hook_name=f"blocks.{layer}.hook_resid_post",
                                     hook_layer=layer)
        metrics.update(layer=layer, n_tokens=metrics["n_train_tokens"], d_in=int(x.shape[1]),
                       d_sae=cfg.d_sae, k=cfg.k)
        folder = save_sae(sae, out / SAE_SUBDIR)
        atomic_write_json(out / METRICS_FILE, metrics)
        for key, value in metrics.items():
            run.add_output(key, value)
        if not cfg.keep_tokens:
            shutil.rmtree(out / TOKEN_DIR, ignore_errors=True)
    return folder, metrics
