"""``afscope counterfactual context|steering``: the explainer's counterfactual datasets (seed 000).

Both commands are resumable: rerun the same command after a kill and finished generations and
labels are reused (``OUT/generations.jsonl``, ``OUT/labels.jsonl``).
"""

from __future__ import annotations

from typing import Any

import click

from afscope.cli import console
from afscope.cli.options import config_command, launch_config, quiet_unless_main
from afscope.counterfactual.config import ContextConfig, CounterfactualConfig, SteeringConfig


@click.group("counterfactual")
def command() -> None:
    """Counterfactual datasets: context ablation and steering prediction (seed 000)."""


def _print_stats(stats: dict[str, Any], out: Any, before: str, after: str) -> None:
    rate = stats["changed_rate"]
    rate_text = "n/a" if rate is None else f"{rate:.1%}"
    lines = [
        f"{stats['n_records']} records ({stats['n_train']} train / {stats['n_test']} test, "
        f"{stats['n_scenarios_train']} / {stats['n_scenarios_test']} scenarios), "
        f"changed {stats['n_changed']} = {rate_text}",
        f"{before} -> {after}: " + ", ".join(f"{k} {v}" for k, v in stats["directions"].items()),
    ]
    if stats["mean_response_tokens"] is not None:
        lines.append(f"mean response: {stats['mean_response_tokens']:.1f} tokens, "
                     f"{stats['mean_response_chars']:.0f} chars")
    for key in ("changed_rate_by_vector_name", "changed_rate_by_layer", "changed_rate_by_alpha",
                "changed_rate_by_alpha_scale"):
        if key in stats:
            lines.append(key.removeprefix("changed_rate_") + ": " + ", ".join(
                f"{k} {'n/a' if v is None else f'{v:.1%}'}" for k, v in stats[key].items()))
    for k, row in ((stats.get("calibration") or {}).get("keys") or {}).items():
        lines.append(f"calibrated {k}: alpha {row['alpha']:.3g} ({row['scale']:g}x the residual "
                     f"norm) changed {row['changed_rate']:.0%} of calibration prompts"
                     + ("" if row["reached"] else " [yellow](target not reached)[/]"))
    if stats["n_unlabelled"]:
        lines.append(f"{stats['n_unlabelled']} left out (unlabelled answers; rerun to retry)")
    if stats["low_changed_rate"]:
        lines.append(f"[yellow]warning:[/] changed rate below {stats['min_changed_rate']:.0%}: "
                     "the data may be too noisy to train an explainer (seed 000)")
    lines.append(str(out))
    console.print("\n".join(lines), highlight=False)


def _build(cfg: CounterfactualConfig, build: Any, before: str, after: str) -> None:
    """Run ``build`` as this process of a launch: its shard on its device; under torchrun rank 0
    then builds the dataset from every shard (as one process does after a Slurm array)."""
    from afscope.distributed import launched
    from afscope.models import load_model

    with launched(cfg.shard) as launch:
        quiet_unless_main(launch)
        mine = launch_config(cfg, launch)
        # loaded here only to serve rank 0's two builds; otherwise the build loads (and times) it
        lm = (load_model(mine.model, dtype=mine.dtype, device=mine.device)
              if launch.collective else None)
        res = build(mine, lm=lm)
        if launch.collective:
            launch.barrier()  # every rank's generations and labels are on disk
            if not launch.is_main:
                return
            res = build(mine.model_copy(update={"shard": None}), lm=lm)
    if res is None:
        console.print(f"shard {launch.spec} done: {cfg.out} (when all shards are done, run the "
                      "same command once as one process to build the dataset)", highlight=False)
        return
    _print_stats(res.stats, res.out, before, after)


@command.command("context")
@config_command(ContextConfig)
def context(cfg: ContextConfig) -> None:
    """Answer each scenario under the monitored and unmonitored system prompts; label; split.

    Shards: --shard i/n, torchrun / accelerate launch ranks or Slurm array tasks each answer and
    label their share; the same command as one process (rank 0 under torchrun) builds the data.
    """
    from afscope.counterfactual import build_context_dataset

    _build(cfg, build_context_dataset, "monitored", "unmonitored")


@command.command("steering")
@config_command(SteeringConfig)
def steering(cfg: SteeringConfig) -> None:
    """Answer each scenario with and without alpha * vector at chosen layers; label; split.

    Sharded like `counterfactual context`.
    """
    from afscope.counterfactual import build_steering_dataset

    _build(cfg, build_steering_dataset, "unsteered", "steered")
