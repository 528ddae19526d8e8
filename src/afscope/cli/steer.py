"""``afscope steer vector diffmean|refusal|random|probe|sae``, ``steer sweep``, ``steer judge``, ``steer plot``."""

from __future__ import annotations

from pathlib import Path

import click

from afscope.cli import console
from afscope.cli.options import config_command
from afscope.steer.config import (
    DiffMeanConfig,
    ProbeVectorConfig,
    RandomVectorConfig,
    RefusalVectorConfig,
    SAEVectorConfig,
    SteerJudgeConfig,
    SweepConfig,
)


@click.group("steer")
def command() -> None:
    """Build steering vectors; sweep layers x alphas x prompts; judge and plot (seed 003)."""


@command.group("vector")
def vector() -> None:
    """Build a steering vector file (OUT/vector.safetensors)."""


def _report_vector(path: Path) -> None:
    from afscope.steer import load_vector

    vec = load_vector(path)
    norms = ", ".join(f"L{k}: {v:.3g}" for k, v in vec.norms.items())
    console.print(f"{vec.source} vector for {vec.model or vec.model_fingerprint}, layers "
                  f"{vec.layers} (norms {norms})\n{path}", highlight=False)


@vector.command("diffmean")
@config_command(DiffMeanConfig)
def diffmean(cfg: DiffMeanConfig) -> None:
    """Mean residual activation of --data-a minus --data-b (or AF minus non-AF of --data-a)."""
    from afscope.steer import run_diffmean

    _report_vector(run_diffmean(cfg))


@vector.command("refusal")
@config_command(RefusalVectorConfig)
def refusal(cfg: RefusalVectorConfig) -> None:
    """Refusal direction: harmful minus harmless requests at the last prompt token."""
    from afscope.steer import run_refusal

    _report_vector(run_refusal(cfg))


@vector.command("random")
@config_command(RandomVectorConfig)
def random(cfg: RandomVectorConfig) -> None:
    """Seeded random directions with --like's layers and norms (the steering control)."""
    from afscope.steer import run_random

    _report_vector(run_random(cfg))


@vector.command("probe")
@config_command(ProbeVectorConfig)
def probe(cfg: ProbeVectorConfig) -> None:
    """A residual probe's weights mapped to raw activations (coef/scale), unit norm."""
    from afscope.steer import run_probe_vector

    _report_vector(run_probe_vector(cfg))


@vector.command("sae")
@config_command(SAEVectorConfig)
def sae(cfg: SAEVectorConfig) -> None:
    """The decoder direction W_dec[--feature] of an SAE latent."""
    from afscope.steer import run_sae_vector

    _report_vector(run_sae_vector(cfg))


def _report_summary(summary: dict, run_dir: Path) -> None:
    from afscope.steer.summary import primary_metric

    key, label = primary_metric(summary)
    for c in summary["conditions"]:
        s = c.get(key)
        value = "n/a" if not s else f"{s['mean']:.3g} [{s['lo']:.3g}, {s['hi']:.3g}]"
        console.print(f"  {c['name']:<40} n={c['n']:<4} {label}: {value}", highlight=False)
    console.print(f"summary: {run_dir / 'summary.json'}\nplots: {run_dir / 'plots'}",
                  highlight=False)


@command.command("sweep")
@config_command(SweepConfig)
def sweep(cfg: SweepConfig) -> None:
    """Generate under every vector x layer x alpha (+ baseline), judge, summarize and plot.

    Under torchrun / accelerate launch every rank generates its share of the rows on its own
    device and rank 0 finishes the run (takes the shards in, judges, summarizes, plots). In a
    Slurm job array each task generates its share; then run the same command once as one process.
    """
    from afscope.cli.options import quiet_unless_main
    from afscope.distributed import launched
    from afscope.steer import run_sweep

    with launched(None) as launch:
        quiet_unless_main(launch)
        given = cfg.device if "device" in cfg.model_fields_set else None
        mine = cfg.model_copy(update={"device": launch.device(given)})
        summary = run_sweep(mine, shard=launch.spec)
        if launch.collective:
            launch.barrier()  # every rank's generations are on disk
            if not launch.is_main:
                return
            summary = run_sweep(mine)
    if summary is None:
        console.print(f"shard {launch.spec} done: {cfg.out} (when all shards are done, run the "
                      "same command once as one process to finish)", highlight=False)
        return
    _report_summary(summary, Path(cfg.out))


@command.command("judge")
@click.argument("run_dir_arg", metavar="RUN_DIR", required=False,
                type=click.Path(path_type=Path))
@config_command(SteerJudgeConfig)
def judge(cfg: SteerJudgeConfig, run_dir_arg: Path | None) -> None:
    """(Re-)judge the generations of a sweep RUN_DIR, then re-summarize and re-plot."""
    from afscope.steer import run_judge

    if run_dir_arg is not None:
        cfg.run_dir = run_dir_arg
    _report_summary(run_judge(cfg), Path(cfg.run_dir))  # type: ignore[arg-type]


@command.command("plot")
@click.argument("run_dir", type=click.Path(path_type=Path))
def plot(run_dir: Path) -> None:
    """Redraw the plots of a sweep RUN_DIR from summary.json and the judged rows."""
    from afscope.steer import run_plot

    paths = run_plot(run_dir)
    console.print(f"{len(paths)} plots in {run_dir / 'plots'}", highlight=False)
