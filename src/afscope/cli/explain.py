"""``afscope explain data|train|eval|scaling``: the introspective explainer (seed 000)."""

from __future__ import annotations

import click

from afscope.cli import console
from afscope.cli.options import config_command
from afscope.explain.config import (
    ExplainDataConfig,
    ExplainEvalConfig,
    ExplainScalingConfig,
    ExplainTrainConfig,
)


@click.group("explain")
def command() -> None:
    """Train and evaluate an explainer of AF behaviour and features (seed 000)."""


@command.command("data")
@config_command(ExplainDataConfig)
def data(cfg: ExplainDataConfig) -> None:
    """Build a task folder (context_ablation | steering | features) from a counterfactual dataset
    or from feature descriptions + an SAE."""
    from afscope.explain.data import build_task_data

    out, stats = build_task_data(cfg)
    lines = [f"{cfg.task}: {stats['train']['n_examples']} train / {stats['test']['n_examples']} "
             f"test examples ({stats['train']['n_units']} / {stats['test']['n_units']} units), "
             f"{stats['n_vectors']} vectors, {stats['n_skipped']} skipped"]
    lines += [f"[yellow]warning:[/] {w}" for w in stats["warnings"]]
    console.print("\n".join([*lines, str(out)]), highlight=False)


@command.command("train")
@config_command(ExplainTrainConfig)
def train(cfg: ExplainTrainConfig) -> None:
    """LoRA-train an explainer (peft + HF Trainer): answer-only weighted loss, eval every N steps,
    early stopping, best checkpoint, --resume.

    Under torchrun / accelerate launch the ranks train together (DDP, each on its own device
    unless --device is given); --batch-size stays the global batch, and rank 0 writes OUT.
    """
    from afscope.cli.options import training_config
    from afscope.explain.train import train_explainer

    cfg, launch = training_config(cfg)
    out, s = train_explainer(cfg)
    if not launch.is_main:
        return
    best = s["best_eval"]
    console.print(
        f"{s['steps']} steps on {s['n_train']} examples ({s['n_val']} validation, "
        f"{s['n_dropped']} too long), loss {s['first_loss']:.3f} -> {s['last_loss']:.3f}"
        + (f", best validation {s['best_metric']} {best:.3f} ({s['best_checkpoint']})"
           if best is not None
           else "")
        + f"\n{s['tokens_per_s']:,.0f} tokens/s, {s['trainable_params']:,} trainable params"
        + ("\nstopped early" if s["stopped_early"] else "") + f"\n{out}", highlight=False)


@command.command("eval")
@config_command(ExplainEvalConfig)
def evaluate(cfg: ExplainEvalConfig) -> None:
    """Score explainers on held-out examples against zero-shot, few-shot, nearest-neighbour and
    the no/shuffled/random-vector controls (one table, CIs)."""
    from rich.table import Table

    from afscope.explain.evaluate import METRICS_FILE, evaluate_explainers, headline

    out, result = evaluate_explainers(cfg)
    for task in sorted({r["task"] for r in result["table"]}):
        rows = [r for r in result["table"] if r["task"] == task]
        t = Table(title=f"explainer: {task} (held-out, 95% CI)")
        for col in ("explainer", "relation", "condition", "n"):
            t.add_column(col)
        for title, _ in headline(rows[0]):
            t.add_column(title)
        for r in rows:
            cells = [f"{v[0]:.2f} [{v[1]:.2f}, {v[2]:.2f}]" if v else "n/a"
                     for _, v in headline(r)]
            t.add_row(r["explainer"], r["relation"], r["condition"], str(r["n"]), *cells)
        console.print(t)
    console.print(str(out / METRICS_FILE), highlight=False)


@command.command("scaling")
@config_command(ExplainScalingConfig)
def scaling(cfg: ExplainScalingConfig) -> None:
    """A data-scaling curve: one explainer per training-set size (--sizes 16,64,256), all scored
    on the same held-out examples beside the baselines (OUT/scaling.json; the report plots it)."""
    from rich.table import Table

    from afscope.explain.scaling import SCALING_FILE, run_scaling

    out, result = run_scaling(cfg)
    t = Table(title="explainer data scaling (held-out, 95% CI)")
    for col in ("task", "condition", "units/task", "train examples", "metric", "value"):
        t.add_column(col)
    for p in result["points"]:
        t.add_row(p["task"], p["condition"], str(p["size"]), str(p["n_train"]), p["metric"],
                  f"{p['value']:.2f} [{p['lo']:.2f}, {p['hi']:.2f}]")
    console.print(t)
    console.print(str(out / SCALING_FILE), highlight=False)
