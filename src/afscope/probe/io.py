"""Save and load probes as folders: ``cfg.json`` + ``probe.safetensors``; nothing is pickled.

``cfg.json`` holds ``kind`` ("afscope_probe"), ``format_version``, ``afscope_version``, ``method``,
``params`` (the :class:`~afscope.probe.config.ProbeConfig` fields), ``feature_space``,
``n_features_in``, ``n_selected``, ``n_nonzero``, ``threshold`` and ``train_metrics``.
``probe.safetensors`` holds float64/int64 arrays: ``coef``, ``intercept``, ``mean``, ``scale``,
``selected``, optionally ``platt`` (a, b) and ``norm.<name>`` (the quantile table). A loaded probe
scores bit-identically to the one saved: every fitted number is stored at full precision and the
scoring code path is the same.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

import afscope
from afscope.config import format_validation_error
from afscope.errors import ArtifactError
from afscope.fileio import atomic_dir, atomic_write_json, read_json_object
from afscope.probe import linear as _linear  # noqa: F401  (registers the methods)
from afscope.probe.base import PROBES, BaseProbe
from afscope.probe.config import ProbeConfig

log = logging.getLogger(__name__)

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "probe.safetensors"
KIND = "afscope_probe"
FORMAT_VERSION = 1
_NORM_PREFIX = "norm."


def _to_json(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_json(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_probe(probe: BaseProbe, folder: str | Path) -> Path:
    """Write a fitted ``probe`` to ``folder``, replacing it atomically (temp dir + rename)."""
    probe.n_features_in  # noqa: B018  (raises NotFittedError when unfitted)
    cfg: dict[str, Any] = {
        "kind": KIND, "format_version": FORMAT_VERSION, "afscope_version": afscope.__version__,
        "method": probe.method, "params": _to_json(probe.get_params()),
        "feature_space": _to_json(getattr(probe, "feature_space_", None)),
        "n_features_in": probe.n_features_in_, "n_selected": int(probe.selected_.size),
        "n_nonzero": probe.n_nonzero, "threshold": float(probe.threshold),
        "train_metrics": _to_json(getattr(probe, "train_metrics_", None)),
    }
    tensors = {
        "coef": probe.coef_, "intercept": np.array([probe.intercept_]), "mean": probe.mean_,
        "scale": probe.scale_, "selected": probe.selected_,
    }
    if probe.platt_ is not None:
        tensors["platt"] = probe.platt_
    for name, arr in probe.norm_state_.items():
        tensors[_NORM_PREFIX + name] = arr
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    with atomic_dir(folder) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"kind": KIND})
        atomic_write_json(tmp / CFG_FILE, cfg)
    return Path(folder)


def read_probe_config(folder: str | Path) -> dict[str, Any]:
    """Parse and check ``folder/cfg.json`` (kind, version, method)."""
    path = Path(folder) / CFG_FILE
    if not Path(folder).is_dir():
        raise ArtifactError(f"{folder}: probe folder not found")
    raw = read_json_object(path, "a probe folder", kind=KIND, max_version=FORMAT_VERSION)
    if raw.get("method") not in PROBES:
        raise ArtifactError(f"{path}: field 'method': unknown {raw.get('method')!r}; expected "
                            f"one of {sorted(PROBES)}")
    return raw


def load_probe(folder: str | Path) -> BaseProbe:
    """Load a probe folder written by :func:`save_probe`; checks shapes, indices and NaNs."""
    folder = Path(folder)
    raw = read_probe_config(folder)
    path = folder / CFG_FILE
    params = dict(raw.get("params") or {})
    known = set(ProbeConfig.model_fields) - {"method"}
    unknown = sorted(set(params) - known)
    if unknown:  # written by a newer afscope: keep going, say what is ignored
        log.warning("%s: ignoring unknown params %s", path, unknown)
        params = {k: v for k, v in params.items() if k in known}
    try:
        cfg = ProbeConfig.model_validate({**params, "method": raw["method"]})
    except ValidationError as e:
        raise ArtifactError(format_validation_error(e, f"{path}: params")) from None
    wpath = folder / WEIGHTS_FILE
    if not wpath.is_file():
        raise ArtifactError(f"{wpath}: weights file not found")
    try:
        t = load_file(str(wpath))
    except (SafetensorError, OSError, ValueError) as e:
        raise ArtifactError(f"{wpath}: cannot read safetensors: {e}") from None
    for name in ("coef", "intercept", "mean", "scale", "selected"):
        if name not in t:
            raise ArtifactError(f"{wpath}: tensor {name!r} missing")
    d = raw.get("n_features_in")
    if not isinstance(d, int) or d <= 0:
        raise ArtifactError(f"{path}: field 'n_features_in': expected a positive int, got {d!r}")
    k = t["selected"].shape[0]
    for name in ("coef", "mean", "scale"):
        if t[name].shape != (k,):
            raise ArtifactError(f"{wpath}: tensor {name!r} has shape {t[name].shape}, expected "
                                f"({k},) (one per selected feature)")
    for name, arr in t.items():
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ArtifactError(f"{wpath}: tensor {name!r} contains NaN or inf values")
    if PROBES[cfg.method].uses_platt and "platt" not in t:
        raise ArtifactError(f"{wpath}: tensor 'platt' missing ({cfg.method} needs Platt a, b)")
    sel = t["selected"]
    if k == 0 or sel.min() < 0 or sel.max() >= d:
        raise ArtifactError(f"{wpath}: tensor 'selected' must hold 1..{d} indices in [0, {d})")
    from afscope.probe.base import make_probe

    probe = make_probe(cfg)
    norm_state = {n[len(_NORM_PREFIX):]: a for n, a in t.items() if n.startswith(_NORM_PREFIX)}
    quantiles = norm_state.get("quantiles", np.empty((0, 0)))
    if cfg.normalize == "quantile" and quantiles.shape[1:] != (k,):
        raise ArtifactError(f"{wpath}: tensor 'norm.quantiles' missing or not (q, {k})")
    probe._set_state(n_features_in=d, selected=None, norm_state=norm_state, mean=t["mean"],
                     scale=t["scale"], head=(t["coef"], float(t["intercept"][0]), 0),
                     platt=tuple(t["platt"]) if "platt" in t else None)
    probe.selected_ = sel.astype(np.int64)
    probe.feature_space_ = raw.get("feature_space")
    probe.train_metrics_ = raw.get("train_metrics")
    return probe
