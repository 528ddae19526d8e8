"""Generation into a resumable JSONL store: the form every sweep and dataset build uses."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from afscope.distributed import parse_shard
from afscope.errors import ConfigError, DataError
from afscope.generate.engine import Generation, generate
from afscope.generate.params import GenerationParams
from afscope.generate.served import ServedModel
from afscope.generate.steering import Steering
from afscope.rows import JsonlStore

SteeringFor = Steering | Callable[[dict[str, Any]], Steering | None] | None


@dataclass
class GenerateStats:
    """``done`` rows generated now; ``skipped`` rows already in the store (resume)."""

    done: int = 0
    skipped: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"done": self.done, "skipped": self.skipped}


def stored_prompt(prompt: Any) -> Any:
    """The ``prompt`` a row stores: a string becomes the one user turn it is rendered as
    (:func:`~afscope.generate.engine.render_prompt`), so a generations file has one column type
    (a list of messages) whether its prompts were strings, chats or both; token ids stay as given.
    """
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt


def row_seed(seed: int, row_id: str) -> int:
    """The sampling seed of one row: fixed by the run seed and the row id, never by batching."""
    return (seed * 2_654_435_761 + zlib.crc32(row_id.encode("utf-8"))) % (2**31 - 1)


def generate_rows(
    model: Any,
    tokenizer: Any,
    items: Sequence[dict[str, Any]],
    store: JsonlStore,
    params: GenerationParams | None = None,
    *,
    steering: SteeringFor = None,
    batch_size: int = 16,
    shard: tuple[int, int] | str | None = None,
    template: str | None = None,
    description: str | None = None,
) -> GenerateStats:
    """Generate ``item["prompt"]`` for every item not yet in ``store`` and append the rows.

    Each item needs a unique string ``"id"`` and a ``"prompt"``; its other keys are copied into the
    row, which adds ``response``, ``finish_reason``, ``n_prompt_tokens`` and ``n_new_tokens``. The
    row's ``prompt`` is a chat (:func:`stored_prompt`: a string prompt is its one user turn).
    ``steering`` is one :class:`Steering`, or a function of the item. ``model`` may be a
    :class:`~afscope.generate.served.ServedModel` (unsteered generation on an OpenAI-compatible
    server, the same rows; ``tokenizer`` is then unused). ``shard=(i, n)`` keeps
    ``items[i::n]``. Rows are written ``batch_size`` at a time (fsynced), so a killed run loses at
    most one batch; sampled rows are seeded by their id, so a resumed run writes the same text.
    """
    params = params if params is not None else GenerationParams()
    seen: set[str] = set()
    for k, item in enumerate(items):
        rid = item.get("id")
        if not isinstance(rid, str) or not rid:
            raise DataError(f"item {k}: field 'id': expected a non-empty string")
        if rid in seen:
            raise DataError(f"item {k}: duplicate id {rid!r}")
        if "prompt" not in item:
            raise DataError(f"item {k} ({rid}): missing field 'prompt'")
        seen.add(rid)
    sh = parse_shard(shard)
    mine = list(items) if sh is None else list(items)[sh[0]::sh[1]]
    stats = GenerateStats()
    pending = [it for it in mine if it["id"] not in store]
    stats.skipped = len(mine) - len(pending)
    if isinstance(model, ServedModel):
        return _served_rows(model, mine, pending, store, params, steering, batch_size, template,
                            description, stats)
    # batches of the store are chunks of length-sorted work, so each generate call pads little
    chunk = max(batch_size * 4, batch_size)
    for start in range(0, len(pending), chunk):
        part = pending[start:start + chunk]
        steer = [steering(it) if callable(steering) else steering for it in part]
        gens = generate(model, tokenizer, [it["prompt"] for it in part], params, steering=steer,
                        seeds=[row_seed(params.seed, it["id"]) for it in part],
                        batch_size=batch_size, template=template, description=description)
        rows = [_row(it, g) for it, g in zip(part, gens)]
        store.append(rows)
        stats.done += len(rows)
    return stats


def _row(item: dict[str, Any], g: Generation) -> dict[str, Any]:
    """The stored row of one answer: the item's keys plus the answer's (one schema for the local
    engine and a server)."""
    return {**item, "prompt": stored_prompt(item["prompt"]), "response": g.text,
            "finish_reason": g.finish_reason, "n_prompt_tokens": g.n_prompt_tokens,
            "n_new_tokens": len(g.token_ids)}


def _served_rows(served: ServedModel, mine: list[dict[str, Any]], pending: list[dict[str, Any]],
                 store: JsonlStore, params: GenerationParams, steering: SteeringFor,
                 batch_size: int, template: str | None, description: str | None,
                 stats: GenerateStats) -> GenerateStats:
    """:func:`generate_rows` on a server. Items sharing a ``prompt_id`` (and prompt) are one
    request with ``n`` = their number, seeded by the prompt id; item ``k`` of the group takes
    choice ``k`` whichever of them are still missing, so a resume writes the same text."""
    steer = [steering(it) if callable(steering) else steering for it in pending]
    if any(s is not None for s in steer):
        raise ConfigError("steered generation needs the model in this process (the steering "
                          "vector is added to the residual stream inside the forward pass; an "
                          "OpenAI-compatible server has no such hook): unset 'server' for it")

    def key(it: dict[str, Any]) -> tuple[str, str]:
        pid = it.get("prompt_id")
        if not isinstance(pid, str):
            return ("", it["id"])
        return (pid, json.dumps(it["prompt"], sort_keys=True))

    members: dict[tuple[str, str], list[str]] = {}
    for it in mine:
        members.setdefault(key(it), []).append(it["id"])
    # keep the server's queue full: at least `concurrency` requests in flight, whatever the
    # local batch size; rows are still stored a chunk at a time
    batch_size = max(batch_size, served.backend.concurrency)
    chunk = batch_size * 4
    for start in range(0, len(pending), chunk):
        part = pending[start:start + chunk]
        keys = list(dict.fromkeys(key(it) for it in part))
        first = {key(it): it for it in reversed(part)}
        gens = served.generate([first[k]["prompt"] for k in keys], params,
                               seeds=[row_seed(params.seed, k[0] or k[1]) for k in keys],
                               n=[len(members[k]) for k in keys], template=template,
                               batch_size=batch_size, description=description)
        answers = dict(zip(keys, gens))
        rows = [_row(it, answers[key(it)][members[key(it)].index(it["id"])]) for it in part]
        store.append(rows)
        stats.done += len(rows)
    return stats
