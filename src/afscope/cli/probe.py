"""``afscope probe train|eval|sweep``: linear probes on cached activations or SAE features."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from afscope.cli import console
from afscope.cli.options import config_command
from afscope.probe.config import ProbeEvalConfig, ProbeSweepConfig, ProbeTrainConfig


@click.group("probe")
def command() -> None:
    """Train, evaluate (held-out + OOD, with CIs) and sweep linear probes."""


def _ci(ci: dict | None) -> str:
    return "-" if ci is None else f"{ci['value']:.3f} [{ci['lo']:.3f}, {ci['hi']:.3f}]"


@command.command("train")
@config_command(ProbeTrainConfig)
def train(cfg: ProbeTrainConfig) -> None:
    """Fit a probe on --cache (layer, features), report CV AUROC, save OUT/probe."""
    from afscope.probe import cross_validate, fit_probe, save_probe
    from afscope.probe.inputs import load_matrix
    from afscope.runs import start_run

    with start_run("probe train", cfg.to_dict(), cfg.out) as run:
        m = load_matrix(cfg.cache, cfg.layer, cfg.features)
        run.add_dataset("train", {"cache": str(cfg.cache), "n": int(m.y.size),
                                  "n_pos": int(m.y.sum())})
        pcfg = cfg.probe_config()
        with run.timer("fit"):
            probe = fit_probe(m.X, m.y, pcfg, feature_space=m.space)
        folder = save_probe(probe, Path(cfg.out) / "probe")
        run.add_output("train_metrics", probe.train_metrics_)
        line = (f"{pcfg.method} on {cfg.features} L{cfg.layer}: {probe.n_nonzero} non-zero "
                f"weights of {m.X.shape[1]}, train AUROC {probe.train_metrics_['auroc']:.3f}")
        if cfg.cv_folds:
            with run.timer("cv"):
                cv = cross_validate(m.X, m.y, pcfg, folds=cfg.cv_folds, seed=pcfg.seed)
            run.add_output("cv", cv)
            line += f", {cfg.cv_folds}-fold CV AUROC {cv['auroc_mean']:.3f} ± {cv['auroc_std']:.3f}"
    console.print(line, highlight=False)
    click.echo(str(folder))


def _named(spec: str) -> tuple[str, Path]:
    name, sep, path = spec.partition("=")
    return (name, Path(path)) if sep else (Path(spec).name, Path(spec))


@command.command("eval")
@config_command(ProbeEvalConfig)
def evaluate(cfg: ProbeEvalConfig) -> None:
    """Evaluate a saved probe on any number of caches in one go (OUT/eval.json)."""
    from afscope.errors import ConfigError
    from afscope.fileio import atomic_write_json
    from afscope.probe import evaluate_probe, load_probe, read_probe_config
    from afscope.probe.inputs import load_matrix
    from afscope.runs import start_run

    named = [_named(s) for s in cfg.caches]
    names = [n for n, _ in named]
    if len(set(names)) != len(names):
        raise ConfigError(f"field 'caches': names must be unique, got {names} (use NAME=DIR)")
    probe = load_probe(cfg.probe)
    space = read_probe_config(cfg.probe).get("feature_space") or {}
    table = Table("dataset", "n", "AF", "AUROC [95% CI]", "TPR@1%FPR", "detection rate",
                  title=f"{cfg.probe}")
    results = {}
    with start_run("probe eval", cfg.to_dict(), cfg.out) as run:
        for name, path in named:
            m = load_matrix(path, int(space.get("layer", -1)), str(space.get("kind")), name)
            ev = evaluate_probe(probe, m.X, m.y, m.categories, n_boot=cfg.n_boot, seed=cfg.seed,
                                feature_space=m.space)
            results[name] = {"cache": str(path), **ev}
            met = ev["metrics"]
            table.add_row(name, str(ev["n"]), str(ev["n_pos"]), _ci(met["auroc"]),
                          _ci(met["tpr_at_1fpr"]), _ci(met["detection_rate"]))
        atomic_write_json(Path(cfg.out) / "eval.json", results)
        run.add_output("eval", "eval.json")
    console.print(table)
    click.echo(str(Path(cfg.out) / "eval.json"))


@command.command("sweep")
@config_command(ProbeSweepConfig)
def sweep_cmd(cfg: ProbeSweepConfig) -> None:
    """CV AUROC over --n-feature-counts x --cs (test AUROC too with --test-cache)."""
    from afscope.fileio import atomic_write_json
    from afscope.probe import sweep
    from afscope.probe.base import space_diffs
    from afscope.probe.inputs import load_matrix
    from afscope.runs import start_run

    pcfg = cfg.probe_config()
    with start_run("probe sweep", cfg.to_dict(), cfg.out) as run:
        m = load_matrix(cfg.cache, cfg.layer, cfg.features)
        test = load_matrix(cfg.test_cache, cfg.layer, cfg.features) if cfg.test_cache else None
        diffs = [] if test is None else space_diffs(m.space, test.space, "train", "test")
        if diffs:
            from afscope.errors import ArtifactError

            raise ArtifactError(f"{cfg.test_cache}: feature space differs from {cfg.cache}: "
                                + "; ".join(diffs))
        counts = [n for n in cfg.n_feature_counts if n < m.X.shape[1]] + [None]
        with run.timer("sweep"):
            points = sweep(m.X, m.y, pcfg, n_features=counts, Cs=cfg.cs, folds=cfg.folds,
                           seed=pcfg.seed, X_test=None if test is None else test.X,
                           y_test=None if test is None else test.y, n_jobs=cfg.n_jobs)
        atomic_write_json(Path(cfg.out) / "sweep.json", {"features": cfg.features,
                                                          "layer": cfg.layer, "points": points})
        run.add_output("points", len(points))
    table = Table("n_features", "C", "non-zero", "CV AUROC", "test AUROC",
                  title=f"{pcfg.method} sweep on {cfg.features} L{cfg.layer}")
    for p in points:
        table.add_row(str(p["n_features"]), f"{p['C']:g}", str(p["n_nonzero"]),
                      f"{p['cv_auroc']:.3f} ± {p['cv_std']:.3f}",
                      "-" if p["test_auroc"] is None else f"{p['test_auroc']:.3f}")
    console.print(table)
    click.echo(str(Path(cfg.out) / "sweep.json"))
