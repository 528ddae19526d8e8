"""The ``afscope`` command line: one subcommand group per component of MISSION.md.

Every subcommand is driven by a validated config (YAML + flag overrides) and writes a run directory
with a manifest. Errors of the user's input exit with code 2 and one clear message.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler

from afscope.errors import AfscopeError

console = Console(stderr=True)


class _Group(click.Group):
    """Turns :class:`AfscopeError` into one line on stderr and exit code 2 (no traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AfscopeError as e:
            console.print("[bold red]error:[/]", end=" ")
            console.print(str(e), highlight=False, markup=False, emoji=False, soft_wrap=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or summaries; errors only.")
@click.version_option(package_name="afscope")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """afscope: detect, describe, steer and explain alignment faking from a model's activations."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=console)],
                        force=True)
    from afscope import progress

    progress.set_quiet(quiet)
    ctx.obj = {"quiet": quiet}


def _register() -> None:
    from afscope.cli import (
        counterfactual,
        data,
        demo,
        explain,
        extract,
        features,
        generate,
        judge,
        lab,
        models,
        organism,
        probe,
        report,
        sae,
        steer,
        study,
    )

    for mod in (data, models, generate, extract, sae, probe, features, judge, steer, organism,
                counterfactual, explain, lab, study, report, demo):
        main.add_command(mod.command)


_register()
