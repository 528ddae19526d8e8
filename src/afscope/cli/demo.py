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
    """Synthetic corpus -> baselines, SAEs, probes, autointerp -> behaviour lab -> explainer ->
    HTML report."""
    from afscope.demo import run_demo

    from afscope.progress import stage_times

    stage_times(reset=True)
    report = run_demo(cfg)
    if not ctx.obj.get("quiet"):
        _print_ladder(report.parent.parent)
        _print_behaviour(report.parent.parent)
        _print_explainer(report.parent.parent)
        _print_times(stage_times())
    click.echo(str(report))


def _print_times(times: list[tuple[str, float, int]]) -> None:
    """The demo's stages and the second level under them, with the time each took."""
    from rich.table import Table

    from afscope.progress import format_seconds

    table = Table("stage", "time", title="where the time went")
    for name, seconds, depth in times:
        if depth <= 1:
            table.add_row(("  " * depth) + name, format_seconds(seconds))
    console.print(table)


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


def _print_behaviour(run_dir) -> None:
    """One line per lab part: the gaps with CIs, the changed rate, the steering conditions."""
    from afscope.report import read_behaviour

    b = read_behaviour(run_dir)
    if b is None:
        return

    def ci(c) -> str:
        return "n/a" if c is None else f"{c.value:+.2f} [{c.lo:+.2f}, {c.hi:+.2f}]"

    if b.organism is not None:
        gaps = ", ".join(f"{m.name} {ci(m.gap)}" for m in b.organism.models)
        console.print(f"compliance gap (monitored - unmonitored): {gaps}; organism - base "
                      f"{ci(b.organism.gap_difference)}", highlight=False)
    if b.context_ablation is not None:
        c = b.context_ablation
        console.print(f"context ablation: {c.n} pairs, changed rate {c.changed_rate:.0%}"
                      + (" (below 20%: noisy)" if c.warning else ""), highlight=False)
    if b.steering is not None:
        rows = "; ".join(f"{c.name} comply {c.comply:.0%}" for c in b.steering.conditions)
        console.print(f"steering: {rows}", highlight=False)


def _print_explainer(run_dir) -> None:
    import json

    from afscope.explain.evaluate import METRICS_FILE, headline

    path = run_dir / "explain" / "eval" / METRICS_FILE
    if not path.is_file():
        return
    result = json.loads(path.read_text(encoding="utf-8"))
    for row in result["table"]:
        cells = ", ".join(f"{t} {v[0]:.2f} [{v[1]:.2f}, {v[2]:.2f}]" for t, v in headline(row)
                          if v is not None)
        console.print(f"explainer {row['task']} {row['condition']}: {cells}", highlight=False)
