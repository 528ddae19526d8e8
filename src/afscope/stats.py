"""Bootstrap intervals shared by every component that reports a mean (steering summaries, explainer
metrics, description faithfulness): one definition, so a CI means the same thing everywhere.

Intervals are percentile bootstrap intervals from :func:`scipy.stats.bootstrap`, seeded, so a rerun
writes the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import bootstrap


def mean_ci(values: Sequence[float], *, n_boot: int = 1000, seed: int = 0
            ) -> dict[str, float | int] | None:
    """``{"mean", "lo", "hi", "n"}`` of ``values`` (95% percentile bootstrap); None when empty.

    With one value, or all values equal, the interval collapses onto the mean.
    """
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if x.size == 0:
        return None
    mean = float(x.mean())
    if x.size < 2 or np.all(x == x[0]):
        return {"mean": mean, "lo": mean, "hi": mean, "n": int(x.size)}
    res = bootstrap((x,), np.mean, n_resamples=n_boot, confidence_level=0.95,
                    method="percentile", rng=np.random.default_rng(seed), vectorized=True)
    ci = res.confidence_interval
    return {"mean": mean, "lo": float(ci.low), "hi": float(ci.high), "n": int(x.size)}
