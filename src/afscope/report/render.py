"""``write_report``: a run's ``results.json`` + ``scores.jsonl`` -> ``report/index.html`` + figures.

The page leads with the verdicts, then the AUROC ladder (every method ranked by AUROC on the main
test set, 95% CIs, text baselines marked), the in- vs out-of-distribution table, ROC curves, score
distributions per fine category (where hard negatives show up), sweeps, calibration and the SAE
table. ``features.html`` is the feature browser. Sections whose data the run lacks are left out.

Output is deterministic: the same run gives the same bytes (no timestamps beyond the run's own
``created``, fixed plot sizes, PNGs without the ``Software`` tag), written through a temp dir that
replaces the previous report in one rename.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined

from afscope.errors import ConfigError
from afscope.fileio import atomic_dir, atomic_write_bytes, atomic_write_text
from afscope.report import plots
from afscope.report.schema import (
    CI,
    MANIFEST_FILE,
    RESULTS_FILE,
    SCORES_FILE,
    Evaluation,
    FeatureInfo,
    MethodInfo,
    Results,
    ScoreRow,
    load_results,
    load_scores,
)

logger = logging.getLogger(__name__)

REPORT_DIR = "report"
INDEX_FILE = "index.html"
FEATURES_FILE = "features.html"
TOP_METHODS = 3  # non-baseline methods drawn in ROC / distribution / calibration plots
MAX_EXAMPLES = 6  # token-highlighted examples shown per feature (keeps features.html small)


# --------------------------------------------------------------------------------------------------
# formatting


def fmt(x: float | None, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:.{digits}f}"


def fmt_ci(ci: CI | None) -> str:
    """``0.912 [0.89, 0.93]``: the value to 3 decimals, its 95% interval to 2."""
    if ci is None or not math.isfinite(ci.value):
        return "—"
    return f"{ci.value:.3f} [{ci.lo:.2f}, {ci.hi:.2f}]"


def fmt_pct_ci(ci: CI | None) -> str:
    if ci is None or not math.isfinite(ci.value):
        return "—"
    return f"{100 * ci.value:.1f}% [{100 * ci.lo:.1f}, {100 * ci.hi:.1f}]"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60] or "x"


def _value(ci: CI | None) -> float:
    return ci.value if ci is not None and math.isfinite(ci.value) else math.nan


# --------------------------------------------------------------------------------------------------
# view model


@dataclass
class Cell:
    text: str
    sub: str = ""
    css: str = ""


@dataclass
class MethodRow:
    rank: int | None
    method: MethodInfo
    href: str | None
    cv: str
    main: Cell
    extra: dict[str, Cell] = field(default_factory=dict)  # dataset name -> cell
    css: str = ""


@dataclass
class Verdict:
    text: str
    warn: bool = False


@dataclass
class Image:
    file: str
    alt: str
    caption: str = ""


class _View:
    """Indexes the validated results once; the section builders read from it."""

    def __init__(self, results: Results, scores: dict[tuple[str, str], ScoreRow]):
        self.results = results
        self.scores = scores
        self.evals: dict[tuple[str, str], Evaluation] = {
            (e.method, e.dataset): e for e in results.evaluations}
        evaluated = {e.dataset for e in results.evaluations}
        role_order = {"test": 0, "ood": 1, "train": 2}
        self.eval_datasets = sorted(
            (d for d in results.datasets if d.name in evaluated),
            key=lambda d: role_order[d.role])  # stable: keeps the run's order within a role
        self.eval_role = {e.dataset: e.role for e in results.evaluations}
        # datasets where some method has an AUROC (single-class sets have none)
        self.auroc_datasets = [d.name for d in self.eval_datasets if any(
            math.isfinite(_value(e.metrics.auroc))
            for e in results.evaluations if e.dataset == d.name)]
        tests = [d for d in self.auroc_datasets if self.eval_role[d] == "test"]
        self.main = (tests or self.auroc_datasets or [None])[0]
        self.ranked = sorted(results.methods, key=self._rank_key)
        self.probes = [m for m in self.ranked if m.family != "baseline"]
        self.baselines = [m for m in self.ranked if m.family == "baseline"]

    def auroc(self, method: str, dataset: str | None) -> CI | None:
        ev = self.evals.get((method, dataset or ""))
        return ev.metrics.auroc if ev is not None else None

    def _rank_key(self, m: MethodInfo) -> tuple[int, float, str]:
        v = _value(self.auroc(m.id, self.main))
        return (0, -v, m.id) if math.isfinite(v) else (1, 0.0, m.id)

    def best(self, methods: list[MethodInfo], dataset: str) -> MethodInfo | None:
        scored = [m for m in methods if math.isfinite(_value(self.auroc(m.id, dataset)))]
        return max(scored, key=lambda m: (_value(self.auroc(m.id, dataset)), m.id), default=None)

    def highlighted(self) -> list[MethodInfo]:
        """Top probes by the ladder plus the best baseline: the methods the plots draw."""
        chosen = self.probes[:TOP_METHODS]
        if self.baselines and self.main is not None:
            best = self.best(self.baselines, self.main) or self.baselines[0]
            chosen = [*chosen, best]
        elif self.baselines:
            chosen = [*chosen, self.baselines[0]]
        return chosen


def _verdicts(view: _View) -> tuple[list[Verdict], bool]:
    """Compare the best activation/SAE probe with the best text baseline on each AUROC set.

    Returns the sentences and whether the probes lose (or tie) on the main test set.
    """
    out: list[Verdict] = []
    loses_on_main = False
    if not view.probes or not view.baselines:
        return out, loses_on_main
    for ds in view.auroc_datasets:
        probe, base = view.best(view.probes, ds), view.best(view.baselines, ds)
        if probe is None or base is None:
            continue
        p, b = view.auroc(probe.id, ds), view.auroc(base.id, ds)
        assert p is not None and b is not None  # best() only returns methods with an AUROC
        where = f"{ds} ({view.eval_role[ds]})"
        if p.value > b.value:
            overlap = " — but the 95% intervals overlap" if p.lo <= b.hi else ""
            out.append(Verdict(f"On {where}, the best probe {probe.id} ({fmt_ci(p)}) beats the "
                               f"best text baseline {base.id} ({fmt_ci(b)}){overlap}."))
        else:
            out.append(Verdict(f"No activation or SAE probe beats the best text baseline on "
                               f"{where}: {base.id} {fmt_ci(b)} vs the best probe {probe.id} "
                               f"{fmt_ci(p)}.", warn=True))
            loses_on_main = loses_on_main or ds == view.main
    out += _detection_verdicts(view)
    return out, loses_on_main


def _detection_verdicts(view: _View) -> list[Verdict]:
    """On all-AF sets (no AUROC) compare detection rates: the OOD failure mode of seed 001."""
    out: list[Verdict] = []
    for d in view.eval_datasets:
        if d.name in view.auroc_datasets or d.n_neg or not d.n_pos:
            continue

        def det(m: MethodInfo, name: str = d.name) -> float:
            ev = view.evals.get((m.id, name))
            return _value(ev.metrics.detection_rate) if ev is not None else math.nan

        probes = [m for m in view.probes if math.isfinite(det(m))]
        bases = [m for m in view.baselines if math.isfinite(det(m))]
        if not probes or not bases:
            continue
        p = max(probes, key=lambda m: (det(m), m.id))
        b = max(bases, key=lambda m: (det(m), m.id))
        where = f"{d.name} ({view.eval_role[d.name]}, all AF)"
        fpr = view.evals.get((p.id, view.main or ""))
        fpr_text = "" if fpr is None or fpr.metrics.false_positive_rate is None else (
            f" (its false-positive rate on {view.main}: "
            f"{_value(fpr.metrics.false_positive_rate):.0%})")
        if det(p) > det(b):
            out.append(Verdict(f"On {where}, the best probe {p.id} flags {det(p):.0%} of the "
                               f"traces{fpr_text}, the best text baseline {b.id} "
                               f"{det(b):.0%}."))
        else:
            out.append(Verdict(f"No activation or SAE probe flags more of {where} than the best "
                               f"text baseline: {b.id} {det(b):.0%} vs {p.id} {det(p):.0%}.",
                               warn=True))
    return out


def _link(target: Path, out: Path) -> str | None:
    """Relative href from the report folder to ``target``, or None when it does not exist."""
    if not target.exists():
        return None
    return Path(os.path.relpath(target.resolve(), out.resolve())).as_posix()


def _cv_text(m: MethodInfo) -> str:
    if m.cv is None:
        return "—"
    return f"{fmt(m.cv.auroc_mean)} ± {fmt(m.cv.auroc_std)}"


def _dataset_cell(ev: Evaluation | None) -> Cell:
    """AUROC for a two-class set; detection rate (all AF) or false-positive rate (no AF) else."""
    if ev is None:
        return Cell("—", css="na")
    mean = f"mean score {fmt(ev.metrics.mean_score)}"
    if ev.n_pos == ev.n and ev.n > 0:
        det = ev.metrics.detection_rate
        hits = f"({round(det.value * ev.n)}/{ev.n}) · " if det is not None else ""
        return Cell(f"det. {fmt_pct_ci(det)}", hits + mean, "single")
    if ev.n_pos == 0:
        return Cell(f"FPR {fmt_pct_ci(ev.metrics.false_positive_rate)}", mean, "single")
    return Cell(fmt_ci(ev.metrics.auroc), mean)


def _method_rows(view: _View, run_dir: Path, out: Path) -> list[MethodRow]:
    rows = []
    for i, m in enumerate(view.ranked):
        main_ev = view.evals.get((m.id, view.main or ""))
        ranked = main_ev is not None and math.isfinite(_value(main_ev.metrics.auroc))
        extra = {d.name: _dataset_cell(view.evals.get((m.id, d.name))) for d in view.eval_datasets}
        main = Cell(fmt_ci(main_ev.metrics.auroc)) if main_ev else Cell("—", css="na")
        if main_ev is not None:
            main.sub = (f"TPR@1%FPR {fmt_ci(main_ev.metrics.tpr_at_1fpr)} · "
                        f"TPR@5%FPR {fmt_ci(main_ev.metrics.tpr_at_5fpr)}")
        href = _link(run_dir / m.artifact, out) if m.artifact else None
        rows.append(MethodRow(i + 1 if ranked else None, m, href, _cv_text(m), main, extra,
                              "baseline" if m.family == "baseline" else ""))
    return rows


def _threshold(m: MethodInfo) -> float:
    t = m.params.get("threshold", 0.5)
    return float(t) if isinstance(t, (int, float)) else 0.5


def _colors(methods: list[MethodInfo]) -> dict[str, str]:
    out, k = {}, 0
    for m in methods:
        if m.family == "baseline":
            out[m.id] = plots.BASELINE_COLOR
        else:
            out[m.id] = plots.PALETTE[k % len(plots.PALETTE)]
            k += 1
    return out


def _roc(scores: ScoreRow) -> tuple[np.ndarray, np.ndarray]:
    """ROC points (fpr, tpr) of one score list; ties form one step."""
    s = np.asarray(scores.scores, dtype=float)
    y = np.asarray(scores.labels, dtype=int)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0.0, tps / max(int(y.sum()), 1)]
    fpr = np.r_[0.0, fps / max(int((1 - y).sum()), 1)]
    return fpr, tpr


def _figures(view: _View, tmp: Path) -> dict[str, Any]:
    """Draw every figure into ``tmp``; returns the Image lists keyed by section."""
    figs: dict[str, Any] = {"ladder": None, "roc": [], "dist": [], "sweep": [], "calib": []}
    chosen = view.highlighted()
    colors = _colors(chosen)

    def save(name: str, data: bytes, alt: str, caption: str = "") -> Image:
        atomic_write_bytes(tmp / name, data)
        return Image(name, alt, caption)

    if view.main is not None:
        rows = [m for m in view.ranked if math.isfinite(_value(view.auroc(m.id, view.main)))]
        cis = [view.auroc(m.id, view.main) for m in rows]
        if rows:
            figs["ladder"] = save(
                "ladder.png",
                plots.ladder_plot([m.id for m in rows], [c.value for c in cis if c],
                                  [c.lo for c in cis if c], [c.hi for c in cis if c],
                                  [m.family for m in rows], view.main),
                f"AUROC ladder on {view.main}")

    for i, ds in enumerate(view.auroc_datasets):
        curves = []
        for m in chosen:
            row = view.scores.get((m.id, ds))
            ci = view.auroc(m.id, ds)
            if row is None or ci is None or len(set(row.labels)) < 2:
                continue
            fpr, tpr = _roc(row)
            curves.append(plots.Curve(f"{m.id} ({ci.value:.3f})", fpr, tpr, colors[m.id],
                                      m.family == "baseline"))
        if curves:
            figs["roc"].append(save(f"roc_{i}_{_slug(ds)}.png", plots.roc_plot(curves, ds),
                                    f"ROC curves on {ds}", ds))

    for i, m in enumerate(chosen):
        groups = []
        for d in view.eval_datasets:
            row = view.scores.get((m.id, d.name))
            if row is None:
                continue
            cats = np.asarray(row.categories)
            s = np.asarray(row.scores, dtype=float)
            y = np.asarray(row.labels, dtype=int)
            names = sorted(set(row.categories),
                           key=lambda c, cats=cats, y=y: (-int(y[cats == c].max()), c))
            for c in names:
                mask = cats == c
                groups.append((f"{d.name}: {c}", s[mask], bool(y[mask].max())))
        if groups:
            figs["dist"].append(save(
                f"scores_{i}_{_slug(m.id)}.png",
                plots.score_distribution_plot(groups, _threshold(m), m.id),
                f"score distribution per category for {m.id}", m.id))

    for i, sw in enumerate(view.results.sweeps):
        if not sw.points:
            continue
        x = [p.n_features if sw.param == "n_features" else p.C for p in sw.points]
        if any(v <= 0 for v in x):
            logger.warning("sweep %s: non-positive %s, not drawn on a log axis", sw.method, sw.param)
            continue
        figs["sweep"].append(save(
            f"sweep_{i}_{_slug(sw.method)}_{sw.param}.png",
            plots.sweep_plot(x, [p.cv_auroc for p in sw.points], [p.cv_std for p in sw.points],
                             [p.test_auroc for p in sw.points], sw.param,
                             f"{sw.method}: {sw.param} sweep"),
            f"{sw.param} sweep of {sw.method}", f"{sw.method} — {sw.param}"))

    if view.main is not None:
        curves = []
        for m in chosen:
            ev = view.evals.get((m.id, view.main))
            if ev is None or ev.calibration is None:
                continue
            cal = ev.calibration
            pts = [(p, f) for p, f, c in zip(cal.mean_pred, cal.frac_pos, cal.count)
                   if c > 0 and p is not None and f is not None]
            if pts:
                xs, ys = np.array(pts, dtype=float).T
                curves.append(plots.Curve(f"{m.id} (ECE {ev.metrics.ece:.3f})", xs, ys,
                                          colors[m.id], m.family == "baseline"))
        if curves:
            figs["calib"].append(save("calibration.png", plots.calibration_plot(curves, view.main),
                                      f"calibration on {view.main}", view.main))
    return figs


def _category_table(view: _View) -> dict[str, Any] | None:
    """Flag rate per (dataset, fine category) for the highlighted methods."""
    chosen = view.highlighted()
    rows = []
    for d in view.eval_datasets:
        cats: list[str] = []
        for m in chosen:
            ev = view.evals.get((m.id, d.name))
            if ev is not None:
                cats += [c for c in ev.per_category if c not in cats]
        for c in sorted(cats):
            cells = []
            n = None
            for m in chosen:
                ev = view.evals.get((m.id, d.name))
                pc = ev.per_category.get(c) if ev is not None else None
                if pc is None:
                    cells.append(Cell("—", css="na"))
                    continue
                n = pc.n
                sub = f"AUROC vs AF {fmt_ci(pc.auroc_vs_pos)}" if pc.auroc_vs_pos else ""
                cells.append(Cell(f"{100 * pc.flag_rate:.1f}%", sub))
            rows.append({"dataset": d.name, "category": c, "n": n, "cells": cells,
                         "hard": "hard" in c})
    if not rows:
        return None
    return {"methods": chosen, "rows": rows}


def _token_spans(tokens: list[tuple[str, float]], scale: float) -> list[dict[str, Any]]:
    """Each token with its highlight opacity: activation / the feature's max activation."""
    top = max((a for _, a in tokens), default=0.0)
    out = []
    for tok, act in tokens:
        alpha = min(max(act / scale, 0.0), 1.0) if scale > 0 else 0.0
        if act > 0:
            alpha = max(alpha, 0.05)  # any activation stays visible
        out.append({"text": tok, "act": f"{act:.3f}", "alpha": f"{alpha:.2f}",
                    "hot": alpha > 0, "max": act == top and act > 0})
    return out


