"""Deterministic stratified splits that do not depend on file order.

Within each stratum the units (records, or groups of records when ``group_by`` is set) are sorted
by content hash and then permuted with a generator seeded by ``(seed, stratum)``. Two files with the
same records in another order therefore give the same splits, and adding a stratum does not
reshuffle the others.

Each stratum is cut with largest-remainder rounding, so every split gets ``floor`` or ``ceil`` of
its share of every stratum. Remainders are handed out by the deficit accumulated over the strata
seen so far (strata in sorted order), which keeps the overall split sizes within one unit of
their targets even when there are many small strata.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np

from afscope.data.dataset import Dataset
from afscope.data.records import Record
from afscope.errors import ConfigError, DataError

DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.8, "test": 0.2}
_RECORD_ATTRS = ("category", "label", "source", "pattern", "id")


def check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    """Validate split fractions: non-empty names, each in [0, 1], summing to 1 (within 1e-6)."""
    if not fractions:
        raise ConfigError("fractions: expected at least one split, e.g. "
                          "{'train': 0.8, 'test': 0.2}")
    out: dict[str, float] = {}
    for k, v in fractions.items():
        if not isinstance(k, str) or not k.strip():
            raise ConfigError(f"fractions: split names must be non-empty strings, got {k!r}")
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"fractions: split {k!r}: expected a number, got {v!r}") from None
        if not (0.0 <= f <= 1.0) or math.isnan(f):
            raise ConfigError(f"fractions: split {k!r}: expected a fraction in [0, 1], got {v!r}")
        out[k] = f
    total = sum(out.values())
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"fractions: must sum to 1, got {total:g} ({out})")
    return out


def record_value(record: Record, field: str) -> Any:
    """A record attribute (``category``, ``label``, ``source``, ...) or a field of ``extra``."""
    if field in _RECORD_ATTRS:
        return getattr(record, field)
    return record.extra.get(field)


def _stable_int(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], 16)


def _allocate(n_units: list[int], fractions: list[float]) -> list[list[int]]:
    """Per-stratum split sizes: largest remainder, remainders given by accumulated deficit.

    ``n_units[k]`` units in stratum ``k`` -> ``alloc[k][j]`` units of it for split ``j``; every
    ``alloc[k][j]`` is the floor or the ceil of ``n_units[k] * fractions[j]``.
    """
    m = len(fractions)
    expected = [0.0] * m
    given = [0] * m
    out = []
    for n in n_units:
        share = [n * f for f in fractions]
        alloc = [math.floor(s + 1e-9) for s in share]
        for j in range(m):
            expected[j] += share[j]
        rest = n - sum(alloc)
        # eligible: splits whose share has a fractional part (can take the ceil)
        order = sorted((j for j in range(m) if share[j] - alloc[j] > 1e-9),
                       key=lambda j: (-(expected[j] - given[j] - alloc[j]),
                                      -(share[j] - alloc[j]), j))
        for j in order[:rest]:
            alloc[j] += 1
        for j in range(m):
            given[j] += alloc[j]
        out.append(alloc)
    return out


def split_indices(
    dataset: Dataset,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    *,
    seed: int = 0,
    stratify_by: str | None = "category",
    group_by: str | None = None,
) -> dict[str, np.ndarray]:
    """Indices of each split, sorted ascending (record order of ``dataset``).

    See :func:`stratified_split`. With ``group_by``, groups are the units: a group's stratum is the
    sorted tuple of its members' strata, and proportions hold over groups, not records.
    """
    fr = check_fractions(fractions)
    names = list(fr)
    if len(dataset) == 0:
        return {k: np.zeros(0, dtype=np.int64) for k in names}

    # units: (sort key, stratum key, member indices)
    records = dataset.records
    hashes = [r.hash for r in records]

    def stratum_of(i: int) -> str:
        if stratify_by is None:
            return ""
        v = record_value(records[i], stratify_by)
        if v is None:
            raise DataError(f"{dataset.name}: record {i} (id {records[i].id!r}): field "
                            f"{stratify_by!r}: missing; needed to stratify the split "
                            "(set stratify_by to another field or to none)")
        return str(v)

    if group_by is None:
        units = [(f"{hashes[i]}\t{records[i].id}", stratum_of(i), [i]) for i in range(len(records))]
    else:
        groups: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(records):
            g = record_value(r, group_by)
            # a record without the group field is its own group (e.g. unpaired synthetic traces)
            key = f"g\t{g!r}" if g is not None else f"r\t{i}"
            groups[key].append(i)
        units = []
        for members in groups.values():
            sort_key = hashlib.sha256("\n".join(sorted(hashes[i] for i in members))
                                      .encode()).hexdigest()
            stratum = "|".join(sorted(stratum_of(i) for i in members))
            units.append((sort_key, stratum, members))

    strata: dict[str, list[tuple[str, list[int]]]] = defaultdict(list)
    for sort_key, stratum, members in units:
        strata[stratum].append((sort_key, members))
    keys = sorted(strata)
    sizes = [len(strata[k]) for k in keys]
    allocs = _allocate(sizes, [fr[n] for n in names])

    out: dict[str, list[int]] = {n: [] for n in names}
    for key, alloc in zip(keys, allocs):
        items = sorted(strata[key], key=lambda u: u[0])
        rng = np.random.default_rng([int(seed), _stable_int(key)])
        perm = rng.permutation(len(items))
        start = 0
        for name, count in zip(names, alloc):
            for p in perm[start:start + count]:
                out[name].extend(items[p][1])
            start += count
    return {n: np.array(sorted(v), dtype=np.int64) for n, v in out.items()}


def stratified_split(
    dataset: Dataset,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    *,
    seed: int = 0,
    stratify_by: str | None = "category",
    group_by: str | None = None,
) -> dict[str, Dataset]:
    """Split ``dataset`` into disjoint, covering, stratified parts.

    Parameters
    ----------
    fractions:
        ``{split name: fraction}``, summing to 1 (e.g. train/val/test).
    seed:
        Same seed and same records (in any file order) give the same splits.
    stratify_by:
        ``"category"`` (fine category, default), ``"label"``, another record attribute or an
        ``extra`` field; ``None`` for no stratification.
    group_by:
        Optional field (``"pair_id"``, ``"scenario"``) whose records must land in the same split,
        e.g. the two halves of a minimal pair. Records without it are their own group.

    Returns
    -------
    dict
        Split name -> :class:`Dataset` named ``"<name>:<split>"``; records keep dataset order.
    """
    idx = split_indices(dataset, fractions, seed=seed, stratify_by=stratify_by, group_by=group_by)
    out = {}
    for split, ind in idx.items():
        part = dataset.subset(ind, name=f"{dataset.name}:{split}")
        part.meta.update({"split": split, "seed": seed, "stratify_by": stratify_by,
                          "group_by": group_by})
        out[split] = part
    return out
