"""Feature matrices read from an activation cache, named as on the command line.

``--features resid.<pool>`` is the pooled residual stream ``(n, d_model)`` (dense);
``--features sae.<stat>`` the SAE latents' per-sample max or mean ``(n, d_sae)`` (CSR).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from afscope.errors import ConfigError
from afscope.extract import ActivationCache


@dataclass
class FeatureMatrix:
    """``X (n, d)``, labels ``y (n,)``, record ids and fine categories, the identity of the
    feature space, and the cache they came from."""

    X: Any
    y: np.ndarray
    categories: list[str]
    space: dict[str, Any]
    name: str
    ids: list[str]
    cache: ActivationCache


def load_matrix(cache: str | Path, layer: int, features: str, name: str | None = None
                ) -> FeatureMatrix:
    """Read ``features`` (``resid.max``, ``resid.mean``, ``resid.last``, ``sae.max``,
    ``sae.mean``) of ``layer`` from the cache at ``cache``."""
    kind, _, which = features.partition(".")
    if kind not in ("resid", "sae") or not which:
        raise ConfigError(f"field 'features': expected resid.<pool> or sae.<max|mean>, "
                          f"got {features!r}")
    ac = ActivationCache(cache)
    X = ac.get(layer, which) if kind == "resid" else ac.sae_features(layer, which)
    records = ac.records()
    return FeatureMatrix(X=X, y=np.array([r["label"] for r in records], dtype=np.int64),
                         categories=[r["category"] for r in records],
                         space=ac.feature_space(layer, features),
                         name=name or Path(cache).name, ids=[str(r["id"]) for r in records],
                         cache=ac)
