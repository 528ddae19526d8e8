"""The transfer page of a study report: ``transfer.json`` -> ``transfer.html`` + heatmaps.

``transfer.json`` (written by :mod:`afscope.study.transfer`)::

    kind "afscope_transfer", format_version 1, title, created, fpr, n_boot
    sources[]    {name, role (train|eval|control), path, n_fit, n_test, n_pos_test, two_class,
                  counts, dropped}
    rows[]       {id, kind (single|loso|all), sources[], held_out}
    methods[]    {id, family, model, layer, features}
    cells[]      {method, row, test, in_row, n, n_pos, threshold, threshold_fpr (its FPR on the
                  row's training-source held-out negatives), auroc CI|null,
                  detection_rate CI|null, false_positive_rate CI|null, tpr_at_5fpr CI|null,
                  hard_negative {category: flag rate}}
    selection    {criterion, held_out[], scores {method: score}, recommended {group: method},
                  comparisons[] {test, row, metric, selection, recommended {group: entry},
                                 best_baseline entry, best_method entry}}
    verdicts[]   str

A CI is ``{value, lo, hi}`` (bootstrap 95%). The page leads with the recommended method against the
best text baseline on every held-out column, then heatmaps of the matrix, the out-of-source table of
every method, and hard-negative flag rates. When the run also has ``feature_sets.json`` (layout in
:mod:`afscope.study.feature_sets`), a section compares the SAE latents each source selects.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from afscope.errors import ArtifactError
from afscope.fileio import atomic_write_bytes, read_json_object
from afscope.report import plots

TRANSFER_FILE = "transfer.json"
TRANSFER_PAGE = "transfer.html"
KIND = "afscope_transfer"
FORMAT_VERSION = 1
MAX_HEATMAPS = 8
FEATURE_SETS_FILE = "feature_sets.json"
FEATURE_SETS_KIND = "afscope_feature_sets"
FEATURE_SETS_VERSION = 1


def read_transfer(run_dir: Path) -> dict[str, Any] | None:
    """``RUN_DIR/transfer.json`` checked for the fields the page reads (None when absent)."""
    path = Path(run_dir) / TRANSFER_FILE
    if not path.exists():
        return None
    doc = read_json_object(path, "a transfer-study result", kind=KIND, max_version=FORMAT_VERSION)
    for key in ("sources", "rows", "methods", "cells", "selection"):
        if key not in doc:
            raise ArtifactError(f"{path}: field {key!r} is missing")
    return doc


def read_feature_sets(run_dir: Path) -> dict[str, Any] | None:
    """``RUN_DIR/feature_sets.json`` checked for the fields the page reads (None when absent:
    runs from before it existed)."""
    path = Path(run_dir) / FEATURE_SETS_FILE
    if not path.exists():
        return None
    doc = read_json_object(path, "a feature-set comparison", kind=FEATURE_SETS_KIND,
                           max_version=FEATURE_SETS_VERSION)
    for key in ("sources", "entries", "threshold"):
        if key not in doc:
            raise ArtifactError(f"{path}: field {key!r} is missing")
    for i, e in enumerate(doc["entries"]):
        for key in ("model", "layer", "stat", "source_sets", "invariant_sets", "jaccard",
                    "selective_elsewhere", "latents", "verdict"):
            if key not in e:
                raise ArtifactError(f"{path}: entries[{i}]: field {key!r} is missing")
    return doc


def _ci(ci: dict[str, float] | None, pct: bool = False) -> str:
    if not ci:
        return "—"
    k = 100.0 if pct else 1.0
    d = 1 if pct else 3
    return f"{k * ci['value']:.{d}f} [{k * ci['lo']:.{d}f}, {k * ci['hi']:.{d}f}]"


def _entry(e: dict[str, Any] | None, metric: str) -> dict[str, Any] | None:
    if not e:
        return None
    pct = metric != "auroc"
    fpr = e.get("fpr")
    if fpr:
        fpr_text = _ci(fpr, True)
    elif e.get("threshold_fpr") is not None:  # single-class set: the threshold's own FPR
        fpr_text = f"{100 * e['threshold_fpr']:.1f} (training-source negatives)"
    else:
        fpr_text = ""
    return {"method": e["method"], "text": _ci(e["ci"], pct), "fpr": fpr_text,
            "verdict": e.get("verdict", "")}


def _heatmap(doc: dict[str, Any], method: str, tmp: Path, name: str) -> dict[str, Any]:
    rows = [r["id"] for r in doc["rows"]]
    cols = [s["name"] for s in doc["sources"]]
    idx = {(c["row"], c["test"]): c for c in doc["cells"] if c["method"] == method}
    vals = np.full((len(rows), len(cols)), math.nan)
    notes = [["" for _ in cols] for _ in rows]
    for i, r in enumerate(rows):
        for j, t in enumerate(cols):
            c = idx.get((r, t))
            if c is None:
                continue
            if c["auroc"]:
                vals[i, j] = c["auroc"]["value"]
                notes[i][j] = f"{c['auroc']['value']:.2f}"
            elif c["detection_rate"]:
                vals[i, j] = c["detection_rate"]["value"]
                notes[i][j] = f"det {c['detection_rate']['value']:.2f}"
            if c["in_row"]:
                notes[i][j] += "*"
    png = plots.matrix_heatmap(vals, rows, cols, notes, method)
    atomic_write_bytes(tmp / name, png)
    return {"src": name, "method": method,
            "alt": f"train x test AUROC matrix of {method}"}


def _matrix_table(doc: dict[str, Any], method: str) -> dict[str, Any]:
    cols = [s["name"] for s in doc["sources"]]
    idx = {(c["row"], c["test"]): c for c in doc["cells"] if c["method"] == method}
    body = []
    for r in doc["rows"]:
        cells = []
        for t in cols:
            c = idx.get((r["id"], t))
            if c is None:
                cells.append({"text": "—", "css": "na"})
            elif c["auroc"]:
                cells.append({"text": _ci(c["auroc"]), "css": "in" if c["in_row"] else ""})
            else:
                cells.append({"text": "det " + _ci(c["detection_rate"], True),
                              "css": "single"})
        body.append({"row": r["id"], "kind": r["kind"], "cells": cells})
    return {"method": method, "cols": cols, "rows": body}


def _out_of_source(doc: dict[str, Any]) -> dict[str, Any]:
    """Every method on each comparison column (LOSO row for train sources, all-row for eval
    sources), sorted by the selection score."""
    sel = doc["selection"]
    comps = sel["comparisons"]
    idx = {(c["method"], c["row"], c["test"]): c for c in doc["cells"]}
    rec = set(v for v in sel["recommended"].values() if v)
    body = []
    for m in doc["methods"]:
        cells = []
        for comp in comps:
            c = idx.get((m["id"], comp["row"], comp["test"]))
            ci = c[comp["metric"]] if c else None
            cells.append(_ci(ci, comp["metric"] != "auroc"))
        score = sel["scores"].get(m["id"])
        body.append({"id": m["id"], "family": m["family"], "score": score,
                     "recommended": m["id"] in rec, "cells": cells})
    body.sort(key=lambda b: (-(b["score"] if b["score"] is not None else -1.0), b["id"]))
    heads = [{"test": c["test"], "row": c["row"], "metric": c["metric"]} for c in comps]
    return {"heads": heads, "rows": body}


def _hard_negatives(doc: dict[str, Any]) -> dict[str, Any] | None:
    """Flag rates on hard-negative categories at each method's threshold, pooled-training row."""
    all_rows = [r["id"] for r in doc["rows"] if r["kind"] == "all"]
    row = all_rows[0] if all_rows else doc["rows"][-1]["id"]
    cols = sorted({(c["test"], cat) for c in doc["cells"] if c["row"] == row
                   for cat in c["hard_negative"]})
    if not cols:
        return None
    idx = {(c["method"], c["test"]): c for c in doc["cells"] if c["row"] == row}
    body = []
    for m in doc["methods"]:
        rates = [idx[(m["id"], t)]["hard_negative"].get(cat) if (m["id"], t) in idx else None
                 for t, cat in cols]
        body.append({"id": m["id"], "family": m["family"],
                     "rates": ["—" if v is None else f"{100 * v:.1f}%" for v in rates]})
    return {"row": row, "cols": [f"{t}: {cat}" for t, cat in cols], "rows": body}


