"""Bootstrap intervals shared by every component that reports a mean (steering summaries, explainer
metrics, description faithfulness): one definition, so a CI means the same thing everywhere.

Intervals are percentile bootstrap intervals from :func:`scipy.stats.bootstrap`, seeded, so a rerun
writes the same numbers. Where values come in correlated groups (an explainer's three questions about
one scenario, one feature's two token questions, several seeds' answers on one held-out unit), the
interval resamples whole groups (``units``): the held-out unit, not the row, is what is drawn from
the population, and resampling rows would make the interval too narrow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import bootstrap


def unit_weights(units: Sequence[str], n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, N)`` resample weights of N rows grouped by ``units``: each resample draws the
    distinct units with replacement and a row weighs as many times as its unit was drawn.

    A weighted statistic over the rows is then the statistic of a cluster-bootstrap resample.
    """
    keys, inverse = np.unique(np.asarray(units, dtype=object).astype(str), return_inverse=True)
    k = keys.size
    counts = np.random.default_rng(seed).multinomial(k, np.full(k, 1.0 / k), size=n_boot)
    return counts[:, inverse].astype(np.float64)


def mean_ci(values: Sequence[float | None], *, n_boot: int = 1000, seed: int = 0,
            units: Sequence[str] | None = None) -> dict[str, float | int] | None:
    """``{"mean", "lo", "hi", "n"}`` of ``values`` (95% percentile bootstrap); None when empty.

    ``units`` (one per value) groups correlated values: the resamples then draw units, not values,
    and the result adds ``n_units``. ``None`` values are left out (with their units). With one
    value, one unit, or all values equal, the interval collapses onto the mean.
    """
    if units is not None and len(units) != len(values):
        raise ValueError(f"mean_ci: {len(units)} units for {len(values)} values")
    keep = [i for i, v in enumerate(values) if v is not None]
    x = np.asarray([values[i] for i in keep], dtype=np.float64)
    if x.size == 0:
        return None
    mean = float(x.mean())
    if units is not None:
        u = [units[i] for i in keep]
        n_units = len(set(u))
        if n_units < 2 or np.all(x == x[0]) or n_boot < 1:
            return {"mean": mean, "lo": mean, "hi": mean, "n": int(x.size), "n_units": n_units}
        w = unit_weights(u, n_boot, seed)
        boot = (w @ x) / w.sum(axis=1)
        lo, hi = (float(b) for b in np.percentile(boot, [2.5, 97.5]))
        return {"mean": mean, "lo": lo, "hi": hi, "n": int(x.size), "n_units": n_units}
    if x.size < 2 or np.all(x == x[0]):
        return {"mean": mean, "lo": mean, "hi": mean, "n": int(x.size)}
    res = bootstrap((x,), np.mean, n_resamples=n_boot, confidence_level=0.95,
                    method="percentile", rng=np.random.default_rng(seed), vectorized=True)
    ci = res.confidence_interval
    return {"mean": mean, "lo": float(ci.low), "hi": float(ci.high), "n": int(x.size)}
