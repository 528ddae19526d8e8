"""``afscope generate``: batched (optionally steered) generation of a prompt file, resumable."""

from __future__ import annotations

import click

from afscope.cli import console
from afscope.cli.options import config_command
from afscope.generate.config import GenerateConfig


@click.command("generate")
@config_command(GenerateConfig)
def command(cfg: GenerateConfig) -> None:
    """Generate answers for --prompts into OUT/generations.jsonl (rerun to resume; --shard i/n)."""
    from afscope.generate.run import run_generate
    from afscope.models import load_model

    lm = load_model(cfg.model, dtype=cfg.dtype, device=cfg.device)
    steering, info = None, None
    if cfg.steer is not None:
        from afscope.fileio import sha256_file
        from afscope.generate import Steering
        from afscope.steer import load_vector
        from afscope.steer.vectors import VECTOR_FILE

        vec = load_vector(cfg.steer, model=lm.info)
        layers = cfg.layers if cfg.layers is not None else vec.layers
        steering = Steering({i: vec.at(i) for i in layers}, alpha=cfg.alpha, positions=cfg.positions)
        file = cfg.steer if cfg.steer.is_file() else cfg.steer / VECTOR_FILE
        info = {"path": str(cfg.steer), "sha256": sha256_file(file), "layers": layers}
    path, stats = run_generate(cfg, lm=lm, steering=steering, steering_info=info)
    console.print(f"generated {stats.done} rows ({stats.skipped} already done)\n{path}",
                  highlight=False)