def _feature_set_entry(doc: dict[str, Any], e: dict[str, Any], tmp: Path, name: str
                       ) -> dict[str, Any]:
    """One model/layer/stat of ``feature_sets.json``: the Jaccard heatmap (drawn into ``tmp``)
    and table, each source's overlap with the others, and every set's latents."""
    thr = float(doc["threshold"])
    title = f"{e['model']} L{e['layer']} sae.{e['stat']}"
    labels = e["jaccard"]["sets"]
    vals = np.array([[math.nan if v is None else v for v in r] for r in e["jaccard"]["matrix"]],
                    np.float64).reshape(len(labels), len(labels))
    notes = [["—" if math.isnan(v) else f"{v:.2f}" for v in r] for r in vals]
    png = plots.matrix_heatmap(vals, labels, labels, notes, f"Jaccard overlap: {title}",
                               xlabel="selection", ylabel="selection")
    atomic_write_bytes(tmp / name, png)
    by_id = {r["latent"]: r for r in e["latents"]}
    cols = [s["name"] for s in doc["sources"] if s.get("selects")]
    cols += [s["name"] for s in doc["sources"] if not s.get("selects")
             and any(r["auroc"].get(s["name"]) is not None for r in e["latents"])]

    def row(f: int, own: list[str]) -> dict[str, Any]:
        r = by_id[f]
        cells = []
        for c in cols:
            v = r["auroc"].get(c)
            if v is None:
                cells.append({"text": "—", "css": "na"})
                continue
            hit = abs(v - 0.5) >= thr
            css = "" if not hit else ("sel" if (v > 0.5) == (r["sign"] > 0) else "anti")
            cells.append({"text": f"{v:.2f}", "css": css})
        fires = r.get("fires_on") or {}
        order = own + [s for s in fires if s not in own]
        tokens = [(s, fires[s]["text"].removeprefix("Fires on: "), s in own)
                  for s in order if fires.get(s)]
        desc = [(s, d) for s, d in (r.get("description") or {}).items() if d]
        return {"latent": f, "sign": "+" if r["sign"] > 0 else ("−" if r["sign"] < 0 else "0"),
                "cells": cells, "tokens": tokens, "descriptions": desc,
                "sources": r["sources"], "invariant": r["invariant"],
                "everywhere": f in set(e["selective_everywhere"])}

    train = [s["name"] for s in doc["sources"] if s.get("train")]
    sets = [{"name": s, "kind": "source", "rows": [row(f, [s]) for f in lat]}
            for s, lat in e["source_sets"].items()]
    sets += [{"name": k, "kind": "all train sources", "rows": [row(f, train) for f in lat]}
             for k, lat in e["invariant_sets"].items()]
    rank = {r["latent"]: i for i, r in enumerate(e["latents"])}  # widest and worst-source first
    for st in sets:  # a source's own set by its effect there, the others as in the file
        if st["kind"] == "source":
            st["rows"].sort(key=lambda r, s=st["name"]: (
                -abs(by_id[r["latent"]]["auroc"][s] - 0.5), r["latent"]))
        else:
            st["rows"].sort(key=lambda r: rank[r["latent"]])
    return {"title": title, "verdict": e["verdict"], "heatmap": name, "labels": labels,
            "jaccard": notes, "cols": cols, "sets": sets,
            "elsewhere": [{"source": s, **v} for s, v in e["selective_elsewhere"].items()],
            "everywhere": e["selective_everywhere"], "n_latents": len(e["latents"])}


