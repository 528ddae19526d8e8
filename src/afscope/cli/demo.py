"""``afscope demo``: run the pipeline on the embedded defaults and print where the report is."""

from __future__ import annotations

import click

from afscope.cli import console
from afscope.cli.options import config_command
from afscope.demo import DemoConfig


@click.command("demo")
@config_command(DemoConfig)
@click.pass_context
def command(ctx: click.Context, cfg: DemoConfig) -> None:
    """Synthetic corpus -> baselines, SAEs, probes, autointerp -> HTML report."""
    from afscope.demo import run_demo

    report = run_demo(cfg)
    if not ctx.obj.get("quiet"):
        _print_ladder(report.parent.parent)
    click.echo(str(report))


def _print_ladder(run_dir) -> None:
    import json

    from rich.table import Table

    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    table = Table("method", "test AUROC [95% CI]", title="AUROC ladder (held-out synthetic)")
    rows = [e for e in results["evaluations"] if e["dataset"] == "test"]
    for e in sorted(rows, key=lambda e: -e["metrics"]["auroc"]["value"]):
        a = e["metrics"]["auroc"]
        table.add_row(e["method"], f"{a['value']:.3f} [{a['lo']:.3f}, {a['hi']:.3f}]")
    console.print(table)
