"""``run_judge``: the body of ``afscope judge run`` — a JSONL file of rows in, a run directory
(``judged.jsonl``, ``agreement.json``, ``manifest.json``) out. Rerunning the same command resumes.

A sharded run (``shard`` ``i/n``: torchrun ranks, Slurm array tasks) judges rows ``i::n`` into
``judged.shard-i-of-n.jsonl`` and stops there. The run as one process first takes in the rows of
those shard files (same judge settings only), judges what they lack and keeps ``judged.jsonl`` in
data order: the file of an unsharded run, byte for byte (an LLM judge's rows, stored as they
complete, are put in data order too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from afscope.data.load import read_jsonl_objects
from afscope.distributed import parse_shard
from afscope.errors import DataError
from afscope.fileio import atomic_write_json, sha256_file
from afscope.judge.agreement import agreement
from afscope.judge.config import JudgeRunConfig
from afscope.judge.judging import judge_rows, judge_store
from afscope.llm import LLMBackend
from afscope.rows import put_in_order, shard_path, take_in_shards
from afscope.runs import manifest_name, start_run

JUDGED = "judged.jsonl"
AGREEMENT = "agreement.json"


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The objects of a JSONL file; :class:`DataError` naming the file and line otherwise."""
    rows = [obj for _, obj in read_jsonl_objects(path)]
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def run_judge(cfg: JudgeRunConfig, backend: LLMBackend | None = None) -> dict[str, Any]:
    """Judge ``cfg.data`` into ``cfg.out``; returns ``{"stats": ..., "agreement": ...}``.

    With ``cfg.shard`` only that shard's rows are judged (and its agreement returned, with no
    ``agreement.json`` written); see the module docstring.
    """
    rows = read_rows(cfg.data)
    shard = parse_shard(cfg.shard)
    order = [r.get("id") for r in rows]  # judge_rows checks them
    mine = rows if shard is None else rows[shard[0]::shard[1]]
    with start_run("judge run", cfg.to_dict(), cfg.out,
                   manifest_name=manifest_name(shard)) as run:
        run.add_dataset("data", {"path": str(cfg.data), "sha256": sha256_file(cfg.data),
                                 "n_rows": len(rows)})
        if cfg.uses_llm:
            run.add_model("judge", {"backend": cfg.llm.backend, "model": cfg.llm.model})
        store = judge_store(shard_path(Path(cfg.out) / JUDGED, shard), cfg)
        taken = 0 if shard is not None else take_in_shards(store, order)
        with run.timer("judge"):
            stats = judge_rows(mine, store, cfg, backend)
        if shard is None:
            store = put_in_order(store, order)
        wanted = {r["id"] for r in mine}
        summary = agreement([r for r in store.rows() if r["id"] in wanted])
        if shard is None:
            atomic_write_json(Path(cfg.out) / AGREEMENT, summary)
        run.add_output("stats", {**stats.to_dict(), "from_shards": taken} if taken
                       else stats.to_dict())
        run.add_output("agreement", summary)
    return {"stats": stats.to_dict(), "agreement": summary}
