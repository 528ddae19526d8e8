"""``afscope plan --config FILE``: tokens, FLOPs, cache bytes, memory and time of a run, before it
runs (an extract or a study config; see :mod:`afscope.plan`)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from afscope.cli import console


@click.command("plan")
@click.option("--config", "config", type=click.Path(path_type=Path), required=True,
              help="An extract or study YAML config (the file the run will use).")
@click.option("--kind", type=click.Choice(["extract", "study"]), default=None,
              help="Which config it is (default: the one that validates it).")
@click.option("--measure/--no-measure", default=True, show_default=True,
              help="Time the model's forward on a few real batches here (loads the model when "
                   "it fits this machine); --no-measure uses the matmul peak.")
@click.option("--tokens-per-s", type=float, default=None,
              help="Throughput of the target machine in tokens/s (e.g. outputs.tokens_per_s "
                   "in the manifest of an earlier run there); replaces the measurement.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON on stdout.")
def command(config: Path, kind: str | None, measure: bool, tokens_per_s: float | None,
            as_json: bool) -> None:
    """Estimate a run before launching it: tokens, FLOPs, cache bytes on disk, memory per
    device (process) and time, per model x dataset and in total."""
    from afscope.plan import human_bytes, human_seconds, plan_config

    tot, parts = plan_config(config, kind=kind, measure=measure, tokens_per_s=tokens_per_s)
    if as_json:
        click.echo(json.dumps({"total": tot.to_dict(), "parts": [p.to_dict() for p in parts]},
                              indent=2))
        return
    table = Table("job", "records", "tokens (padded)", "TFLOP", "cache", "memory/device", "time",
                  title=f"afscope plan: {config}")
    for p in [*parts, tot]:
        cache = human_bytes(p.cache_bytes)
        if p.cache_bytes_upper > p.cache_bytes:
            cache += f" (≤ {human_bytes(p.cache_bytes_upper)})"
        table.add_row(p.what, str(p.records), f"{p.tokens:,} ({p.padded_tokens:,})",
                      f"{p.flops / 1e12:.3g}", cache, human_bytes(p.memory_bytes),
                      human_seconds(p.seconds))
    out = console if not console.quiet else None
    if out is not None:
        out.print(table)
        if tot.rate_source:
            out.print(f"time from: {tot.rate_source}")
        for note in tot.notes:
            out.print(f"note: {note}")
