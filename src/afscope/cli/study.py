"""``afscope study``: rerun a whole detection study from one YAML config."""

from __future__ import annotations

import click

from afscope.cli import console
from afscope.cli.options import config_command
from afscope.study.config import StudyConfig


@click.command("study")
@config_command(StudyConfig)
def command(cfg: StudyConfig) -> None:
    """Split, baselines, SAEs, caches, probes, sweeps and the HTML report (see configs/)."""
    from afscope.study import RESULTS_FILE, run_study

    out = run_study(cfg)
    console.print(f"results: {out / RESULTS_FILE}")
    report = out / "report" / "index.html"
    if report.is_file():
        console.print(f"report: {report}")
