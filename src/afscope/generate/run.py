"""``afscope generate``: a prompt file -> ``generations.jsonl`` in a run directory.

A sharded run (``--shard i/n``, torchrun ranks, Slurm array tasks) writes
``generations.shard-i-of-n.jsonl`` per shard; :func:`merge_generations` joins them into the
``generations.jsonl`` a single process writes, byte for byte: rows in the order of the prompt
file (each prompt's ``n_generations`` answers together), the same sidecar.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from afscope.data.cues import cue_messages
from afscope.distributed import parse_shard
from afscope.errors import ArtifactError
from afscope.fileio import sha256_file
from afscope.generate.config import GenerateConfig
from afscope.generate.prompts import load_prompts
from afscope.generate.rows import GenerateStats, generate_rows
from afscope.generate.steering import Steering
from afscope.models import LoadedModel, load_model
from afscope.rows import JsonlStore, meta_path, write_rows
from afscope.runs import manifest_name, shard_manifests, start_merged_run, start_run

GENERATIONS = "generations.jsonl"


def generation_file(out: Path, shard: tuple[int, int] | None) -> Path:
    name = GENERATIONS if shard is None else f"generations.shard-{shard[0]}-of-{shard[1]}.jsonl"
    return Path(out) / name


def prompt_items(cfg: GenerateConfig) -> list[dict[str, Any]]:
    """One item per prompt and generation: ``id`` = prompt id (``#k`` for the k-th of several)."""
    items = []
    for p in load_prompts(cfg.prompts):
        pid = p.pop("prompt_id")
        prompt = p["prompt"]
        if cfg.cue is not None and isinstance(prompt, str):
            prompt = cue_messages(cfg.cue, prompt)
        for k in range(cfg.n_generations):
            rid = pid if cfg.n_generations == 1 else f"{pid}#{k}"
            items.append({**p, "id": rid, "prompt_id": pid, "prompt": prompt})
    return items


def run_generate(cfg: GenerateConfig, *, lm: LoadedModel | None = None,
                 steering: Steering | None = None, steering_info: dict[str, Any] | None = None
                 ) -> tuple[Path, GenerateStats]:
    """Generate every prompt of ``cfg.prompts`` into ``OUT/generations*.jsonl``; rerun to resume.

    ``steering`` (built by the CLI from ``cfg.steer``) is recorded in the store's settings, so a
    resume with another vector, alpha or decoding is refused instead of mixing rows.
    """
    shard = parse_shard(cfg.shard)
    with start_run("generate", cfg.to_dict(), cfg.out, manifest_name=manifest_name(shard)) as run:
        items = prompt_items(cfg)
        run.add_dataset("prompts", {"path": str(cfg.prompts), "sha256": sha256_file(cfg.prompts),
                                    "n_rows": len(items)})
        if lm is None:
            with run.timer("load_model"):
                lm = load_model(cfg.model, dtype=cfg.dtype, device=cfg.device)
        run.add_model("model", lm.info.to_dict())
        meta = {"model": lm.info.fingerprint, "dtype": lm.info.dtype,
                "params": cfg.params().to_dict(), "cue": cfg.cue,
                "steering": None if steering is None else steering.key()}
        if steering_info is not None:
            run.add_dataset("steering_vector", steering_info)
        path = generation_file(cfg.out, shard)
        store = JsonlStore(path, meta=meta)
        with run.timer("generate"):
            stats = generate_rows(lm.model, lm.tokenizer, items, store, cfg.params(),
                                  steering=steering, batch_size=cfg.batch_size, shard=shard,
                                  description="generate")
        run.add_output("rows", len(store))
        run.add_output("stats", stats.to_dict())
    return path, stats


def _shard_counts(out: Path) -> set[int]:
    """The ``n`` of every ``generations.shard-i-of-n`` sidecar in ``out`` (each shard that
    started wrote one, even when it had no rows)."""
    names = (re.fullmatch(r"generations\.shard-\d+-of-(\d+)\.meta\.json", f.name)
             for f in out.glob("generations.shard-*.meta.json"))
    return {int(m.group(1)) for m in names if m}


def merge_generations(out: str | Path, *, config: GenerateConfig | None = None,
                      count: int | None = None) -> Path:
    """The merge step of a sharded generate: ``OUT/generations.jsonl`` and ``manifest.json``.

    Joins the ``count`` shard files (default: the one shard count found in ``out``) into the file
    a single process writes: rows in the order of the prompt file, which ``config`` (default: the
    config in the first shard manifest) names. Every shard must have all its rows, with the same
    settings (the sidecars); otherwise an :class:`ArtifactError` says what to rerun. The shard
    files stay: they are what a rerun resumes from.
    """
    out = Path(out)
    if count is None:
        counts = _shard_counts(out)
        if len(counts) != 1:
            raise ArtifactError(f"{out}: " + (
                "no shard files (generations.shard-i-of-n.jsonl) to merge" if not counts else
                "shard files of several runs ("
                + " and ".join(f"{n} shards" for n in sorted(counts))
                + "); give the shard count of the run to merge"))
        (count,) = counts
    shards = shard_manifests(out, count=count)
    if config is None:
        first = next(iter(shards.values()), None)
        if first is None:
            raise ArtifactError(f"{out}: no shard manifest (manifest.shard-i-of-{count}.json) to "
                                "read the prompt order from")
        config = GenerateConfig.model_validate({**first["config"], "shard": None})
    metas, rows = [], {}
    for i in range(count):
        path = generation_file(out, (i, count))
        if not meta_path(path).exists():
            raise ArtifactError(f"{out}: shard {i}/{count} has not run (no {meta_path(path).name});"
                                " run it, then merge again")
        metas.append(json.loads(meta_path(path).read_text(encoding="utf-8")))
        for row in JsonlStore(path).rows():
            rows.setdefault(row["id"], row)
    diff = sorted({k for m in metas[1:] for k in set(m) | set(metas[0])
                   if m.get(k) != metas[0].get(k)})
    if diff:
        raise ArtifactError(f"{out}: the shards were made with different settings (differ in: "
                            f"{', '.join(diff)}); rerun them with one config")
    order = [item["id"] for item in prompt_items(config)]
    missing = [i for i in order if i not in rows]
    if missing:
        raise ArtifactError(f"{out}: {len(missing)} of {len(order)} rows missing from the "
                            f"{count} shards (first: {missing[:3]}); rerun the same command to "
                            "resume them, then merge")
    extra = sorted(set(rows) - set(order))
    if extra:
        raise ArtifactError(f"{out}: the shards hold rows that are not in {config.prompts} "
                            f"(first: {extra[:3]}); was the prompt file changed?")
    target = generation_file(out, None)
    if target.exists() and meta_path(target).exists() and target.stat().st_size:
        old = json.loads(meta_path(target).read_text(encoding="utf-8"))
        if old != metas[0]:
            raise ArtifactError(f"{target}: rows made with other settings; use another --out "
                                "or delete the file")
    write_rows(target, [rows[i] for i in order], meta=metas[0])
    with start_merged_run("generate", out, shards, config.to_dict()) as run:
        run.add_output("rows", len(order))
        run.add_output("stats", {
            key: sum(int(((m.get("outputs") or {}).get("stats") or {}).get(key, 0))
                     for m in shards.values()) for key in ("done", "skipped")})
    return target
