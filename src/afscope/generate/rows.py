"""Generation into a resumable JSONL store: the form every sweep and dataset build uses."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from afscope.distributed import parse_shard
from afscope.errors import DataError
from afscope.generate.engine import generate
from afscope.generate.params import GenerationParams
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
    ``steering`` is one :class:`Steering`, or a function of the item. ``shard=(i, n)`` keeps
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
    # batches of the store are chunks of length-sorted work, so each generate call pads little
    chunk = max(batch_size * 4, batch_size)
    for start in range(0, len(pending), chunk):
        part = pending[start:start + chunk]
        steer = [steering(it) if callable(steering) else steering for it in part]
        gens = generate(model, tokenizer, [it["prompt"] for it in part], params, steering=steer,
                        seeds=[row_seed(params.seed, it["id"]) for it in part],
                        batch_size=batch_size, template=template, description=description)
        rows = []
        for it, g in zip(part, gens):
            rows.append({**it, "prompt": stored_prompt(it["prompt"]), "response": g.text,
                         "finish_reason": g.finish_reason,
                         "n_prompt_tokens": g.n_prompt_tokens, "n_new_tokens": len(g.token_ids)})
        store.append(rows)
        stats.done += len(rows)
    return stats
