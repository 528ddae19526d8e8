"""``afscope data``: validate dataset files, split them, and generate the synthetic AF corpus.

* ``afscope data validate PATH...`` loads each file with the full validation of
  :func:`afscope.data.load.load_dataset` and prints per-category counts and content hashes; any bad
  file makes it exit 2 with a message naming file, record and field.
* ``afscope data split PATH`` writes ``<split>.jsonl`` files (train/test, or any fractions) and a
  ``manifest.json`` into a run directory; ``--eval-only`` datasets are checked for leakage first.
* ``afscope data synth --n N --seed S --out FILE.jsonl`` writes the synthetic corpus to
  ``FILE.jsonl`` and its run manifest to ``FILE.manifest.json`` beside it (a single corpus file
  is what other commands consume, so ``--out`` names the file rather than a run folder), and
  prints the keyword-baseline AUROCs: how much of the corpus vocabulary alone can solve.

Errors are raised as :class:`~afscope.errors.AfscopeError`; the ``afscope`` group turns them into
one line on stderr and exit code 2. Every file is written atomically, and nothing is written
before the inputs have been validated.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from afscope.cli import console
from afscope.cli.options import config_command
from afscope.data.config import DataSplitConfig, DataSynthConfig, DataValidateConfig
from afscope.data.dataset import Dataset
from afscope.data.leakage import LeakageGuard
from afscope.data.load import load_dataset
from afscope.data.split import stratified_split
from afscope.errors import AfscopeError, ConfigError, DataError
from afscope.runs import start_run

# splits that only measure: eval-only data in them is duplicated evaluation, not leakage
_EVAL_SPLITS = frozenset({"test"})


def _quiet() -> bool:
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return bool(obj.get("quiet")) if isinstance(obj, dict) else False


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in counts.items())


def synth_manifest_path(out: Path) -> Path:
    """Where ``afscope data synth --out FILE.jsonl`` writes its manifest: ``FILE.manifest.json``."""
    return out.with_name(f"{out.stem}.manifest.json")


def _print_dataset(d: Dataset) -> None:
    """A summary line (file, size, hash) and a table of counts per fine category."""
    lc = d.label_counts()
    dup = d.meta.get("duplicates", 0)
    dropped = d.meta.get("duplicates_dropped", 0)
    head = (f"{d.path if d.path is not None else d.name}: n={len(d)} (AF {lc[1]} / not {lc[0]}), "
            f"content {d.content_hash[:16]}, {dup} duplicate(s)"
            + (f", {dropped} dropped" if dropped else ""))
    console.print(head, soft_wrap=True, markup=False, highlight=False, emoji=False)
    table = Table()
    table.add_column("category")
    table.add_column("is_af", justify="right")
    table.add_column("n", justify="right")
    table.add_column("share", justify="right")
    label_of = {r.category: r.label for r in d}
    for cat, n in d.counts().items():
        table.add_row(cat, str(label_of[cat]), str(n), f"{n / max(len(d), 1):.1%}")
    console.print(table)


@click.group("data")
def command() -> None:
    """Load, validate, split and synthesize alignment-faking datasets."""


# -- validate --------------------------------------------------------------------------------------
@command.command("validate")
@click.argument("path_args", nargs=-1, metavar="PATH...")
@config_command(DataValidateConfig)
def validate(cfg: DataValidateConfig, path_args: tuple[str, ...]) -> None:
    """Load and validate dataset files; print counts per category and content hashes."""
    paths = list(path_args) or list(cfg.paths)
    if not paths:
        raise ConfigError("data validate: give at least one dataset PATH")
    loaded: list[Dataset] = []
    errors: list[str] = []
    for p in paths:
        try:
            loaded.append(load_dataset(p, **cfg.load_kwargs()))
        except AfscopeError as e:
            errors.append(str(e))
    if not _quiet():
        for d in loaded:
            _print_dataset(d)
    if errors:
        if len(paths) == 1:
            raise DataError(errors[0])
        raise DataError(f"{len(errors)} of {len(paths)} dataset(s) invalid:\n" + "\n".join(errors))


# -- split -----------------------------------------------------------------------------------------
@command.command("split")
@click.argument("path_arg", required=False, metavar="[PATH]")
@config_command(DataSplitConfig)
def split(cfg: DataSplitConfig, path_arg: str | None) -> None:
    """Write deterministic stratified splits (<split>.jsonl) and a manifest into a run folder."""
    if path_arg is not None:
        cfg.path = path_arg
    if cfg.path is None:
        raise ConfigError("data split: give the dataset PATH (positional or --path)")
    t0 = time.perf_counter()
    ds = load_dataset(cfg.path, **cfg.load_kwargs())
    splits = stratified_split(ds, cfg.fraction_map, seed=cfg.seed, stratify_by=cfg.stratify_by,
                              group_by=cfg.group_by)
    guard = None
    if cfg.eval_only:
        evals = [load_dataset(p, eval_only=True, **cfg.load_kwargs()) for p in cfg.eval_only]
        guard = LeakageGuard(evals, threshold=cfg.leakage_threshold)
        for name, part in splits.items():
            if name not in _EVAL_SPLITS:
                guard.check(part, purpose=f"the {name!r} split")
    t_prepare = time.perf_counter() - t0

    with start_run("data split", cfg.to_dict(), path=cfg.out) as run:
        run.manifest["timings_s"]["load_and_split"] = round(t_prepare, 4)
        run.add_dataset(ds.name, ds.info())
        if guard is not None:
            run.manifest["leakage_guard"] = guard.info()
        with run.timer("write"):
            for name, part in splits.items():
                out = part.to_jsonl(run.path / f"{name}.jsonl")
                run.add_output(name, {"path": out.name, "n": len(part), "counts": part.counts(),
                                      "content_hash": part.content_hash})
    if not _quiet():
        console.print(f"{ds.path}: n={len(ds)} split with seed {cfg.seed} into {run.path}",
                       soft_wrap=True, markup=False, highlight=False, emoji=False)
        table = Table()  # one row per category, one column per split: stays narrow
        table.add_column("category")
        for name in splits:
            table.add_column(name, justify="right")
        per_split = [part.counts() for part in splits.values()]
        for c in ds.counts():
            table.add_row(c, *(str(counts.get(c, 0)) for counts in per_split))
        table.add_row("total", *(str(len(part)) for part in splits.values()), style="bold")
        console.print(table)
    click.echo(str(run.path))


# -- synth -----------------------------------------------------------------------------------------
@command.command("synth")
@config_command(DataSynthConfig)
def synth(cfg: DataSynthConfig) -> None:
    """Generate the seeded synthetic AF corpus (JSONL) and report keyword-baseline AUROCs."""
    from afscope.data.synth import generate_corpus, keyword_auroc_report

    out = Path(cfg.out)
    if out.suffix.lower() != ".jsonl":
        raise ConfigError(f"data synth: --out must be a .jsonl file, got {out}")
    if out.is_dir():
        raise ConfigError(f"data synth: --out {out} is a directory; expected a .jsonl file path")
    with start_run("data synth", cfg.to_dict(), out.parent,
                   manifest_name=synth_manifest_path(out).name) as run:
        with run.timer("generate"):
            records = generate_corpus(cfg.n, cfg.seed, mix=cfg.mix,
                                      minimal_pairs=cfg.minimal_pairs)
        if not records:
            raise DataError(f"data synth: the generator returned no records for n={cfg.n}")
        with run.timer("keyword_auroc"):
            report: dict[str, Any] = {k: float(v)
                                      for k, v in keyword_auroc_report(records).items()}
        ds = Dataset.from_records(records, name=out.stem)
        with run.timer("write"):
            ds.to_jsonl(out)
        ds.path = out
        run.add_dataset(ds.name, ds.info())
        run.add_output("corpus", out.name)
        run.add_output("keyword_auroc", report)
    if not _quiet():
        console.print(f"{out}: {len(ds)} synthetic traces ({_counts_text(ds.counts())})",
                       soft_wrap=True, markup=False, highlight=False, emoji=False)
        table = Table()
        table.add_column("keyword baseline")
        table.add_column("AUROC", justify="right")
        for k, v in report.items():
            table.add_row(k, f"{v:.3f}")
        console.print(table)
    click.echo(str(out))
