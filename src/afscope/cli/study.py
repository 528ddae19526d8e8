"""``afscope study``: rerun a whole detection study from one YAML config."""

from __future__ import annotations

import click

from afscope.cli import console
from afscope.cli.options import config_command
from afscope.study.config import StudyConfig


@click.command("study")
@config_command(StudyConfig)
def command(cfg: StudyConfig) -> None:
    """Split, baselines, SAEs, caches, probes, sweeps and the HTML report (see configs/).

    With ``sources:`` instead of ``train:`` it is a transfer study: leave-one-source-out
    training and the train-source x test-source AUROC matrix of every method
    (configs/study_transfer.yaml).
    """
    from afscope.study import RESULTS_FILE, TRANSFER_FILE, run_study

    out = run_study(cfg)
    main = out / (TRANSFER_FILE if cfg.sources else RESULTS_FILE)
    console.print(f"results: {main}")
    report = out / "report" / "index.html"
    if report.is_file():
        console.print(f"report: {report}")
