"""``afscope generate [run|merge]``: batched (optionally steered) generation of a prompt file,
resumable and shardable (``--shard i/n``, torchrun / accelerate launch, Slurm arrays)."""

from __future__ import annotations

from pathlib import Path

import click

from afscope.cli import console
from afscope.cli.options import DefaultGroup, config_command, launch_config, quiet_unless_main
from afscope.generate.config import GenerateConfig


@click.group("generate", cls=DefaultGroup)
def command() -> None:
    """Generate answers for a prompt file (`afscope generate --prompts F` runs `generate run`;
    rerun to resume; shards merge into one file)."""


@command.command("run")
@config_command(GenerateConfig)
def run(cfg: GenerateConfig) -> None:
    """Generate answers for --prompts into OUT/generations.jsonl (rerun to resume; --shard i/n).

    Under torchrun / accelerate launch every rank generates its share on its own device and rank
    0 merges the shards into OUT/generations.jsonl (rows in prompt-file order, the file one
    process writes). In a Slurm job array run `afscope generate merge OUT` after the array.
    """
    from afscope.distributed import launched
    from afscope.generate.run import merge_generations, run_generate
    from afscope.models import load_model

    with launched(cfg.shard) as launch:
        quiet_unless_main(launch)
        mine = launch_config(cfg, launch)
        lm = load_model(mine.model, dtype=mine.dtype, device=mine.device)
        steering, info = None, None
        if mine.steer is not None:
            from afscope.fileio import sha256_file
            from afscope.generate import Steering
            from afscope.steer import load_vector
            from afscope.steer.vectors import VECTOR_FILE

            vec = load_vector(mine.steer, model=lm.info)
            layers = mine.layers if mine.layers is not None else vec.layers
            steering = Steering({i: vec.at(i) for i in layers}, alpha=mine.alpha,
                                positions=mine.positions)
            file = mine.steer if mine.steer.is_file() else mine.steer / VECTOR_FILE
            info = {"path": str(mine.steer), "sha256": sha256_file(file), "layers": layers}
        path, stats = run_generate(mine, lm=lm, steering=steering, steering_info=info)
        if launch.collective:
            launch.barrier()  # every rank's rows are on disk
            if not launch.is_main:
                return
            path = merge_generations(cfg.out, config=mine.model_copy(update={"shard": None}),
                                     count=launch.count)
    done = f"generated {stats.done} rows ({stats.skipped} already done)"
    if launch.collective:
        done = f"rank 0 {done}; merged {launch.count} shards"
    elif launch.shard is not None:
        done += (f" for shard {launch.spec} (when all shards are done: afscope generate merge "
                 f"{cfg.out})")
    console.print(f"{done}\n{path}", highlight=False)


@command.command("merge")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--shards", type=int, default=None,
              help="Shard count of the run to merge (default: the one found in OUT).")
def merge(out: Path, shards: int | None) -> None:
    """Join OUT/generations.shard-i-of-n.jsonl into OUT/generations.jsonl (prompt-file order)."""
    from afscope.generate.run import merge_generations

    path = merge_generations(out, count=shards)
    console.print(f"merged into {path}", highlight=False)
