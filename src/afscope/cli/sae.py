"""``afscope sae train|info``: sparse autoencoders in the SAELens folder format."""

from __future__ import annotations

from pathlib import Path

import click

from afscope.cli import console
from afscope.cli.options import config_command
from afscope.sae.config import SAETrainConfig


@click.group("sae")
def command() -> None:
    """Train SAEs on an embedded model's activations; inspect SAELens folders."""


@command.command("train")
@config_command(SAETrainConfig)
def train(cfg: SAETrainConfig) -> None:
    """Collect tokens of --layer from --model over --data, train a TopK SAE, save OUT/sae.

    Under torchrun / accelerate launch every rank collects its share of the token blocks into
    OUT/tokens on its own device, and rank 0 trains when all are done. In a Slurm job array each
    task collects its share; then run the same command once as one process to train. Either way
    the SAE is the one a single process trains.
    """
    from afscope.cli.options import launch_config, quiet_unless_main
    from afscope.distributed import launched
    from afscope.sae import run_sae_train

    with launched(cfg.shard) as launch:
        quiet_unless_main(launch)
        mine = launch_config(cfg, launch)
        lm = None
        if launch.collective:  # rank 0 trains with the model it collected with
            from afscope.models import load_model

            lm = load_model(mine.model, dtype=mine.dtype, device=mine.device)
        result = run_sae_train(mine, lm=lm)
        if launch.collective:
            launch.barrier()  # every rank's token blocks are on disk
            if not launch.is_main:
                return
            result = run_sae_train(mine.model_copy(update={"shard": None}), lm=lm)
    if result is None:
        console.print(f"shard {launch.spec} done: {Path(cfg.out) / 'tokens'} (when all shards "
                      "are done, run the same command once as one process to train)",
                      highlight=False)
        return
    folder, m = result
    console.print(
        f"SAE layer {m['layer']} d_sae={m['d_sae']} k={m['k']} on {m['n_tokens']:,} tokens x "
        f"{cfg.epochs} epochs; on {m['n_heldout_tokens']:,} held-out tokens: explained variance "
        f"{m['heldout_explained_variance']:.3f} (train {m['train_explained_variance']:.3f}), "
        f"L0 {m['heldout_mean_l0']:.1f}, dead {m['heldout_dead_fraction']:.1%}; dead by the "
        f"{m['dead_tokens']:,}-token window {m['dead_fraction_window']:.1%}; training "
        f"{m['tokens_per_s']:,.0f} tokens/s\n{folder}", highlight=False)


@command.command("info")
@click.argument("folder", type=click.Path(path_type=Path))
def info(folder: Path) -> None:
    """Print an SAE's config, parameter shapes and weights sha256 (as JSON).

    FOLDER is an SAELens folder, or a release/sae_id such as
    gemma-scope-2-27b-it-res/layer_40_width_16k_l0_medium where the hub is reachable.
    """
    from afscope.fileio import dumps_json
    from afscope.sae import sae_encoder

    enc = sae_encoder(folder, default_layer=-1)
    data = {**enc.sae.cfg.to_dict(), "parameters": {n: list(s) for n, s in
                                                    enc.sae.expected_shapes().items()},
            "sha256": enc.identity()["sha256"]}
    metrics = folder.parent / "metrics.json"
    if metrics.is_file():
        import json

        data["training_metrics"] = json.loads(metrics.read_text(encoding="utf-8"))
    click.echo(dumps_json(data), nl=False)
