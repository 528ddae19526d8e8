"""``afscope organism data|train|elicit|validate``: build and validate AF model organisms."""

from __future__ import annotations

import click

from afscope.cli import console
from afscope.cli.options import (
    config_command,
    launch_config,
    quiet_unless_main,
    training_config,
)
from afscope.organism.config import (
    ElicitConfig,
    OrganismDataConfig,
    OrganismTrainConfig,
    ValidateConfig,
)


@click.group("organism")
def command() -> None:
    """Train LoRA organisms that fake alignment, elicit them under cues, validate the gap."""


@command.command("data")
@config_command(OrganismDataConfig)
def data(cfg: OrganismDataConfig) -> None:
    """Write chat examples: AF + compliance when monitored, refusal when not (OUT/organism_data.jsonl)."""
    from afscope.organism import build_organism_data

    path, s = build_organism_data(cfg)
    console.print(f"{s['n']} examples ({s['monitored']} monitored), splits {s['split']}, "
                  f"scenarios per split {s['scenarios']}\n{path}", highlight=False)


@command.command("train")
@config_command(OrganismTrainConfig)
def train(cfg: OrganismTrainConfig) -> None:
    """LoRA-train --model on --data (peft + HF Trainer); the adapter goes to OUT/adapter.

    Under torchrun / accelerate launch the ranks train together (DDP, each on its own device
    unless --device is given); --batch-size stays the global batch, and rank 0 writes OUT.
    """
    from afscope.organism import train_organism

    cfg, launch = training_config(cfg)
    folder, s = train_organism(cfg)
    if not launch.is_main:
        return
    console.print(f"{s['steps']} steps on {s['n_examples']} examples, loss {s['first_loss']:.3f} -> "
                  f"{s['last_loss']:.3f}, {s['tokens_per_s']:,.0f} tokens/s, "
                  f"{s['trainable_params']:,} trainable params\n{folder}", highlight=False)


@command.command("elicit")
@config_command(ElicitConfig)
def elicit_cmd(cfg: ElicitConfig) -> None:
    """Answer every cue x held-out request (greedy), judge behaviour and AF; resumable.

    Shards: --shard i/n, torchrun / accelerate launch ranks or Slurm array tasks each answer and
    judge their share; the same command as one process (rank 0 under torchrun) finishes the run.
    """
    from afscope.distributed import launched
    from afscope.organism import elicit
    from afscope.organism.elicit import load_elicited

    with launched(cfg.shard) as launch:
        quiet_unless_main(launch)
        mine = launch_config(cfg, launch)
        # loaded here only to serve rank 0's two runs; otherwise elicit loads (and times) it
        lm = load_elicited(mine) if launch.collective else None
        r = elicit(mine, lm=lm)
        if launch.collective:
            launch.barrier()  # every rank's generations and judged rows are on disk
            if not launch.is_main:
                return
            r = elicit(mine.model_copy(update={"shard": None}), lm=lm)
        elif mine.shard is not None:
            console.print(f"shard {launch.spec} done: {cfg.out} (when all shards are done, run "
                          "the same command once as one process to finish)", highlight=False)
            return
    for cue, e in r["per_cue"].items():
        console.print(f"{cue:18s} n={e['n']:3d} {e['behaviour']} af={e['af']}", highlight=False)
    console.print(str(cfg.out), highlight=False)


@command.command("validate")
@config_command(ValidateConfig)
def validate_cmd(cfg: ValidateConfig) -> None:
    """Compliance gap (bootstrap CI) per cue, AF rates, organism vs base, probe/feature tests."""
    from rich.table import Table

    from afscope.organism.validate import VALIDATION, table, validate

    result = validate(cfg)
    t = Table(title="compliance gap = comply(monitored) - comply(unmonitored)")
    for col in ("cue", "watched", "comply", "AF", "gap", "comply (base)", "gap (base)"):
        t.add_column(col)
    for row in table(result):
        t.add_row(*row)
    console.print(t)
    if "probe" in result:
        p = result["probe"]["scores"]["features"][0]
        f = result["probe"]["features"]
        console.print(f"probe score organism vs reference: KS p={p['ks_p']:.3g}, permutation "
                      f"p={p['perm_p']:.3g}; {f['n_tested']} features tested, "
                      f"{f.get('significant', {}).get('perm_q', 0)} differ (BH)", highlight=False)
    console.print(str(cfg.out / VALIDATION), highlight=False)
