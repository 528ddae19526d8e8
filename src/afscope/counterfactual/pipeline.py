"""The steps both builders share: load the target, generate resumably, label resumably, finish.

Generations go to ``OUT/generations.jsonl`` (one row per prompt x condition, keyed by ``id``) and
labels to ``OUT/labels.jsonl`` (same keys), both :class:`~afscope.rows.JsonlStore` files: a killed
build resumes without regenerating or relabelling finished rows, and a store made with another
model, decoding, prompt or judge setting is refused rather than mixed in. The dataset files are
rebuilt from the two stores at the end of every run.

A sharded build (``shard`` ``i/n``: torchrun ranks, Slurm array tasks) generates and labels items
``i::n`` into ``generations.shard-i-of-n.jsonl`` / ``labels.shard-i-of-n.jsonl`` and stops there.
The build as one process first takes in the rows of those shard files (same settings only), does
what they lack, and keeps both stores in item order: the files of an unsharded run, byte for byte.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from afscope.counterfactual.config import CounterfactualConfig
from afscope.counterfactual.scenarios import Scenario
from afscope.counterfactual.schema import (
    GENERATIONS_FILE,
    LABELS_FILE,
    split_by_scenario,
    summarize,
    write_dataset,
)
from afscope.distributed import parse_shard
from afscope.errors import ArtifactError
from afscope.fileio import sha256_json
from afscope.generate import GenerationParams, Steering, generate_rows
from afscope.models import LoadedModel, load_model
from afscope.rows import JsonlStore, put_in_order, shard_path, take_in_shards
from afscope.runs import Run

logger = logging.getLogger(__name__)


def load_target(cfg: CounterfactualConfig, run: Run, lm: LoadedModel | None) -> LoadedModel:
    """The target model (``lm`` when the caller already holds it), with ``cfg.adapter`` merged
    into it, recorded in the manifest."""
    if lm is None:
        with run.timer("load_model"):
            lm = load_model(cfg.model, dtype=cfg.dtype, device=cfg.device)
    if cfg.adapter is not None:
        from afscope.organism.train import load_organism

        lm = load_organism(lm, cfg.adapter)
    run.add_model("target", lm.info.to_dict())
    return lm


def shard_of(cfg: CounterfactualConfig) -> tuple[int, int] | None:
    """``(i, n)`` of a sharded build, None for the build as one process."""
    return parse_shard(cfg.shard)


def my_items(items: Sequence[dict[str, Any]], cfg: CounterfactualConfig) -> list[dict[str, Any]]:
    """The items this build generates and labels: all, or ``items[i::n]`` of shard ``i/n``."""
    shard = shard_of(cfg)
    return list(items) if shard is None else list(items)[shard[0]::shard[1]]


def _store(cfg: CounterfactualConfig, name: str, meta: dict[str, Any]) -> JsonlStore:
    return JsonlStore(shard_path(Path(cfg.out) / name, shard_of(cfg)), key="id", meta=meta)


def _fill(cfg: CounterfactualConfig, store: JsonlStore, order: Sequence[str],
          step: Callable[[JsonlStore], Any]) -> tuple[JsonlStore, Any, int]:
    """``step(store)`` (generate or judge into it); as one process, with the shards' rows taken
    in first and the rows put in ``order`` afterwards. Returns the store, the step's stats and
    how many rows came from shard files."""
    if shard_of(cfg) is not None:
        return store, step(store), 0
    taken = take_in_shards(store, order)
    stats = step(store)
    return put_in_order(store, order), stats, taken


def generation_params(cfg: CounterfactualConfig) -> GenerationParams:
    """Greedy decoding (seed 000: deterministic answers, so a label change is the intervention's)."""
    return GenerationParams(temperature=0.0, max_tokens=cfg.max_tokens, seed=cfg.seed)


def generate_all(cfg: CounterfactualConfig, run: Run, lm: LoadedModel, items: Sequence[dict[str, Any]],
                 meta: dict[str, Any], steering: Callable[[dict[str, Any]], Steering | None] | None
                 = None, *, name: str = GENERATIONS_FILE
                 ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Generate every item not yet in ``OUT/<name>`` (``generations.jsonl``); return id -> row
    and the store meta (the identity of the generations, which the label store records)."""
    params = generation_params(cfg)
    full_meta = {"model": lm.info.name, "model_fingerprint": lm.info.fingerprint,
                 "dtype": lm.info.dtype, "params": params.to_dict(), "template": cfg.template,
                 **meta}
    store = _store(cfg, name, full_meta)
    what = name.removesuffix(".jsonl")
    with run.timer("generate" if name == GENERATIONS_FILE else what):
        store, stats, taken = _fill(
            cfg, store, [it["id"] for it in items],
            lambda s: generate_rows(lm.model, lm.tokenizer, items, s, params, steering=steering,
                                    batch_size=cfg.batch_size, template=cfg.template,
                                    description="generating", shard=shard_of(cfg)))
    out = {"done": stats.done, "skipped": stats.skipped}
    run.add_output(what, {**out, "from_shards": taken} if taken else out)
    logger.info("%s: %d new, %d resumed", what, stats.done, stats.skipped)
    wanted = {it["id"] for it in my_items(items, cfg)}
    return {r["id"]: r for r in store.rows() if r["id"] in wanted}, full_meta


def label_all(cfg: CounterfactualConfig, run: Run, rows: Sequence[dict[str, Any]],
              gen_meta: dict[str, Any], backend: Any = None, *, name: str = LABELS_FILE
              ) -> dict[str, dict[str, Any]]:
    """Behaviour labels of every generation (``afscope.judge``), resumable in ``OUT/<name>``
    (``labels.jsonl``).

    Judge input rows are ``{"id", "prompt": user request, "response"}``. ``backend`` is the LLM
    judge for ``judge`` llm/both (default: ``afscope.judge`` builds it from ``cfg.llm``); rules
    need none. An answer the judge could not label (parse failure, backend error) has no
    ``behaviour`` and its record is left out of the dataset (counted in the stats).
    """
    from afscope.judge import judge_meta, judge_rows

    jcfg = cfg.judge_config()
    if jcfg.uses_llm:
        run.add_model("judge", {"backend": jcfg.llm.backend, "model": jcfg.llm.model})
    meta = {**judge_meta(jcfg), "generations": sha256_json(gen_meta)}
    store = _store(cfg, name, meta)
    inputs = [{"id": r["id"], "prompt": r["user_prompt"], "response": r["response"]} for r in rows]
    what = "judge" if name == LABELS_FILE else name.removesuffix(".jsonl")
    with run.timer(what):
        store, stats, _ = _fill(cfg, store, [r["id"] for r in rows],
                                lambda s: judge_rows(inputs, s, jcfg, backend))
    if stats.backend_errors:
        logger.warning("judge: %d answers not labelled (backend errors); rerun to retry",
                       stats.backend_errors)
    run.add_output(what, stats.to_dict())
    wanted = {r["id"] for r in rows}
    return {r["id"]: r for r in store.rows() if r["id"] in wanted}


def check_row(row: dict[str, Any] | None, scenario: Scenario, key: str, path: Path) -> dict[str, Any]:
    """The stored generation of ``key``, refusing one made for another request text."""
    if row is None:
        raise ArtifactError(f"{path}: no generation for {key!r} after generating; rerun")
    if row.get("user_prompt") != scenario.text:
        raise ArtifactError(f"{path}: id {key!r}: stored for another request text than record "
                            f"{scenario.id!r} now has; use another --out or delete the file")
    return row


def finish(cfg: CounterfactualConfig, run: Run, records: list[dict[str, Any]], n_unlabelled: int,
           lengths: list[tuple[int, int]], *, before: str, after: str, by: Sequence[str] = (),
           extra: dict[str, Any] | None = None, by_changed: bool = False) -> BuildResult:
    """Split by scenario (stratified by whether it changed too, with ``by_changed``), compute
    stats (warning below ``min_changed_rate``), write the files; ``extra`` entries are added to
    the stats."""
    train, test = split_by_scenario(records, cfg.test_fraction, cfg.seed, by_changed=by_changed)
    stats = summarize(train, test, before=before, after=after, lengths=lengths,
                      n_unlabelled=n_unlabelled, min_changed_rate=cfg.min_changed_rate, by=by)
    stats.update(extra or {})
    paths = write_dataset(Path(cfg.out), train, test, stats)
    for name, p in paths.items():
        run.add_output(f"{name}_file", str(p))
    run.add_output("stats", stats)
    return BuildResult(Path(cfg.out), train, test, stats)


@dataclass(frozen=True)
class BuildResult:
    """What a build wrote: the run directory, the two record lists and the stats."""

    out: Path
    train: list[dict[str, Any]]
    test: list[dict[str, Any]]
    stats: dict[str, Any]
