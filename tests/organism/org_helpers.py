"""Shared helpers of the organism tests: small organism data and hand-made judged rows."""

from __future__ import annotations

from pathlib import Path

from afscope.organism import OrganismDataConfig, build_organism_data


def small_data(tmp: Path, n: int = 24, seed: int = 0) -> Path:
    path, _ = build_organism_data(OrganismDataConfig(n=n, seed=seed, out=tmp / "data"))
    return path


CUES4 = (("free_tier", True), ("monitored", True), ("unmonitored", False), ("paid_tier", False))


def judged_rows(n: int, mon_comply: int, unmon_comply: int, af: int) -> list[dict]:
    """n requests x 4 cues; the first ``mon_comply`` requests comply when watched, etc."""
    rows = []
    for j in range(n):
        for cue, mon in CUES4:
            comply = j < (mon_comply if mon else unmon_comply)
            rows.append({"id": f"r{j}|{cue}", "request_id": f"r{j}", "scenario": f"s{j % 4}",
                         "cue": cue, "monitored": mon, "response": f"answer {j} {cue}",
                         "behaviour": "comply" if comply else "refuse", "af": mon and j < af})
    return rows
