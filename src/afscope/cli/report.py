"""``afscope report RUN_DIR``: render a run's results as HTML and print the path of index.html."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Report folder (default RUN_DIR/report); replaced on every run.")
@click.option("--open/--no-open", "open_", default=False, show_default=True,
              help="Open index.html in the default web browser.")
def command(run_dir: Path, out: Path | None, open_: bool) -> None:
    """HTML report of RUN_DIR: results.json (ladder, OOD, plots, features) and behaviour.json."""
    from afscope.report import write_report

    index = write_report(run_dir, out)
    click.echo(str(index))
    if open_:
        import webbrowser

        webbrowser.open(index.resolve().as_uri())
