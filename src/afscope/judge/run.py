"""``run_judge``: the body of ``afscope judge run`` — a JSONL file of rows in, a run directory
(``judged.jsonl``, ``agreement.json``, ``manifest.json``) out. Rerunning the same command resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from afscope.data.load import read_jsonl_objects
from afscope.errors import DataError
from afscope.fileio import atomic_write_json, sha256_file
from afscope.judge.agreement import agreement
from afscope.judge.config import JudgeRunConfig
from afscope.judge.judging import judge_rows, judge_store
from afscope.llm import LLMBackend
from afscope.runs import start_run

JUDGED = "judged.jsonl"
AGREEMENT = "agreement.json"


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The objects of a JSONL file; :class:`DataError` naming the file and line otherwise."""
    rows = [obj for _, obj in read_jsonl_objects(path)]
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def run_judge(cfg: JudgeRunConfig, backend: LLMBackend | None = None) -> dict[str, Any]:
    """Judge ``cfg.data`` into ``cfg.out``; returns ``{"stats": ..., "agreement": ...}``."""
    rows = read_rows(cfg.data)
    with start_run("judge run", cfg.to_dict(), cfg.out) as run:
        run.add_dataset("data", {"path": str(cfg.data), "sha256": sha256_file(cfg.data),
                                 "n_rows": len(rows)})
        if cfg.uses_llm:
            run.add_model("judge", {"backend": cfg.llm.backend, "model": cfg.llm.model})
        store = judge_store(Path(cfg.out) / JUDGED, cfg)
        with run.timer("judge"):
            stats = judge_rows(rows, store, cfg, backend)
        wanted = {r["id"] for r in rows}
        summary = agreement([r for r in store.rows() if r["id"] in wanted])
        atomic_write_json(Path(cfg.out) / AGREEMENT, summary)
        run.add_output("stats", stats.to_dict())
        run.add_output("agreement", summary)
    return {"stats": stats.to_dict(), "agreement": summary}
