"""Splits: deterministic, independent of file order, stratified, disjoint, group-preserving."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from afscope.data import Dataset, load_dataset, split_indices, stratified_split
from afscope.data.split import _allocate, check_fractions
from afscope.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def bench(shared_data: Path) -> Dataset:
    return load_dataset(shared_data / "af_detection_benchmark_2330.json")


def _hashes(ds: Dataset) -> set[str]:
    return set(ds.hashes)


def test_benchmark_split_is_stratified_disjoint_and_covering(bench: Dataset) -> None:
    parts = stratified_split(bench, {"train": 0.8, "test": 0.2}, seed=0)
    train, test = parts["train"], parts["test"]
    assert test.counts() == {"aligned": 50, "alignment_faking": 104, "compliant_hard_negative": 104,
                             "genuine_compliance": 104, "hard_negative": 104}
    assert len(train) == 1864 and len(test) == 466
    assert not set(train.ids) & set(test.ids)
    assert set(train.ids) | set(test.ids) == set(bench.ids)
    assert train.name == f"{bench.name}:train" and test.meta["split"] == "test"
    # records keep dataset order
    pos = {r.id: i for i, r in enumerate(bench)}
    assert [pos[i] for i in test.ids] == sorted(pos[i] for i in test.ids)


def test_same_seed_same_split_and_file_order_does_not_matter(bench: Dataset) -> None:
    a = split_indices(bench, seed=3)
    b = split_indices(bench, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    shuffled = list(bench.records)
    random.Random(1).shuffle(shuffled)
    c = stratified_split(Dataset(name="shuffled", records=shuffled), seed=3)
    assert _hashes(c["test"]) == {bench.records[i].hash for i in a["test"]}
    d = split_indices(bench, seed=4)
    assert not np.array_equal(a["test"], d["test"])


def test_three_way_split_largest_remainder(toy_dataset: Dataset) -> None:
    parts = stratified_split(toy_dataset, {"train": 0.7, "val": 0.1, "test": 0.2}, seed=0)
    # strata 30 / 20 / 10 -> exact shares
    assert parts["train"].counts() == {"aligned": 21, "alignment_faking": 14, "hard_negative": 7}
    assert parts["val"].counts() == {"aligned": 3, "alignment_faking": 2, "hard_negative": 1}
    assert parts["test"].counts() == {"aligned": 6, "alignment_faking": 4, "hard_negative": 2}
    assert sum(len(p) for p in parts.values()) == len(toy_dataset)


def test_many_small_strata_keep_global_sizes(make_rec) -> None:
    # 10 strata of 3: per-stratum rounding alone would put 10 records (33%) in test
    recs = [make_rec(i, "aligned", pattern=f"p{i // 3}") for i in range(30)]
    parts = stratified_split(Dataset(name="s", records=recs), {"train": 0.8, "test": 0.2},
                             stratify_by="pattern")
    assert len(parts["test"]) == 6 and len(parts["train"]) == 24
    for p in parts.values():  # every stratum gets floor or ceil of its share
        for k in range(10):
            n = sum(r.pattern == f"p{k}" for r in p)
            assert n in (0, 1) if p is parts["test"] else n in (2, 3)


@pytest.mark.parametrize("seed", range(5))
def test_allocate_properties(seed: int) -> None:
    rng = random.Random(seed)
    sizes = [rng.randint(0, 40) for _ in range(rng.randint(1, 30))]
    raw = [rng.random() for _ in range(rng.randint(1, 4))]
    fr = [x / sum(raw) for x in raw]
    alloc = _allocate(sizes, fr)
    for n, a in zip(sizes, alloc):
        assert sum(a) == n
        for j, f in enumerate(fr):
            assert math.floor(n * f - 1e-9) <= a[j] <= math.ceil(n * f + 1e-9)
    for j, f in enumerate(fr):
        assert abs(sum(a[j] for a in alloc) - sum(sizes) * f) <= 1.0 + 1e-9


def test_group_by_keeps_groups_together(make_rec) -> None:
    recs = []
    for g in range(40):  # minimal pairs: an AF and an aligned trace share a pair_id
        recs.append(make_rec(2 * g, "alignment_faking", extra={"pair_id": f"pair{g}"}))
        recs.append(make_rec(2 * g + 1, "aligned", extra={"pair_id": f"pair{g}"}))
    recs += [make_rec(1000 + i, "aligned") for i in range(20)]  # unpaired: their own groups
    ds = Dataset(name="pairs", records=recs)
    parts = stratified_split(ds, {"train": 0.75, "test": 0.25}, seed=0, group_by="pair_id")
    where = {r.id: name for name, p in parts.items() for r in p}
    assert len(where) == len(ds)
    for g in range(40):
        assert where[f"r{2 * g}"] == where[f"r{2 * g + 1}"]
    test_pairs = {r.extra["pair_id"] for r in parts["test"] if "pair_id" in r.extra}
    assert len(test_pairs) == 10  # 25% of 40 pair groups
    assert sum("pair_id" not in r.extra for r in parts["test"]) == 5  # 25% of 20 singles


def test_group_by_field_on_real_data(shared_data: Path) -> None:
    ds = load_dataset(shared_data / "vocab_constrained_af.json")
    parts = stratified_split(ds, {"train": 0.5, "test": 0.5}, group_by="scenario")
    train_sc = {r.extra["scenario"] for r in parts["train"]}
    test_sc = {r.extra["scenario"] for r in parts["test"]}
    assert not train_sc & test_sc
    assert len(parts["train"]) + len(parts["test"]) == 31


def test_no_stratification_and_label_stratification(toy_dataset: Dataset) -> None:
    a = split_indices(toy_dataset, {"a": 0.5, "b": 0.5}, stratify_by=None)
    assert len(a["a"]) == len(a["b"]) == 30
    b = stratified_split(toy_dataset, {"a": 0.5, "b": 0.5}, stratify_by="label")
    assert b["a"].label_counts() == {0: 20, 1: 10}


def test_zero_fraction_split_is_empty(toy_dataset: Dataset) -> None:
    parts = stratified_split(toy_dataset, {"train": 1.0, "test": 0.0})
    assert len(parts["train"]) == 60 and len(parts["test"]) == 0


@pytest.mark.parametrize("fractions, match", [
    ({"train": 0.8, "test": 0.3}, "must sum to 1"),
    ({"train": 1.2, "test": -0.2}, r"in \[0, 1\]"),
    ({}, "at least one split"),
    ({"train": "x"}, "expected a number"),
])
def test_bad_fractions(toy_dataset: Dataset, fractions, match) -> None:
    with pytest.raises(ConfigError, match=match):
        stratified_split(toy_dataset, fractions)


def test_check_fractions_normalizes_types() -> None:
    assert check_fractions({"train": 1, "test": 0}) == {"train": 1.0, "test": 0.0}


def test_missing_stratify_field_is_a_data_error(toy_dataset: Dataset) -> None:
    with pytest.raises(DataError, match=r"toy: record 0 \(id 'r0'\): field 'scenario': missing"):
        stratified_split(toy_dataset, stratify_by="scenario")


@pytest.mark.parametrize("value", [
    "train=0.7,val=0.1,test=0.2", ["train=0.7", "val=0.1", "test=0.2"],
    "{train: 0.7, val: 0.1, test: 0.2}", {"train": 0.7, "val": 0.1, "test": 0.2},
])
def test_split_config_fraction_forms(value) -> None:
    from afscope.data.config import DataSplitConfig

    cfg = DataSplitConfig(fractions=value)
    assert cfg.fraction_map == {"train": 0.7, "val": 0.1, "test": 0.2}
    assert cfg.to_dict()["fractions"] == {"train": 0.7, "val": 0.1, "test": 0.2}


def test_split_config_rejects_bad_fractions_and_typos() -> None:
    from afscope.config import build_config
    from afscope.data.config import DataSplitConfig

    with pytest.raises(ConfigError, match="fractions.*must sum to 1"):
        build_config(DataSplitConfig, overrides={"fractions": "train=0.5,test=0.2"})
    with pytest.raises(ConfigError, match="'seeed': unknown key"):
        build_config(DataSplitConfig, overrides={"seeed": 1})
    assert build_config(DataSplitConfig, overrides={"stratify_by": "none"}).stratify_by is None
