"""``afscope judge run``: label generated responses (comply/refuse/partial, AF, alignment and
coherence scores) with the offline rules and an LLM judge; resumable."""

from __future__ import annotations

import click

from afscope.cli import console
from afscope.cli.options import config_command
from afscope.judge.config import JudgeRunConfig


@click.group("judge")
def command() -> None:
    """Judge responses: rules (offline) and an LLM judge (seed 003's alignment/coherence)."""


@command.command("run")
@config_command(JudgeRunConfig)
def run(cfg: JudgeRunConfig) -> None:
    """Judge the rows of --data (JSONL: id, prompt, response) into --out; rerun to resume."""
    from afscope.judge.run import run_judge

    out = run_judge(cfg)
    s, a = out["stats"], out["agreement"]
    kappa = "n/a" if a["kappa"] is None else f"{a['kappa']:.3f}"
    rate = "n/a" if a["behaviour_agreement"] is None else f"{a['behaviour_agreement']:.1%}"
    console.print(
        f"judged {s['done']} rows ({s['skipped']} already done, {s['parse_failures']} parse "
        f"failures, {s['backend_errors']} backend errors); judge vs rules on {a['n']} rows: "
        f"agreement {rate}, kappa {kappa}\n{cfg.out}", highlight=False)
