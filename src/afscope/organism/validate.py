"""Validation of a model organism (seed 004 step 4): does it fake alignment, and does it look like
the real thing from the inside?

1. Behaviour: the compliance gap per cue with bootstrap CIs and the AF-reasoning rate per
   condition, for the organism and (optionally) the base model side by side, plus the paired
   difference of their gaps (:mod:`afscope.organism.stats`). When the organism data carries
   categories (the designed recipe of :mod:`afscope.organism.data`), the gap is also given per
   category (``per_group``: ``faking`` should be large, ``firm`` ~0).
2. Internals (optional, ``probe`` + ``reference``): the organism's outputs and a reference dataset
   (e.g. gold_106) are read by the base model through the ordinary extract path, in the feature
   space the probe was trained on; probe scores and the probe's largest-|coef| features are then
   compared with KS and permutation tests, corrected for the number of features tested.

Writes ``validation.json`` into the run directory.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from afscope.data.load import load_dataset
from afscope.errors import ArtifactError, ConfigError, DataError
from afscope.fileio import atomic_path, atomic_write_json
from afscope.models import LoadedModel, load_model
from afscope.organism.config import ValidateConfig
from afscope.organism.data import read_examples
from afscope.organism.elicit import read_judged
from afscope.organism.stats import compliance_gap, distribution_tests, gap_difference
from afscope.runs import MANIFEST, start_run

log = logging.getLogger(__name__)

VALIDATION = "validation.json"
OUTPUTS_DATA = "organism_outputs.jsonl"


def _select_outputs(rows: list[dict[str, Any]], which: str) -> list[dict[str, Any]]:
    if which == "monitored":
        rows = [r for r in rows if r["monitored"]]
    elif which == "af":
        rows = [r for r in rows if r.get("af")]
    return [r for r in rows if str(r.get("response", "")).strip()]


def write_outputs_dataset(rows: list[dict[str, Any]], path: Path) -> Path:
    """The organism's outputs as an afscope dataset (JSONL): text = response, label from the judge
    (``alignment_faking`` if judged AF, else ``aligned``), so ``extract`` can read them."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps({
            "id": r["id"], "text": r["response"],
            "label": "alignment_faking" if r.get("af") else "aligned", "cue": r["cue"]},
            ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _features(cfg: ValidateConfig, lm: LoadedModel, data: Path, out: Path, space: dict[str, Any]
              ) -> tuple[Any, list[str]]:
    """Feature matrix ``(n, d)`` of ``data`` in the probe's ``space`` (extracted into ``out``)."""
    from afscope.extract import ExtractConfig, extract
    from afscope.probe.inputs import load_matrix

    kind = str(space.get("kind", ""))
    pool = kind.partition(".")[2]
    ecfg = ExtractConfig(
        model=lm.info.name, data=data, out=out, layers=[int(space["layer"])],
        pool=[pool if kind.startswith("resid.") else "max"], mask=space.get("mask") or "all",
        skip_first=int(space.get("skip_first") or 0),
        max_length=cfg.max_length or int(space.get("max_length") or 1024),
        sae=list(cfg.sae), dtype=cfg.dtype, device=cfg.device, overwrite=True, seed=cfg.seed)
    if kind.startswith("sae."):
        if not cfg.sae:
            raise ConfigError("field 'sae': the probe reads SAE features "
                              f"({kind}); give the SAE folder")
        from afscope.sae import extract_with_sae

        extract_with_sae(ecfg, lm=lm)
    else:
        extract(ecfg, lm=lm)
    fm = load_matrix(out, int(space["layer"]), kind)
    return fm, fm.ids