def feature_sets_context(doc: dict[str, Any] | None, tmp: Path) -> dict[str, Any] | None:
    """The feature-set section of transfer.html.j2 (None without ``feature_sets.json``)."""
    if doc is None or not doc["entries"]:
        return None
    return {"n": doc.get("n"), "threshold": doc["threshold"],
            "has_llm": any(r.get("description") for e in doc["entries"] for r in e["latents"]),
            "entries": [_feature_set_entry(doc, e, tmp, f"feature_sets_{i:02d}.png")
                        for i, e in enumerate(doc["entries"])]}


def transfer_context(doc: dict[str, Any], tmp: Path, *, index_file: str | None,
                     feature_sets: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything transfer.html.j2 reads; draws the heatmaps into ``tmp``. ``feature_sets``:
    the run's ``feature_sets.json`` (:func:`read_feature_sets`), when it has one."""
    sel = doc["selection"]
    comparisons = []
    for comp in sel["comparisons"]:
        metric = comp["metric"]
        comparisons.append({
            "test": comp["test"], "row": comp["row"], "metric": metric,
            "selection": comp["selection"],
            "recommended": [(g, _entry(e, metric)) for g, e in comp["recommended"].items()],
            "best_baseline": _entry(comp["best_baseline"], metric),
            "best_method": _entry(comp["best_method"], metric)})
    shown = [m for m in sel["recommended"].values() if m]
    shown += [m["id"] for m in doc["methods"] if m["family"] == "baseline" and m["id"] not in shown]
    shown = shown[:MAX_HEATMAPS]
    heatmaps = [_heatmap(doc, m, tmp, f"transfer_{i:02d}.png") for i, m in enumerate(shown)]
    return {
        "title": doc.get("title", "transfer study"),
        "doc": doc,
        "index_file": index_file,
        "criterion": sel["criterion"],
        "recommended": sorted(sel["recommended"].items()),
        "comparisons": comparisons,
        "heatmaps": heatmaps,
        "out_of_source": _out_of_source(doc),
        "hard": _hard_negatives(doc),
        "matrices": [_matrix_table(doc, m["id"]) for m in doc["methods"]],
        "verdicts": doc.get("verdicts", []),
        "feature_sets": feature_sets_context(feature_sets, tmp),
    }
