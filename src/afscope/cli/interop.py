"""``afscope export|import introspective-interp``: data for and from TransluceAI's
introspective-interp (see :mod:`afscope.interop.introspective`).

This module defines two top-level groups: ``command`` (``export``), registered by
:func:`afscope.cli._register` like every module's, and ``import_command`` (``import``), added to
the main group at the bottom of this module.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from afscope.cli import console, main
from afscope.cli.options import config_command
from afscope.errors import ConfigError
from afscope.interop.config import IIExportConfig, IIImportConfig


@click.group("export")
def command() -> None:
    """Export afscope data in other tools' formats."""


@command.command("introspective-interp")
@click.argument("src_arg", required=False, metavar="RUN_OR_TASK_DIR",
                type=click.Path(path_type=Path))
@config_command(IIExportConfig)
def export_ii(cfg: IIExportConfig, src_arg: Path | None) -> None:
    """Write a counterfactual run (context -> hint_attribution, steering -> act_patch) or a
    features task folder (-> features_explain) as folders introspective-interp's loaders read
    unchanged; export.json says what loads and what cannot."""
    from afscope.interop.introspective import CONFIG_FILE, EXPORT_FILE, export_introspective

    if src_arg is not None:
        cfg.source = src_arg
    if cfg.source is None:
        raise ConfigError("export introspective-interp: give the RUN_OR_TASK_DIR (positional or "
                          "--source)")
    out, s = export_introspective(cfg)
    lines = [f"{s['task']}: {s['n_rows']['train']} train / {s['n_rows']['test']} test rows"]
    lim = s["prompt_limit"]
    for split in ("train", "test"):
        if split in lim and lim[split]["n_over"]:
            lines.append(f"[yellow]warning:[/] {lim[split]['n_over']} of "
                         f"{lim[split]['n_prompts']} {split} prompts are over {lim['limit']} "
                         "tokens: introspective-interp skips them")
    lines += [f"cannot: {escape(c)}" for c in s["cannot"]]
    lines += [escape(str(out / EXPORT_FILE)), escape(str(out / CONFIG_FILE))]
    console.print("\n".join(lines), highlight=False)


@click.group("import")
def import_command() -> None:
    """Import other tools' released datasets as afscope task folders."""


@import_command.command("introspective-interp")
@click.argument("src_arg", required=False, metavar="SRC", type=click.Path(path_type=Path))
@config_command(IIImportConfig)
def import_ii(cfg: IIImportConfig, src_arg: Path | None) -> None:
    """Read a released introspective-interp dataset (hint_attribution, act_patch, or a
    features_explain explanation_dir with --trust-pickle) into an afscope task folder."""
    from afscope.interop.introspective import import_introspective

    if src_arg is not None:
        cfg.source = src_arg
    if cfg.source is None:
        raise ConfigError("import introspective-interp: give the dataset folder SRC (positional "
                          "or --source)")
    out, stats = import_introspective(cfg)
    lines = [f"{stats['source']['task']} -> {stats['task']}: {stats['train']['n_examples']} "
             f"train / {stats['test']['n_examples']} test examples, {stats['n_vectors']} vectors, "
             f"{stats['n_skipped']} skipped", f"note: {escape(stats['note'])}"]
    lines += [f"[yellow]warning:[/] {escape(w)}" for w in stats["warnings"]]
    console.print("\n".join([*lines, escape(str(out))]), highlight=False)


main.add_command(import_command)
