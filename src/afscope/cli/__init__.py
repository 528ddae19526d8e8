"""The ``afscope`` command line: one subcommand group per component of MISSION.md.

Every subcommand is driven by a validated config (YAML + flag overrides) and writes a run directory
with a manifest. Errors of the user's input exit with code 2 and one clear message.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler

from afscope.errors import AfscopeError

console = Console(stderr=True)


def _error(text: str) -> None:
    console.print("[bold red]error:[/]", end=" ")
    console.print(text, highlight=False, markup=False, emoji=False, soft_wrap=True)


class _Group(click.Group):
    """No raw tracebacks: :class:`AfscopeError` is one line and exit code 2; a missing optional
    package is one line naming the extra (exit 2); any other exception is one line plus the path
    of a log file holding the traceback (in the failing run's directory), exit code 1. ``-v``
    prints the traceback too."""

    def invoke(self, ctx: click.Context) -> Any:
        from afscope.runs import last_error_log, write_error_log

        last_error_log()  # forget a log of an earlier invocation in this process
        try:
            return super().invoke(ctx)
        except AfscopeError as e:
            _error(str(e))
            sys.exit(2)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:
            hint = missing_package_hint(e.name or "") if isinstance(e, ModuleNotFoundError) else None
            if hint is not None:
                _error(hint)
                sys.exit(2)
            log = last_error_log() or write_error_log(_fallback_log(), e)
            _error(f"{type(e).__name__}: {e}".strip().splitlines()[0][:500]
                   + f" (unexpected; traceback in {log}; -v prints it)")
            if ctx.params.get("verbose") or (ctx.obj or {}).get("verbose"):
                console.print_exception()
            sys.exit(1)


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
    if quiet:  # tqdm bars of transformers / huggingface_hub / datasets
        import os

        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    ctx.obj = {"quiet": quiet, "verbose": verbose}


EXTRAS = {"sae_lens": ("sae-lens", "saelens"), "selenium": ("selenium", "dev"),
          "pytest": ("pytest", "dev")}
"""Optional modules: ``module -> (distribution, extra of afscope that installs it)``."""


def missing_package_hint(module: str) -> str | None:
    """One line for a module that is not installed: the extra that installs it, or (a declared
    dependency gone missing) how to reinstall. None for afscope's own and standard modules."""
    top = module.split(".")[0]
    if not top or top == "afscope" or top in sys.stdlib_module_names:
        return None
    if top in EXTRAS:
        dist, extra = EXTRAS[top]
        return (f"this needs the optional package {dist}: pip install 'afscope[{extra}]' "
                f"(or pip install {dist})")
    return (f"the module {top!r} is not installed in {sys.prefix}, although afscope depends on "
            f"it: reinstall afscope there (pip install -e '.[dev]' in the checkout)")


def _fallback_log() -> Path:
    """Where the traceback goes when the failure came before any run directory existed."""
    import datetime as dt
    import os

    from afscope.models.embedded import cache_root

    return (cache_root().parent / "logs"
            / f"error-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log")


def _register() -> None:
    from afscope.cli import (
        counterfactual,
        data,
        demo,
        doctor,
        explain,
        extract,
        features,
        generate,
        interop,
        judge,
        lab,
        models,
        organism,
        plan,
        probe,
        report,
        sae,
        steer,
        study,
    )

    for mod in (data, models, generate, extract, sae, probe, features, judge, steer, organism,
                counterfactual, explain, interop, lab, study, plan, report, demo, doctor):
        main.add_command(mod.command)


_register()
