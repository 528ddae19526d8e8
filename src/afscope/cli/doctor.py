"""``afscope doctor``: versions, devices, disk, models, browser and LLM backends, in one table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.table import Table

from afscope.cli import console

_SHOWN = ("torch", "transformers", "peft")
_STYLE = {"ok": "green", "missing": "bold red", "optional": "yellow", "info": "cyan"}


@click.command("doctor")
@click.option("--runs", "run_root", type=click.Path(path_type=Path), default=Path("runs"),
              show_default=True, help="Where run directories go (checked for free disk).")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON on stdout.")
def command(run_root: Path, as_json: bool) -> None:
    """Check this machine for every afscope command; exit 1 if something a command needs is
    missing (optional features that are off are listed, not failed)."""
    from afscope.doctor import diagnose

    d = diagnose(run_root)
    if as_json:
        click.echo(json.dumps(d.to_dict(), indent=2))
    else:
        table = Table("", "check", "found", "status", "needed by / hint", title="afscope doctor")
        quiet_ok = [c for c in d.checks if c.group == "package" and c.status == "ok"
                    and c.name not in _SHOWN]
        for c in d.checks:
            if c in quiet_ok:
                continue
            note = "; ".join(x for x in (c.needed_by, c.hint) if x)
            table.add_row(c.group, c.name, c.found, f"[{_STYLE[c.status]}]{c.status}[/]", note)
            if c.name == _SHOWN[-1] and quiet_ok:
                table.add_row("package", f"{len(quiet_ok)} more",
                              ", ".join(f"{q.name} {q.found}" for q in quiet_ok), "[green]ok[/]", "")
        console.print(table)
        for c in d.missing:
            console.print(f"[bold red]missing:[/] {c.name} ({c.found}) -> {c.needed_by}"
                          + (f": {c.hint}" if c.hint else ""), highlight=False)
        if not d.missing:
            console.print("[green]nothing missing[/]")
    if d.missing:
        sys.exit(1)
