"""The scenarios of a counterfactual dataset: user requests with a grouping key for the split.

A scenario is one user request. ``scenario`` is the key that must not straddle train and test:
the synthetic requests share it when they come from the same scenario template (two wordings of
one ask), a file's records take it from ``scenario_field`` (else each record is its own group).
Files are read with :mod:`afscope.data.load`'s readers; the records here are requests, not labelled
traces, so only the text field is required.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from afscope.data.cues import requests
from afscope.data.load import detect_format, iter_raw_rows
from afscope.errors import DataError, where
from afscope.fileio import sha256_file


@dataclass(frozen=True)
class Scenario:
    """One user request: its ``id`` (row key), ``text``, grouping key and source label."""

    id: str
    text: str
    scenario: str
    label: str


def scenario_messages(s: Scenario, system: str | None) -> list[dict[str, str]]:
    """The chat of a scenario: its request, after ``system`` when one is set."""
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": s.text}]


def load_scenarios(cfg: Any) -> list[Scenario]:
    """Scenarios per ``cfg`` (a :class:`~afscope.counterfactual.config.CounterfactualConfig`).

    From ``cfg.data`` when set (every record needs a non-empty string ``cfg.text_field``), else
    ``cfg.n`` synthetic requests. ``cfg.max`` keeps the first N, so a short run is a prefix of
    the full one and the full run resumes it.
    """
    out = _from_file(cfg) if cfg.data is not None else _synthetic(cfg)
    return out[:cfg.max] if cfg.max is not None else out


def scenarios_info(cfg: Any, scenarios: list[Scenario]) -> dict[str, Any]:
    """What the manifest records about the scenarios: the source and its content hash."""
    if cfg.data is None:
        return {"source": "afscope.data.cues.requests", "n": len(scenarios), "seed": cfg.seed,
                "harmful_fraction": cfg.harmful_fraction}
    return {"source": str(cfg.data), "sha256": sha256_file(cfg.data), "n": len(scenarios)}


def _synthetic(cfg: Any) -> list[Scenario]:
    reqs = requests(cfg.n, cfg.seed, harmful_fraction=cfg.harmful_fraction)
    return [Scenario(f"req-{i:05d}", r.text, r.scenario, "harmful" if r.harmful else "benign")
            for i, r in enumerate(reqs)]


def _from_file(cfg: Any) -> list[Scenario]:
    path = Path(cfg.data)
    fmt = detect_format(path)
    tf, sf, lf = cfg.text_field, cfg.scenario_field, cfg.label_field
    out: list[Scenario] = []
    seen: dict[str, int] = {}
    for index, obj, line in iter_raw_rows(path, fmt=fmt, required=[tf]):
        loc = where(path, index)
        if line is not None:
            loc += f" (line {line})"
        if not isinstance(obj, dict):
            raise DataError(f"{loc}: expected an object with a {tf!r} field, got "
                            f"{type(obj).__name__}")
        if tf not in obj:
            present = ", ".join(repr(k) for k in list(obj)[:12]) or "none"
            raise DataError(f"{loc}: field {tf!r}: missing; expected the user request (fields "
                            f"present: {present}; set text_field)")
        text = obj[tf]
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{loc}: field {tf!r}: expected a non-empty string, got {text!r:.60}")
        raw_id = obj.get("id")
        rid = str(raw_id) if isinstance(raw_id, (str, int)) and str(raw_id).strip() else \
            f"{path.stem}:{index}"
        if rid in seen:
            raise DataError(f"{loc}: field 'id': {rid!r} is also the id of record {seen[rid]}; "
                            "ids must be unique (they key the resumable generations)")
        seen[rid] = index
        group = obj.get(sf)
        scenario = str(group) if group is not None and str(group).strip() else f"record:{rid}"
        label = obj.get(lf)
        out.append(Scenario(rid, text, scenario, str(label) if label is not None else "unknown"))
    if not out:
        raise DataError(f"{path}: no records; expected at least one user request")
    return out
