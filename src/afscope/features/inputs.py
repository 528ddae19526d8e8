"""Load what the feature commands read: SAE features of one layer from an activation cache, and
the texts of the dataset the cache was extracted from (checked to be the same dataset)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from afscope.errors import ArtifactError


@dataclass
class FeatureInputs:
    """``X`` ``(n, d_sae)`` CSR, labels ``y`` ``(n,)``, per-row texts, ids and categories, and the
    :class:`~afscope.extract.store.ActivationCache` they were read from."""

    X: Any
    y: np.ndarray
    texts: list[str]
    ids: list[str]
    categories: list[str]
    token_topk: Any
    model: str | None
    layer: int
    dataset_info: dict[str, Any]
    cache: Any = None


def _label_map(cache: Path) -> dict[str, int] | None:
    """The ``label_map`` the cache was extracted with (its manifest), so labels load the same."""
    import json

    path = cache / "manifest.json"
    if not path.exists():
        return None
    return (json.loads(path.read_text(encoding="utf-8")).get("config") or {}).get("label_map")


def load_inputs(cache: str | Path, layer: int, stat: str, data: str | Path | None,
                *, with_texts: bool = True) -> FeatureInputs:
    """Read ``ActivationCache(cache).sae_features(layer, stat)`` and the texts of ``data``.

    Raises :class:`ArtifactError` when ``data`` is not the dataset the cache was built from
    (content hashes differ), naming both files.
    """
    from afscope.data import load_dataset
    from afscope.probe.inputs import load_matrix

    m = load_matrix(cache, layer, f"sae.{stat}")
    ac, X, y = m.cache, m.X, m.y
    texts: list[str] = []
    info: dict[str, Any] = {}
    if with_texts or data is not None:
        if data is None:
            raise ArtifactError(f"{cache}: --data is required (the texts of the cached records)")
        ds = load_dataset(data, label_map=_label_map(ac.path))
        want = ac.index.get("fingerprint_fields", {}).get("dataset")
        if ds.content_hash != want:
            raise ArtifactError(
                f"{data}: content hash {ds.content_hash[:12]} differs from the dataset the cache "
                f"{cache} was extracted from ({str(want)[:12]}); pass the same dataset file")
        texts = ds.texts
        y = ds.labels
        info = ds.info()
    topk = ac.token_topk(layer) if ac.token_k else None
    return FeatureInputs(X=X, y=y, texts=texts, ids=m.ids,
                         categories=[str(c) for c in m.categories], token_topk=topk,
                         model=ac.index.get("model"), layer=layer, dataset_info=info,
                         cache=ac)
