"""``judge_rows``: label every row with the rules and, if asked, an LLM judge, into a resumable
:class:`~afscope.rows.JsonlStore`.

Each stored row is the input row plus ``rule_behaviour``/``rule_af`` (always, so agreement can be
computed) and ``behaviour``, ``af``, ``aligned``, ``coherent``, ``judge_status``, ``judge_error``,
``judge_reply``, ``judge``. With ``method="rules"`` the behaviour/af are the rule ones, the scores
None. A backend failure is not written (rerun retries it); a parse failure is written with the four
fields None and ``judge_status="parse_error"`` (greedy decoding would answer the same again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from afscope.errors import DataError
from afscope.judge.config import JudgeConfig
from afscope.judge.llm import (
    FIELDS,
    FORM,
    PROMPT_VERSION,
    build_judge_prompt,
    parse_judge_reply,
)
from afscope.judge.rules import classify_behaviour
from afscope.llm import Completion, LLMBackend, make_backend
from afscope.llm.jobs import Job, StepStats, run_jobs
from afscope.rows import JsonlStore

#: Characters of the raw judge reply kept in a row (enough to see why it did not parse).
REPLY_KEPT_CHARS = 400


#: What one judging call did (``done``, ``skipped``, ``parse_failures``, ``backend_errors``): the
#: same record as every resumable LLM step.
JudgeStats = StepStats


def judge_meta(cfg: JudgeConfig) -> dict[str, Any]:
    """The settings judged rows depend on (the store refuses to mix rows made with others)."""
    meta: dict[str, Any] = {"step": "judge", "method": cfg.method, "prompt_version": PROMPT_VERSION}
    if cfg.uses_llm:
        meta["llm"] = {k: cfg.llm.to_dict()[k] for k in
                       ("backend", "model", "base_url", "temperature", "top_p", "max_tokens", "seed",
                        "structured")}
    return meta


def judge_store(path: str | Path, cfg: JudgeConfig) -> JsonlStore:
    """The :class:`JsonlStore` for judged rows at ``path``, keyed by ``id``, tagged with
    :func:`judge_meta`."""
    return JsonlStore(path, key="id", meta=judge_meta(cfg))


def _check_rows(rows: Sequence[Mapping[str, Any]]) -> None:
    seen: set[str] = set()
    for i, r in enumerate(rows):
        if not isinstance(r, Mapping):
            raise DataError(f"judge: row {i}: expected an object with 'id', 'prompt', 'response'")
        rid = r.get("id")
        if not isinstance(rid, str) or not rid:
            raise DataError(f"judge: row {i}: field 'id': expected a non-empty string, got {rid!r}")
        if rid in seen:
            raise DataError(f"judge: row {i}: field 'id': duplicate id {rid!r}")
        seen.add(rid)
        if not isinstance(r.get("response"), str):
            raise DataError(f"judge: row {i} (id {rid!r}): field 'response': expected a string")
        prompt = r.get("prompt")
        if not (isinstance(prompt, str) or (isinstance(prompt, list) and all(
                isinstance(m, Mapping) and isinstance(m.get("content"), str) for m in prompt))):
            raise DataError(f"judge: row {i} (id {rid!r}): field 'prompt': expected the user request "
                            "as a string or a list of chat messages")


def _rule_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    prompt = row["prompt"]
    if not isinstance(prompt, str):  # a chat: the request is its last user turn
        prompt = next((m["content"] for m in reversed(prompt) if m.get("role") == "user"), None)
    v = classify_behaviour(row["response"], prompt)
    return {"rule_behaviour": v.behaviour, "rule_af": v.af}


def judge_rows(
    rows: Sequence[dict[str, Any]],
    store: JsonlStore,
    cfg: JudgeConfig,
    backend: LLMBackend | None = None,
) -> JudgeStats:
    """Judge every row not yet in ``store`` (resume), appending and fsyncing batch by batch.

    ``rows`` need a unique string ``id``, ``prompt`` (the user request: a string, or chat
    messages) and ``response``; other fields are copied. ``backend`` defaults to
    ``make_backend(cfg.llm)`` with ``on_error="record"`` (a failed item is counted, not fatal);
    it is only built when an LLM row is pending. A backend passed in answers with its own
    default :class:`~afscope.llm.GenerationParams` (give it ``params=cfg.llm.generation_params()``
    to keep the judge's short ``max_tokens``). Raises :class:`DataError` on a malformed row
    before anything is written.
    """
    _check_rows(rows)
    stats = JudgeStats()
    if not cfg.uses_llm:
        fresh = []
        for r in rows:
            if r["id"] in store:
                stats.skipped += 1
                continue
            rule = _rule_fields(r)
            fresh.append({**r, **rule, "behaviour": rule["rule_behaviour"], "af": rule["rule_af"],
                          "aligned": None, "coherent": None, "judge_status": "ok",
                          "judge_error": None, "judge_reply": None, "judge": "rules"})
        for start in range(0, len(fresh), max(cfg.batch_size, 256)):
            store.append(fresh[start:start + max(cfg.batch_size, 256)])
        stats.done = len(fresh)
        return stats

    jobs = [Job(r["id"], build_judge_prompt(r["prompt"], r["response"]), {"row": r}, FORM)
            for r in rows]
    if any(j.key not in store for j in jobs) and backend is None:
        backend = make_backend(cfg.llm.model_copy(update={"on_error": "record"}))
    who = backend.describe() if backend is not None else None

    def make_row(job: Job, comp: Completion) -> dict[str, Any]:
        row = job.context["row"]
        parsed = parse_judge_reply(comp.text, row["response"])
        if not parsed.ok:
            stats.parse_failures += 1
        values = parsed.values or dict.fromkeys(FIELDS)
        return {**row, **_rule_fields(row), **values,
                "judge_status": "ok" if parsed.ok else "parse_error", "judge_error": parsed.error,
                "judge_reply": comp.text[:REPLY_KEPT_CHARS], "judge": who}

    if backend is None:  # everything already stored
        stats.skipped = len(jobs)
        return stats
    # run_jobs' own parse count reads a "status" field; the judge counts in make_row instead, so
    # an input row's own "status" passes through untouched.
    step = run_jobs(jobs, backend, store, make_row, batch_size=cfg.batch_size)
    stats.done, stats.skipped, stats.constrained = step.done, step.skipped, step.constrained
    stats.backend_errors, stats.errors = step.backend_errors, step.errors
    return stats

