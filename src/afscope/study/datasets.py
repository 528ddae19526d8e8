"""The datasets of a study: a seeded train/test split of one file plus leakage-checked OOD sets."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from afscope.data import Dataset, LeakageGuard, load_dataset, stratified_split
from afscope.errors import DataError
from afscope.study.config import StudyConfig

log = logging.getLogger(__name__)


@dataclass
class StudyData:
    """Named datasets with their role (train, test, ood) and the files they were written to."""

    datasets: dict[str, Dataset]
    roles: dict[str, str]
    files: dict[str, Path]
    dropped: dict[str, int]  # records of the training file removed as near-duplicates of OOD ones

    def eval_names(self) -> list[str]:
        return [n for n in self.datasets if self.roles[n] != "train"]

    def info(self) -> list[dict[str, Any]]:
        rows = []
        for name, ds in self.datasets.items():
            labels = [r.label for r in ds.records]
            rows.append({"name": name, "role": self.roles[name], "n": len(ds),
                         "n_pos": int(sum(labels)), "n_neg": len(ds) - int(sum(labels)),
                         "counts": ds.counts(), "path": str(self.files[name])})
        return rows


def subsample(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """A seeded subsample of ``n`` records stratified by category (all of them if ``n`` is None
    or not smaller)."""
    if n is None or n >= len(ds):
        return ds
    parts = stratified_split(ds, {"keep": n / len(ds), "rest": 1 - n / len(ds)}, seed=seed)
    return parts["keep"]


def prepare_data(cfg: StudyConfig, out: Path) -> StudyData:
    """Load the OOD sets (eval-only), drop the records of the training file that near-duplicate
    any of them (the leakage guard: OOD sets stay whole, so they still measure generalization),
    subsample and split the rest; write every dataset to ``out/data/<name>.jsonl`` (the files the
    caches are extracted from)."""
    ood: dict[str, Dataset] = {}
    for spec in cfg.ood:
        ds = load_dataset(spec.data, label_map=spec.label_map, name=spec.name, eval_only=True)
        if len(ds) == 0:
            raise DataError(f"{spec.data}: OOD set {spec.name!r} is empty")
        ood[spec.name] = subsample(ds, spec.max_records, cfg.seed)
    if cfg.train is None:
        raise DataError("prepare_data: this config is a transfer study (sources); use "
                        "afscope.study.transfer.prepare_sources")
    src = load_dataset(cfg.train.data, label_map=cfg.train.label_map)
    dropped = {}
    if ood:
        guard = LeakageGuard(ood.values(), threshold=cfg.leakage_threshold)
        clean = guard.exclude(src)
        dropped["train"] = len(src) - len(clean)
        src = clean
    src = subsample(src, cfg.train.max_records, cfg.seed)
    if len({r.label for r in src.records}) < 2:
        raise DataError(f"{cfg.train.data}: the training file needs both classes (AF and not AF)")
    parts = stratified_split(src, {"train": 1 - cfg.train.test_fraction,
                                   "test": cfg.train.test_fraction},
                             seed=cfg.seed, stratify_by=cfg.train.stratify_by,
                             group_by=cfg.train.group_by)
    datasets = {"train": parts["train"], "test": parts["test"], **ood}
    roles = {"train": "train", "test": "test", **{n: "ood" for n in ood}}
    files = {}
    for name, ds in datasets.items():
        files[name] = ds.to_jsonl(out / "data" / f"{name}.jsonl")
        log.info("%s: %d records %s", name, len(ds), ds.counts())
    return StudyData(datasets, roles, files, dropped)
