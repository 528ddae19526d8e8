"""``afscope demo``: run the pipeline on the embedded defaults and print where the results are."""

from __future__ import annotations

import click

from afscope.cli import console
from afscope.cli.options import config_command
from afscope.demo import DemoConfig


@click.command("demo")
@config_command(DemoConfig)
@click.pass_context
def command(ctx: click.Context, cfg: DemoConfig) -> None:
    """Synthetic corpus -> split -> activation cache on an embedded model -> summary."""
    from afscope.demo import run_demo

    summary = run_demo(cfg)
    if not ctx.obj.get("quiet"):
        from rich.markdown import Markdown

        console.print(Markdown(summary.read_text(encoding="utf-8")))
    click.echo(str(summary))
