"""``afscope extract [run|merge|export]``: the activation cache."""

from __future__ import annotations

from pathlib import Path

import click

from afscope.cli import console
from afscope.cli.options import DefaultGroup, config_command, launch_config, quiet_unless_main
from afscope.extract.config import ExtractConfig


@click.group("extract", cls=DefaultGroup)
def command() -> None:
    """Cache pooled residual activations of a model over a dataset (resumable, shardable)."""


@command.command("run")
@config_command(ExtractConfig)
def run(cfg: ExtractConfig) -> None:
    """Extract (or resume) the cache at --out.

    Under torchrun / accelerate launch every rank extracts its share of the chunks into --out on
    its own device, and rank 0 checks and seals the cache when all are done. In a Slurm job array
    each task extracts its share; run `afscope extract merge OUT` after the array.
    """
    from afscope.distributed import launched
    from afscope.extract.runner import merge_shards

    if cfg.sae:
        from afscope.sae import extract_with_sae as run_extract
    else:
        from afscope.extract import extract as run_extract

    with launched(cfg.shard) as launch:
        quiet_unless_main(launch)
        mine = launch_config(cfg, launch)
        cache = run_extract(mine)
        if launch.collective:
            launch.barrier()  # every rank's chunks are on disk
            if not launch.is_main:
                return
            whole = mine.model_copy(update={"shard": None}).to_dict()
            cache = merge_shards([cfg.out], cfg.out, config=whole, count=launch.count)
    if cache is None:
        console.print(f"shard {launch.spec} done: {cfg.out} (when all shards are done: "
                      f"afscope extract merge {cfg.out})", highlight=False)
    else:
        console.print(f"cache complete: {cfg.out}  ({cache.n_records} records x layers "
                      f"{cache.layers} x {cache.pools}, d={cache.d_model})", highlight=False)


@command.command("merge")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Merged cache dir (default: the one SOURCE, when all shards wrote into it).")
def merge(sources: tuple[Path, ...], out: Path | None) -> None:
    """Join the shards of a sharded extract (--shard i/n, Slurm array tasks) into one cache."""
    from afscope.errors import ConfigError
    from afscope.extract.runner import merge_shards

    if out is None:
        if len(sources) != 1:
            raise ConfigError("extract merge: give --out when merging several directories")
        out = sources[0]
    cache = merge_shards(list(sources), out)
    console.print(f"merged {len(sources)} cache(s) into {out}: {cache.n_records} records, "
                  f"{cache.index['n_chunks']} chunks", highlight=False)


@command.command("export")
@click.argument("cache", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for .npy.")
def export(cache: Path, out: Path) -> None:
    """Write dense (n_samples, d) .npy arrays per layer and pooling, like the seeds' files."""
    from afscope.extract import ActivationCache

    for path in ActivationCache(cache).export_npy(out):
        console.print(str(path))
