"""Collects what a study measured into ``results.json`` + ``scores.jsonl`` (the report's input).

The layout is documented field by field in :mod:`afscope.report.schema`, which validates it.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from afscope.fileio import atomic_write_json, atomic_write_text

RESULTS_FILE = "results.json"
SCORES_FILE = "scores.jsonl"
FORMAT_VERSION = 1


class ResultsBuilder:
    """Methods, their evaluations (with per-sample scores), sweeps, SAEs and features of a run."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.datasets: list[dict[str, Any]] = []
        self.methods: list[dict[str, Any]] = []
        self.evaluations: list[dict[str, Any]] = []
        self.scores: list[dict[str, Any]] = []
        self.sweeps: list[dict[str, Any]] = []
        self.sae: list[dict[str, Any]] = []
        self.features: list[dict[str, Any]] = []
        self.verdicts: list[str] = []

    def add_method(self, id: str, family: str, features: str, estimator: str, *,
                   model: str | None = None, layer: int | None = None,
                   params: dict[str, Any] | None = None, n_features: int = 0,
                   n_nonzero: int = 0, cv: dict[str, float] | None = None,
                   artifact: str | None = None) -> str:
        if any(m["id"] == id for m in self.methods):
            raise ValueError(f"method id {id!r} recorded twice")
        self.methods.append({"id": id, "family": family, "model": model, "layer": layer,
                             "features": features, "estimator": estimator,
                             "params": params or {}, "n_features": int(n_features),
                             "n_nonzero": int(n_nonzero), "cv": cv, "artifact": artifact})
        return id

    def add_evaluation(self, method: str, dataset: str, role: str, evaluation: dict[str, Any],
                       scores: np.ndarray, labels: np.ndarray, categories: list[str]) -> None:
        """``evaluation`` is :func:`afscope.probe.evaluate_scores` output for ``scores``."""
        self.evaluations.append({"method": method, "dataset": dataset, "role": role,
                                 **evaluation})
        self.scores.append({"method": method, "dataset": dataset,
                            "scores": [round(float(s), 6) for s in scores],
                            "labels": [int(v) for v in labels], "categories": list(categories)})

    def write(self, out: Path) -> Path:
        doc = {"kind": "afscope_results", "format_version": FORMAT_VERSION, "title": self.title,
               "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "datasets": self.datasets, "methods": self.methods,
               "evaluations": self.evaluations, "sweeps": self.sweeps, "sae": self.sae,
               "features": self.features, "verdicts": self.verdicts}
        atomic_write_text(out / SCORES_FILE,
                          "".join(json.dumps(s, sort_keys=True) + "\n" for s in self.scores))
        return atomic_write_json(out / RESULTS_FILE, doc)

    def ladder(self, dataset: str) -> list[tuple[str, dict[str, Any] | None]]:
        """``(method, auroc CI)`` on ``dataset``, best first (methods without an AUROC last)."""
        rows = [(e["method"], e["metrics"].get("auroc")) for e in self.evaluations
                if e["dataset"] == dataset]
        return sorted(rows, key=lambda r: -(r[1]["value"] if r[1] else -1.0))