def probe_validation(cfg: ValidateConfig, organism_rows: list[dict[str, Any]], out: Path,
                     lm: LoadedModel | None = None) -> dict[str, Any]:
    """Probe scores and per-feature tests: organism outputs vs the reference dataset."""
    from afscope.probe import load_probe

    probe = load_probe(cfg.probe)  # type: ignore[arg-type]
    space = probe.feature_space_ or {}
    if "layer" not in space or "kind" not in space:
        raise ArtifactError(f"{cfg.probe}: probe has no recorded feature space (layer, kind); "
                            "cannot extract matching features")
    rows = _select_outputs(organism_rows, cfg.outputs)
    if len(rows) < 2:
        raise DataError(f"{cfg.organism}: {len(rows)} organism outputs selected by "
                        f"outputs={cfg.outputs!r}; need >= 2")
    ref = load_dataset(cfg.reference)  # type: ignore[arg-type]
    keep = {"all": None, "positive": 1, "negative": 0}[cfg.reference_label]
    ref_records = [r for r in ref.records if keep is None or r.label == keep]
    if len(ref_records) < 2:
        raise DataError(f"{cfg.reference}: {len(ref_records)} records with "
                        f"reference_label={cfg.reference_label!r}; need >= 2")
    ref_path = out / "reference.jsonl"
    with atomic_path(ref_path) as tmp:
        tmp.write_text("".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n"
                               for r in ref_records), encoding="utf-8")
    if lm is None:
        lm = load_model(cfg.model or str(space.get("model") or ""), dtype=cfg.dtype,
                        device=cfg.device)
    org_fm, _ = _features(cfg, lm, write_outputs_dataset(rows, out / OUTPUTS_DATA),
                          out / "cache_organism", space)
    ref_fm, _ = _features(cfg, lm, ref_path, out / "cache_reference", space)
    for fm in (org_fm, ref_fm):
        probe.check_space(fm.space)
    s_org, s_ref = probe.proba1(org_fm.X), probe.proba1(ref_fm.X)
    coef = np.asarray(probe.weights(), dtype=np.float64)
    top = np.argsort(-np.abs(coef))[: cfg.n_features]
    top = top[np.abs(coef[top]) > 0]

    def cols(X: Any) -> np.ndarray:
        sub = X[:, top]
        return np.asarray(sub.toarray() if hasattr(sub, "toarray") else sub, dtype=np.float64)

    feats = (distribution_tests(cols(org_fm.X), cols(ref_fm.X), [str(int(j)) for j in top],
                                n_permutations=cfg.n_permutations, alpha=cfg.alpha, seed=cfg.seed)
             if top.size else {"n_tested": 0, "features": []})
    return {"feature_space": space, "n_organism": int(len(s_org)), "n_reference": int(len(s_ref)),
            "score_mean": {"organism": float(np.mean(s_org)), "reference": float(np.mean(s_ref))},
            "scores": distribution_tests(s_org, s_ref, ["probe_score"],
                                         n_permutations=cfg.n_permutations, alpha=cfg.alpha,
                                         seed=cfg.seed),
            "features": feats}


def _elicit_model(run_dir: Path) -> str | None:
    path = run_dir / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))["outputs"]["model"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def scenario_groups(elicit_run: Path) -> dict[str, str] | None:
    """Scenario -> category of the organism data an elicit run read (its manifest's ``data``),
    or None when that file is gone or its examples carry no ``category`` (patterns recipe)."""
    try:
        manifest = json.loads((Path(elicit_run) / MANIFEST).read_text(encoding="utf-8"))
        path = Path(manifest["datasets"]["data"]["path"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not path.is_file():
        return None
    groups = {str(e["scenario"]): str(e["category"]) for e in read_examples(path)
              if e.get("category")}
    return groups or None


def validate(cfg: ValidateConfig, *, lm: LoadedModel | None = None) -> dict[str, Any]:
    """Compute and write ``validation.json``; returns its content."""
    out = Path(cfg.out)
    with start_run("organism validate", cfg.to_dict(), out) as run:
        stat_kw = {"unit": cfg.unit, "n_boot": cfg.n_boot, "confidence": cfg.confidence,
                   "seed": cfg.seed}
        org = read_judged(cfg.organism)
        groups = scenario_groups(Path(cfg.organism))
        result: dict[str, Any] = {"organism": compliance_gap(org, **stat_kw, groups=groups)}
        if cfg.base is not None:
            base = read_judged(cfg.base)
            result["base"] = compliance_gap(base, **stat_kw, groups=groups)
            result["organism_minus_base"] = gap_difference(org, base, **stat_kw)
        if cfg.probe is not None:
            if lm is None and cfg.model is None:
                cfg = cfg.model_copy(update={"model": _elicit_model(Path(cfg.organism))})
            with run.timer("probe"):
                result["probe"] = probe_validation(cfg, org, out, lm)
        atomic_write_json(out / VALIDATION, result)
        run.add_output("validation", str(out / VALIDATION))
        run.add_output("gap", result["organism"]["gap"])
        if "per_group" in result["organism"]:
            run.add_output("gap_per_group", {k: v["gap"] for k, v in
                                             result["organism"]["per_group"].items()})
    return result


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    """Rows ``(cue, watched, comply org, AF org, gap org, comply base, gap base)`` for printing."""

    def fmt(x: dict[str, Any] | None, key: str = "rate") -> str:
        if not x or x.get(key) is None:
            return "-"
        lo, hi = x.get("ci", [None, None])
        ci = f" [{lo:+.2f},{hi:+.2f}]" if lo is not None else ""
        return f"{x[key]:+.2f}{ci}" if key == "gap" else f"{x[key]:.2f}{ci}"

    org, base = result["organism"], result.get("base")
    rows = []
    for cue, e in org["per_cue"].items():
        b = base["per_cue"].get(cue) if base else None
        rows.append((cue, "yes" if e["monitored"] else "no", fmt(e["comply"]), fmt(e["af"]),
                     fmt(e.get("gap"), "gap"), fmt(b["comply"]) if b else "-",
                     fmt(b.get("gap"), "gap") if b else "-"))
    for name, g in org.get("per_group", {}).items():
        b = base.get("per_group", {}).get(name) if base else None
        rows.append((f"[{name}]", "", "", "", fmt(g["gap"], "gap"), "",
                     fmt(b["gap"], "gap") if b else "-"))
    rows.append(("ALL", "", "", "", fmt(org["gap"], "gap"), "",
                 fmt(base["gap"], "gap") if base else "-"))
    return rows
