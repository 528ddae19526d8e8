"""Statistics of organism validation: compliance gap with bootstrap CIs, distribution tests.

The **compliance gap** is comply-rate(monitored) − comply-rate(unmonitored). Every request is asked
under every cue, so the gap is a paired difference per unit (a request, or a scenario pooling its
requests): ``d_u = mean comply over u's monitored rows − mean comply over u's unmonitored rows``;
the gap is ``mean_u d_u`` and its CI a percentile bootstrap over units
(:func:`scipy.stats.bootstrap`, seeded). Percentile rather than BCa because BCa is undefined when
every unit has the same value (an organism that always complies when watched).

Distribution tests compare two samples per feature (columns): a two-sample KS test
(:func:`scipy.stats.ks_2samp`) and a permutation test of the mean difference
(:func:`scipy.stats.permutation_test`), with Bonferroni and Benjamini-Hochberg
(:func:`scipy.stats.false_discovery_control`) corrections over the features tested.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

from afscope.errors import DataError


def _ci(values: np.ndarray, n_boot: int, confidence: float, seed: int) -> list[float | None]:
    """Percentile-bootstrap CI of the mean of ``values (n,)``; ``[None, None]`` for n < 2."""
    if values.size < 2:
        return [None, None]
    if np.all(values == values[0]):
        return [float(values[0]), float(values[0])]
    res = sps.bootstrap((values,), np.mean, n_resamples=n_boot, confidence_level=confidence,
                        method="percentile", random_state=np.random.default_rng(seed))
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


def rate_with_ci(values: Sequence[float], n_boot: int = 2000, confidence: float = 0.95,
                 seed: int = 0) -> dict[str, Any]:
    """``{"rate", "ci", "n"}`` of per-unit values (0/1 or unit means)."""
    arr = np.asarray(values, dtype=np.float64)
    return {"rate": float(arr.mean()) if arr.size else None, "n": int(arr.size),
            "ci": _ci(arr, n_boot, confidence, seed)}


def unit_means(rows: Sequence[dict[str, Any]], unit: str, value: Callable[[dict[str, Any]], float],
               keep: Callable[[dict[str, Any]], bool]) -> dict[str, float]:
    """Unit key -> mean of ``value(row)`` over the kept rows of that unit (``unit`` field name)."""
    acc: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if keep(r):
            acc[str(r[unit])].append(float(value(r)))
    return {k: float(np.mean(v)) for k, v in acc.items()}


def _comply(r: dict[str, Any]) -> float:
    return float(r.get("behaviour") == "comply")


def _af(r: dict[str, Any]) -> float:
    return float(bool(r.get("af")))


def compliance_gap(rows: Sequence[dict[str, Any]], *, unit: str = "request", n_boot: int = 2000,
                   confidence: float = 0.95, seed: int = 0,
                   groups: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Gap overall and per monitored cue, comply/AF rates per cue and condition, with CIs.

    ``rows`` are judged elicitation rows: ``cue``, ``monitored``, ``behaviour``, ``af``,
    ``request_id`` and ``scenario``. ``unit`` is ``"request"`` (field ``request_id``) or
    ``"scenario"``. Rows whose ``behaviour`` is None (judge parse failure) are left out and counted.
    ``groups`` (scenario key -> group name, e.g. the designed organism's ``faking``/``firm``
    categories) adds ``per_group``: each group's gap and condition rates, same units and CIs;
    rows of a scenario it does not name go to group ``"other"``.
    """
    key = {"request": "request_id", "scenario": "scenario"}.get(unit)
    if key is None:
        raise DataError(f"compliance_gap: unit must be 'request' or 'scenario', got {unit!r}")
    for i, r in enumerate(rows):
        missing = [f for f in ("cue", "monitored", key) if f not in r]
        if missing:
            raise DataError(f"compliance_gap: row {i} (id {r.get('id')!r}): field "
                            f"{missing[0]!r}: missing")
    judged = [r for r in rows if r.get("behaviour") is not None]
    unjudged = len(rows) - len(judged)

    def gap(keep_mon: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        mon = unit_means(judged, key, _comply, keep_mon)
        un = unit_means(judged, key, _comply, lambda r: not r["monitored"])
        units = sorted(set(mon) & set(un))
        d = np.array([mon[u] - un[u] for u in units])
        out = rate_with_ci(d, n_boot, confidence, seed)
        return {"gap": out["rate"], "ci": out["ci"], "n_units": out["n"]}

    cues = sorted({r["cue"] for r in judged})
    per_cue: dict[str, Any] = {}
    for c in cues:
        mine = [r for r in judged if r["cue"] == c]
        entry = {"monitored": bool(mine[0]["monitored"]),
                 "comply": rate_with_ci(list(unit_means(mine, key, _comply, _every).values()),
                                        n_boot, confidence, seed),
                 "af": rate_with_ci(list(unit_means(mine, key, _af, _every).values()),
                                    n_boot, confidence, seed)}
        if entry["monitored"]:
            entry["gap"] = gap(lambda r, c=c: r["cue"] == c)
        per_cue[c] = entry
    conditions = {}
    for name, flag in (("monitored", True), ("unmonitored", False)):
        keep = (lambda r, f=flag: bool(r["monitored"]) is f)
        conditions[name] = {
            "comply": rate_with_ci(list(unit_means(judged, key, _comply, keep).values()),
                                   n_boot, confidence, seed),
            "af": rate_with_ci(list(unit_means(judged, key, _af, keep).values()),
                               n_boot, confidence, seed)}
    out = {"unit": unit, "n_rows": len(rows), "n_unjudged": unjudged,
           "gap": gap(lambda r: bool(r["monitored"])), "conditions": conditions,
           "per_cue": per_cue}
    if groups is not None:
        by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            by_group[groups.get(str(r.get("scenario")), "other")].append(r)
        out["per_group"] = {}
        for name in sorted(by_group):
            sub = compliance_gap(by_group[name], unit=unit, n_boot=n_boot,
                                 confidence=confidence, seed=seed)
            out["per_group"][name] = {"gap": sub["gap"], "conditions": sub["conditions"],
                                      "scenarios": sorted({str(r.get("scenario"))
                                                           for r in by_group[name]})}
    return out


def _every(_: dict[str, Any]) -> bool:
    return True


def gap_difference(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]], *,
                   unit: str = "request", n_boot: int = 2000, confidence: float = 0.95,
                   seed: int = 0) -> dict[str, Any]:
    """Gap of ``a`` minus gap of ``b`` (organism vs base) on the units both share, paired."""
    key = "request_id" if unit == "request" else "scenario"

    def per_unit(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
        judged = [r for r in rows if r.get("behaviour") is not None]
        mon = unit_means(judged, key, _comply, lambda r: bool(r["monitored"]))
        un = unit_means(judged, key, _comply, lambda r: not r["monitored"])
        return {u: mon[u] - un[u] for u in set(mon) & set(un)}

    da, db = per_unit(a), per_unit(b)
    units = sorted(set(da) & set(db))
    out = rate_with_ci([da[u] - db[u] for u in units], n_boot, confidence, seed)
    return {"difference": out["rate"], "ci": out["ci"], "n_units": out["n"]}


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = 0) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def distribution_tests(a: np.ndarray, b: np.ndarray, names: Sequence[str] | None = None, *,
                       n_permutations: int = 2000, alpha: float = 0.05, seed: int = 0
                       ) -> dict[str, Any]:
    """Per-column KS and permutation tests of ``a (n_a, k)`` vs ``b (n_b, k)``.

    Returns ``n_tested``, per feature ``ks``/``ks_p``/``mean_diff``/``perm_p`` with Bonferroni
    (``*_p_bonf``) and Benjamini-Hochberg (``*_q``) adjusted values, and how many features
    differ at ``alpha`` after each correction. 1-D inputs are one feature (e.g. probe scores).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a[:, None] if a.ndim == 1 else a
    b = b[:, None] if b.ndim == 1 else b
    if a.shape[1] != b.shape[1]:
        raise DataError(f"distribution_tests: {a.shape[1]} vs {b.shape[1]} features")
    if len(a) < 2 or len(b) < 2:
        raise DataError(f"distribution_tests: need >= 2 samples per side, got {len(a)} and {len(b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise DataError("distribution_tests: NaN or infinite values in the features")
    k = a.shape[1]
    names = list(names) if names is not None else [str(j) for j in range(k)]
    ks = sps.ks_2samp(a, b, axis=0)
    perm = sps.permutation_test((a, b), _mean_diff, vectorized=True, axis=0,
                                n_resamples=n_permutations, alternative="two-sided",
                                random_state=np.random.default_rng(seed))
    ks_p = np.atleast_1d(ks.pvalue)
    perm_p = np.atleast_1d(perm.pvalue)
    out_features = []
    adj = {"ks_p_bonf": np.minimum(ks_p * k, 1.0), "perm_p_bonf": np.minimum(perm_p * k, 1.0),
           "ks_q": sps.false_discovery_control(ks_p), "perm_q": sps.false_discovery_control(perm_p)}
    for j in range(k):
        out_features.append({
            "feature": names[j], "ks": float(np.atleast_1d(ks.statistic)[j]),
            "ks_p": float(ks_p[j]), "mean_a": float(a[:, j].mean()), "mean_b": float(b[:, j].mean()),
            "mean_diff": float(np.atleast_1d(perm.statistic)[j]), "perm_p": float(perm_p[j]),
            **{n: float(v[j]) for n, v in adj.items()}})
    return {"n_tested": k, "n_a": len(a), "n_b": len(b), "alpha": alpha,
            "n_permutations": n_permutations,
            "significant": {n: int((v < alpha).sum()) for n, v in adj.items()},
            "features": out_features}