def _feature_views(features: list[FeatureInfo]) -> list[dict[str, Any]]:
    out = []
    for f in sorted(features, key=lambda f: (-f.auroc, f.model, f.layer, f.feature)):
        examples = sorted(f.examples, key=lambda e: (-e.activation, e.id))[:MAX_EXAMPLES]
        scale = max((a for e in examples for _, a in e.tokens), default=0.0)
        out.append({"f": f, "anchor": f"feat-{_slug(f.model)}-l{f.layer}-{f.feature}",
                    "examples": [{"e": e, "spans": _token_spans(e.tokens, scale)}
                                 for e in examples]})
    return out


def _feature_summary(features: list[FeatureInfo]) -> dict[str, Any]:
    cats: dict[str, int] = {}
    themes: dict[str, int] = {}
    for f in features:
        cats[f.category or "unclassified"] = cats.get(f.category or "unclassified", 0) + 1
        if f.theme:
            themes[f.theme] = themes.get(f.theme, 0) + 1
    return {"categories": sorted(cats.items(), key=lambda kv: (-kv[1], kv[0])),
            "themes": sorted(themes.items(), key=lambda kv: (-kv[1], kv[0]))}


# --------------------------------------------------------------------------------------------------
# entry point


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("afscope.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters.update(fmt=fmt, fmt_ci=fmt_ci, pct=lambda x: fmt(100 * x, 1) + "%")
    return env


def _resolve_out(run_dir: Path, out: str | Path | None) -> Path:
    out_path = Path(out) if out is not None else run_dir / REPORT_DIR
    r_out, r_run = out_path.resolve(), run_dir.resolve()
    if r_out == r_run or r_out in r_run.parents:
        raise ConfigError(f"--out {out_path}: the report folder is replaced on every run, so it "
                          f"cannot be the run directory {run_dir} or one of its parents")
    if out_path.exists() and (not out_path.is_dir() or (
            any(out_path.iterdir()) and not (out_path / INDEX_FILE).exists())):
        raise ConfigError(f"--out {out_path}: exists and is not an afscope report folder "
                          f"(no {INDEX_FILE}); refusing to replace it")
    return out_path


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Render the HTML report of a run and return the path of its ``index.html``.

    Reads ``RUN_DIR/results.json`` (required) and ``RUN_DIR/scores.jsonl`` (optional: without it
    the ROC and score-distribution figures are left out). Writes ``index.html``, the PNG figures
    and, when the run has features, ``features.html`` into ``out`` (default ``RUN_DIR/report``),
    replacing any previous report there in one rename.

    Raises :class:`~afscope.errors.ArtifactError` naming the file and field when the results are
    malformed, :class:`~afscope.errors.ConfigError` when ``out`` is not a safe place to write.
    """
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    scores = load_scores(run_dir, results)
    out_path = _resolve_out(run_dir, out)
    view = _View(results, scores)
    verdicts, loses_on_main = _verdicts(view)
    features = _feature_views(results.features)
    env = _environment()
    links = [(name, _link(run_dir / name, out_path))
             for name in (MANIFEST_FILE, RESULTS_FILE, SCORES_FILE)]
    with atomic_dir(out_path) as tmp:
        figs = _figures(view, tmp)
        context = {
            "r": results,
            "view": view,
            "links": [(name, href) for name, href in links if href],
            "run_verdicts": results.verdicts,
            "verdicts": verdicts,
            "loses_on_main": loses_on_main,
            "best_baseline": view.best(view.baselines, view.main) if view.main else None,
            "rows": _method_rows(view, run_dir, out_path),
            "figs": figs,
            "categories": _category_table(view),
            "sweeps": [s for s in results.sweeps if s.points],
            "features": features,
            "feature_summary": _feature_summary(results.features),
            "sae_links": [_link(run_dir / s.path, out_path) if s.path else None
                          for s in results.sae],
            "features_file": FEATURES_FILE if features else None,
        }
        atomic_write_text(tmp / INDEX_FILE, env.get_template("index.html.j2").render(context))
        if features:
            atomic_write_text(tmp / FEATURES_FILE,
                              env.get_template("features.html.j2").render(context))
    index = out_path / INDEX_FILE
    logger.info("report written to %s", index)
    return index
