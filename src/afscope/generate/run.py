"""``afscope generate``: a prompt file -> ``generations.jsonl`` in a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from afscope.data.cues import cue_messages
from afscope.fileio import sha256_file
from afscope.generate.config import GenerateConfig
from afscope.generate.prompts import load_prompts
from afscope.generate.rows import GenerateStats, generate_rows, parse_shard
from afscope.generate.steering import Steering
from afscope.models import LoadedModel, load_model
from afscope.rows import JsonlStore
from afscope.runs import start_run


def generation_file(out: Path, shard: tuple[int, int] | None) -> Path:
    name = "generations.jsonl" if shard is None else f"generations.shard-{shard[0]}-of-{shard[1]}.jsonl"
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
    manifest = "manifest.json" if shard is None else f"manifest.shard-{shard[0]}-of-{shard[1]}.json"
    with start_run("generate", cfg.to_dict(), cfg.out, manifest_name=manifest) as run:
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
