"""``afscope extract [run|merge|export]``: the activation cache."""

from __future__ import annotations

from pathlib import Path

import click

from afscope.cli import console
from afscope.cli.options import config_command
from afscope.extract.config import ExtractConfig


class _DefaultGroup(click.Group):
    """``afscope extract --model ...`` means ``afscope extract run --model ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("extract", cls=_DefaultGroup)
def command() -> None:
    """Cache pooled residual activations of a model over a dataset (resumable, shardable)."""


@command.command("run")
@config_command(ExtractConfig)
def run(cfg: ExtractConfig) -> None:
    """Extract (or resume) the cache at --out."""
    if cfg.sae:
        from afscope.sae import extract_with_sae as run_extract
    else:
        from afscope.extract import extract as run_extract

    cache = run_extract(cfg)
    if cache is None:
        console.print(f"shard {cfg.shard} done: {cfg.out} (merge when all shards finish)")
    else:
        console.print(f"cache complete: {cfg.out}  ({cache.n_records} records x layers "
                      f"{cache.layers} x {cache.pools}, d={cache.d_model})")


@command.command("merge")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Merged cache dir.")
def merge(sources: tuple[Path, ...], out: Path) -> None:
    """Join the caches of --shard i/n runs into one."""
    from afscope.extract import merge_caches

    merge_caches(list(sources), out)
    console.print(f"merged {len(sources)} caches into {out}")


@command.command("export")
@click.argument("cache", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for .npy.")
def export(cache: Path, out: Path) -> None:
    """Write dense (n_samples, d) .npy arrays per layer and pooling, like the seeds' files."""
    from afscope.extract import ActivationCache

    for path in ActivationCache(cache).export_npy(out):
        console.print(str(path))
