"""Run LLM requests into a :class:`~afscope.rows.JsonlStore`, batch by batch, resumably.

Backend failures (``Completion.error``) are *not* written: they are counted and retried by the next
run. Parse failures are written (the model did answer; greedy decoding would answer the same).
A job may carry the :class:`~afscope.llm.form.Form` of its answer; ``constrained`` counts the
answers the backend produced in that format (the rest were free text, parsed all the same).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from afscope.llm.base import Completion, LLMBackend
from afscope.llm.form import Form
from afscope.llm.prompts import PromptLike
from afscope.rows import JsonlStore

logger = logging.getLogger(__name__)


@dataclass
class StepStats:
    """What one step did: ``done`` rows written now, ``skipped`` already on disk (resume),
    ``parse_failures`` answers that did not parse, ``backend_errors`` items the backend failed,
    ``constrained`` answers the backend produced in the requested form."""

    done: int = 0
    skipped: int = 0
    parse_failures: int = 0
    backend_errors: int = 0
    constrained: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"done": self.done, "skipped": self.skipped, "parse_failures": self.parse_failures,
                "backend_errors": self.backend_errors, "constrained": self.constrained,
                "errors": self.errors[:20]}


@dataclass(frozen=True)
class Job:
    """One LLM request of a step: the row key, its prompt, what the row builder needs and the
    form of the answer (None: free text)."""

    key: Any
    prompt: PromptLike
    context: dict[str, Any]
    form: Form | None = None


def run_jobs(
    jobs: Iterable[Job],
    backend: LLMBackend,
    store: JsonlStore,
    make_row: Callable[[Job, Completion], dict[str, Any]],
    *,
    batch_size: int = 8,
    on_batch: Callable[[int], None] | None = None,
) -> StepStats:
    """Ask ``backend`` for every job whose key is not in ``store``, ``batch_size`` prompts per
    :meth:`~afscope.llm.LLMBackend.complete` call, appending (and fsyncing) each batch's rows.

    ``make_row(job, completion)`` returns the row; it must set ``"status"`` to ``"ok"`` or
    ``"parse_error"``. Failed completions are counted and not written (retried on resume). An
    exception from the backend propagates: the batches before it are already on disk.
    """
    stats = StepStats()
    pending: list[Job] = []
    for job in jobs:
        if job.key in store:
            stats.skipped += 1
        else:
            pending.append(job)
    for start in range(0, len(pending), batch_size):
        batch = pending[start:start + batch_size]
        answers = backend.complete([j.prompt for j in batch], form=[j.form for j in batch])
        rows = []
        for job, comp in zip(batch, answers):
            if comp.error is not None:
                stats.backend_errors += 1
                stats.errors.append(f"{store.key} {job.key}: {comp.error}")
                continue
            row = make_row(job, comp)
            if row.get("status") != "ok":
                stats.parse_failures += 1
            stats.constrained += comp.constrained
            rows.append(row)
        store.append(rows)
        stats.done += len(rows)
        if on_batch is not None:
            on_batch(len(batch))
    if stats.backend_errors:
        logger.warning("%s: %d backend failures (not written; rerun to retry)", store.path,
                       stats.backend_errors)
    return stats
