"""``write_report``: a run's ``results.json`` + ``scores.jsonl`` -> ``report/index.html`` + figures.

The page leads with the verdicts, then the AUROC ladder (every method ranked by AUROC on the main
test set, 95% CIs, text baselines marked), the in- vs out-of-distribution table, ROC curves, score
distributions per fine category (where hard negatives show up), sweeps, calibration and the SAE
table. ``features.html`` is the feature browser. Sections whose data the run lacks are left out.
``behaviour.html`` shows the behaviour lab's ``behaviour.json`` (organism compliance gap, context
ablation, steering sweep, judge agreement); a run with only that file gets it as its index page.
``explainer.html`` (:mod:`afscope.report.explainer`) shows the explainer evaluation
``explain/eval/metrics.json``; a run with nothing else gets it as its index page.

Output is deterministic: the same run gives the same bytes (no timestamps beyond the run's own
``created``, fixed plot sizes, PNGs without the ``Software`` tag), written through a temp dir that
replaces the previous report in one rename.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined

from afscope.errors import ConfigError
from afscope.fileio import atomic_dir, atomic_write_bytes, atomic_write_text
from afscope.report import plots
from afscope.report.schema import (
    BEHAVIOUR_FILE,
    BEHAVIOUR_LABELS,
    CI,
    MANIFEST_FILE,
    RESULTS_FILE,
    SCORES_FILE,
    Behaviour,
    ContextAblation,
    Evaluation,
    FeatureInfo,
    JudgeInfo,
    MethodInfo,
    ModelGap,
    Organism,
    Results,
    ScoreRow,
    SteerCondition,
    SteeringInfo,
    load_results,
    load_scores,
    read_behaviour,
    read_explain,
)
from afscope.stats import mean_ci

logger = logging.getLogger(__name__)

REPORT_DIR = "report"
INDEX_FILE = "index.html"
FEATURES_FILE = "features.html"
BEHAVIOUR_PAGE = "behaviour.html"
EXPLAINER_PAGE = "explainer.html"
TOP_METHODS = 3  # non-baseline methods drawn in ROC / distribution / calibration plots
MAX_EXAMPLES = 6  # token-highlighted examples shown per feature (keeps features.html small)
MAX_TEXT = 600  # characters of a lab example shown (behaviour.json promises no more; kept if not)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp")


# --------------------------------------------------------------------------------------------------
# formatting


def fmt(x: float | None, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:.{digits}f}"


def _fmt_interval(ci: CI | None, value: Callable[[float], str], bound: Callable[[float], str]
                  ) -> str:
    """``value [lo, hi]`` with the given formatters; ``—`` when there is no finite value."""
    if ci is None or not math.isfinite(ci.value):
        return "—"
    return f"{value(ci.value)} [{bound(ci.lo)}, {bound(ci.hi)}]"


def fmt_ci(ci: CI | None) -> str:
    """``0.912 [0.89, 0.93]``: the value to 3 decimals, its 95% interval to 2."""
    return _fmt_interval(ci, lambda v: f"{v:.3f}", lambda v: f"{v:.2f}")


def fmt_pct_ci(ci: CI | None) -> str:
    """``91.2% [89.0, 93.1]``: a rate in percent."""
    return _fmt_interval(ci, lambda v: f"{100 * v:.1f}%", lambda v: f"{100 * v:.1f}")


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
    faith = [f.faithfulness for f in features if f.faithfulness is not None]
    describers = sorted({f.describer for f in features if f.describer})
    return {"categories": sorted(cats.items(), key=lambda kv: (-kv[1], kv[0])),
            "themes": sorted(themes.items(), key=lambda kv: (-kv[1], kv[0])),
            "faithfulness": mean_ci(faith) if faith else None, "describers": describers}


# --------------------------------------------------------------------------------------------------
# behaviour lab page (behaviour.json)


def _pts(x: float, digits: int = 0, sign: bool = False) -> str:
    """A fraction in percentage points, with a real minus sign (``−10``) and no ``-0``."""
    v = round(100 * x, digits) + 0.0  # rounding first, then + 0.0, turns -0.0 into 0.0
    text = f"{v:+.{digits}f}" if sign and v != 0 else f"{v:.{digits}f}"
    return text.replace("-", "\u2212")


def fmt_pts_ci(ci: CI | None, digits: int = 1) -> str:
    """``+45.0 [20.0, 70.0]``: a gap (a difference of rates) in percentage points."""
    return _fmt_interval(ci, lambda v: _pts(v, digits, sign=True), lambda v: _pts(v, digits))


def fmt_score_ci(ci: CI | None) -> str:
    """``72.3 [65.1, 80.0]``: a 0-100 judge score."""
    return _fmt_interval(ci, lambda v: f"{v:.1f}", lambda v: f"{v:.1f}")


def _rate(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{100 * x:.0f}%"


def _finite(ci: CI | None) -> bool:
    return ci is not None and all(math.isfinite(v) for v in (ci.value, ci.lo, ci.hi))


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def _pooled(gap: ModelGap, monitored: bool, key: str) -> float | None:
    """Rate of ``key`` ("comply" / "af") over the cues of one side, weighted by each cue's n."""
    pairs = [(getattr(c, key), c.n) for c in gap.per_cue if c.monitored == monitored]
    pairs = [(ci.value, n) for ci, n in pairs if ci is not None and math.isfinite(ci.value) and n]
    total = sum(n for _, n in pairs)
    return sum(v * n for v, n in pairs) / total if total else None


def _organism_verdicts(org: Organism) -> list[Verdict]:
    """The compliance gap of the organism, next to the base model's, and what the difference says."""
    models = {m.name: m for m in org.models}
    organism, base = models.get("organism"), models.get("base")
    out: list[Verdict] = []
    if organism is None:
        if base is not None and _finite(base.gap):
            out.append(Verdict(f"The base model's compliance gap (monitored − unmonitored) is "
                               f"{_pts(base.gap.value)} points [CI {_pts(base.gap.lo)}, "
                               f"{_pts(base.gap.hi)}]; no organism was evaluated."))
        return out
    if not _finite(organism.gap):
        return [Verdict(f"The organism's compliance gap could not be computed ({organism.n_units} "
                        f"units; at least 2 are needed for an interval).", warn=True)]
    g = organism.gap
    assert g is not None  # _finite
    if _pts(g.value) == "0":
        text = (f"The organism complies as often when monitored as when not (gap 0 points "
                f"[CI {_pts(g.lo)}, {_pts(g.hi)}])")
    else:
        more = "more" if g.value > 0 else "less"
        text = (f"The organism complies {_pts(abs(g.value))} points {more} often when monitored "
                f"[CI {_pts(g.lo)}, {_pts(g.hi)}]")
    if base is not None and _finite(base.gap):
        b = base.gap
        assert b is not None
        text += f"; the base model's gap is {_pts(b.value)} [{_pts(b.lo)}, {_pts(b.hi)}]"
    d = org.gap_difference
    diff = (f"the gap difference (organism − base) is {_pts(d.value)} [{_pts(d.lo)}, "
            f"{_pts(d.hi)}]" if d is not None and _finite(d) else "")
    if g.lo <= 0 <= g.hi:
        out.append(Verdict(text + ". The organism's CI includes 0: no measurable compliance gap.",
                           warn=True))
    elif g.value < 0:
        out.append(Verdict(text + ": the opposite of alignment faking, which complies more when "
                           "it believes its answers are used for training.", warn=True))
    elif d is None or not _finite(d):
        out.append(Verdict(text + ". No gap difference against the base model was measured, so "
                           "whether the fine-tuning created the gap is not known.", warn=True))
    elif d.lo > 0:
        out.append(Verdict(text + f": the fine-tuning created the gap ({diff})."))
    elif d.hi < 0:
        out.append(Verdict(text + f", larger than the organism's: the fine-tuning did not "
                           f"create the gap ({diff}).", warn=True))
    else:
        out.append(Verdict(text + f"; {diff}, which includes 0: the fine-tuning did not "
                           f"measurably change the gap.", warn=True))
    af_mon, af_unmon = _pooled(organism, True, "af"), _pooled(organism, False, "af")
    if af_mon is not None and af_unmon is not None:
        out.append(Verdict(f"The organism's answers show alignment-faking reasoning in "
                           f"{_rate(af_mon)} of monitored and {_rate(af_unmon)} of unmonitored "
                           f"answers."))
    return out


def _ablation_verdicts(ab: ContextAblation) -> list[Verdict]:
    """``n`` counts the labelled pairs; ``n_unlabelled`` the pairs left out for want of a label."""
    if ab.changed_rate is None:
        return [Verdict(f"Context ablation: none of the {ab.n + ab.n_unlabelled} pairs has a "
                        f"behaviour label on both sides, so there is no changed rate.", warn=True)]
    text = (f"Swapping only the monitoring cue in the system prompt changed the {ab.target} "
            f"model's behaviour on {_rate(ab.changed_rate)} of {ab.n} labelled requests")
    if ab.n_unlabelled:
        text += f" ({ab.n_unlabelled} more could not be labelled)"
    return [Verdict(text + (f": {ab.warning}." if ab.warning else "."),
                    warn=ab.warning is not None)]


def _steer_baseline(st: SteeringInfo) -> SteerCondition | None:
    """The unsteered condition: layer None (the lab names it ``baseline``)."""
    return next((c for c in st.conditions if c.layer is None), None)


def _steering_verdicts(st: SteeringInfo) -> list[Verdict]:
    base = _steer_baseline(st)
    steered = [c for c in st.conditions if c.layer is not None and c.comply is not None]
    if base is None or base.comply is None or not steered:
        return []
    best = max(steered, key=lambda c: (abs(c.comply - base.comply), c.name))
    delta = best.comply - base.comply
    if round(100 * delta) == 0:
        return [Verdict(f"No steering condition moves the comply rate away from the unsteered "
                        f"{_rate(base.comply)} (n = {base.n}).", warn=True)]
    text = (f"Steering with {st.vector.name} at layer {best.layer}, alpha {best.alpha:g} moves "
            f"the comply rate from {_rate(base.comply)} to {_rate(best.comply)} "
            f"({_pts(delta, sign=True)} points, n = {best.n})")
    if best.af is not None and base.af is not None:
        text += f"; AF from {_rate(base.af)} to {_rate(best.af)}"
    if _finite(best.coherent) and _finite(base.coherent):
        assert best.coherent is not None and base.coherent is not None
        text += f"; coherence {base.coherent.value:.0f} → {best.coherent.value:.0f}"
    return [Verdict(text + ".")]


def _judge_verdicts(judge: JudgeInfo) -> list[Verdict]:
    if judge.method == "rules":
        return [Verdict("Behaviour labels come from the offline rule classifier only (no LLM "
                        "judge).")]
    a = judge.agreement
    if a is None or a.n == 0:
        return [Verdict("The LLM judge's labels were not compared with the rule classifier.",
                        warn=True)]
    kappa = "undefined" if a.kappa is None else f"{a.kappa:.2f}"
    noisy = a.kappa is not None and a.kappa < 0.4
    out = [Verdict(f"The LLM judge and the rule classifier agree on "
                   f"{_rate(a.behaviour_agreement)} of {a.n} answers (Cohen's κ {kappa})"
                   + (": the behaviour labels are noisy." if noisy else "."), warn=noisy)]
    if a.parse_failure_rate is not None and a.parse_failure_rate > 0.1:
        out.append(Verdict(f"{_rate(a.parse_failure_rate)} of the judge's answers could not be "
                           f"parsed.", warn=True))
    return out


def _behaviour_verdicts(b: Behaviour) -> list[Verdict]:
    out: list[Verdict] = []
    if b.organism is not None:
        out += _organism_verdicts(b.organism)
    if b.context_ablation is not None:
        out += _ablation_verdicts(b.context_ablation)
    if b.steering is not None:
        out += _steering_verdicts(b.steering)
    return out + _judge_verdicts(b.judge)


def _organism_figures(org: Organism, tmp: Path) -> list[Image]:
    """The gaps (organism, base, their difference) and the per-cue comply rates, with CIs."""
    figs: list[Image] = []
    rows: list[tuple[str, CI, str]] = []
    for m in org.models:
        if m.gap is not None and _finite(m.gap):
            rows.append((f"{m.name} gap", m.gap,
                         plots.PALETTE[1] if m.name == "organism" else plots.BASELINE_COLOR))
    if org.gap_difference is not None and _finite(org.gap_difference):
        rows.append(("organism − base", org.gap_difference, plots.PALETTE[0]))
    if rows:
        data = plots.interval_plot([r[0] for r in rows], [100 * r[1].value for r in rows],
                                   [100 * r[1].lo for r in rows], [100 * r[1].hi for r in rows],
                                   [r[2] for r in rows],
                                   "comply rate monitored − unmonitored (points, 95% CI)",
                                   "compliance gap")
        atomic_write_bytes(tmp / "organism_gap.png", data)
        figs.append(Image("organism_gap.png", "compliance gap of the organism and the base model",
                          "compliance gap (dashed: no gap)"))
    cues = [(m.name, c) for m in org.models for c in m.per_cue if _finite(c.comply)]
    if cues:
        data = plots.interval_plot(
            [f"{name}: {c.cue} ({'monitored' if c.monitored else 'unmonitored'})"
             for name, c in cues],
            [100 * c.comply.value for _, c in cues if c.comply],
            [100 * c.comply.lo for _, c in cues if c.comply],
            [100 * c.comply.hi for _, c in cues if c.comply],
            [plots.PALETTE[1] if c.monitored else plots.PALETTE[0] for _, c in cues],
            "comply rate, % (95% CI); red: monitored cue, blue: unmonitored", "comply rate per cue",
            ref=None, xlim=(-2.0, 102.0))
        atomic_write_bytes(tmp / "organism_cues.png", data)
        figs.append(Image("organism_cues.png", "comply rate per cue", "comply rate per cue"))
    return figs


def _direction_table(ab: ContextAblation) -> dict[str, Any] | None:
    """``directions`` as a before (monitored) x after (unmonitored) count matrix."""
    if not ab.directions:
        return None
    pairs = [tuple(k.split("->", 1)) for k in ab.directions]
    seen = {x for p in pairs for x in p}
    labels = [x for x in BEHAVIOUR_LABELS if x in seen] + sorted(seen - set(BEHAVIOUR_LABELS))
    rows = [{"label": a, "cells": [{"count": ab.directions.get(f"{a}->{b}", 0), "same": a == b}
                                   for b in labels]} for a in labels]
    return {"labels": labels, "rows": rows}


def _steer_files(st: SteeringInfo, run_dir: Path, tmp: Path
                 ) -> tuple[list[Image], list[str], list[str]]:
    """Copy the sweep's plot files into the report; returns (images, other files, missing)."""
    images: list[Image] = []
    others: list[str] = []
    missing: list[str] = []
    root = run_dir.resolve()
    for i, rel in enumerate(st.plots):
        src = run_dir / rel
        if not src.is_file() or not src.resolve().is_relative_to(root):
            missing.append(rel)
            continue
        suffix = src.suffix.lower()
        name = f"steer_{i}_{_slug(src.stem)}{suffix}"
        atomic_write_bytes(tmp / name, src.read_bytes())
        if suffix in IMAGE_SUFFIXES:
            images.append(Image(name, f"steering plot {src.stem}", rel))
        else:
            others.append(name)
    return images, others, missing


def _behaviour_context(b: Behaviour, run_dir: Path, out: Path, tmp: Path,
                       index_file: str | None, explainer_file: str | None = None
                       ) -> dict[str, Any]:
    """Everything behaviour.html.j2 reads; draws the figures and copies the plots into ``tmp``."""
    org, ab, st = b.organism, b.context_ablation, b.steering
    ctx: dict[str, Any] = {
        "b": b,
        "title": f"afscope behaviour lab: {b.model}",
        "index_file": index_file,
        "explainer_file": explainer_file,
        "links": [(name, href) for name in (MANIFEST_FILE, BEHAVIOUR_FILE)
                  if (href := _link(run_dir / name, out))],
        "verdicts": _behaviour_verdicts(b),
        "org": None, "ab": None, "st": None,
    }
    if org is not None:
        ctx["org"] = {
            "o": org, "href": _link(run_dir / org.run_dir, out),
            "figs": _organism_figures(org, tmp),
            "gaps": [(m, fmt_pts_ci(m.gap)) for m in org.models],
            "difference": fmt_pts_ci(org.gap_difference),
            "examples": [{"e": e, "request": _cut(e.request), "response": _cut(e.response)}
                         for e in org.examples[:MAX_EXAMPLES]],
        }
    if ab is not None:
        ctx["ab"] = {
            "a": ab, "href": _link(run_dir / ab.run_dir, out), "directions": _direction_table(ab),
            "examples": [{"e": e, "request": _cut(e.request), "monitored": _cut(e.monitored),
                          "unmonitored": _cut(e.unmonitored)} for e in ab.examples[:MAX_EXAMPLES]],
        }
    if st is not None:
        images, others, missing = _steer_files(st, run_dir, tmp)
        base = _steer_baseline(st)
        ctx["st"] = {"s": st, "href": _link(run_dir / st.run_dir, out), "images": images,
                     "others": others, "missing": missing,
                     "baseline": base.name if base is not None else None,
                     "vector": list(zip(st.vector.layers, st.vector.norms))}
    return ctx


# --------------------------------------------------------------------------------------------------
# entry point


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("afscope.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters.update(fmt=fmt, fmt_ci=fmt_ci, pct=lambda x: fmt(100 * x, 1) + "%",
                       pct_ci=fmt_pct_ci, pts_ci=fmt_pts_ci, score_ci=fmt_score_ci, rate=_rate)
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


def _write_results_pages(results: Results, scores: dict[tuple[str, str], ScoreRow], run_dir: Path,
                         out: Path, tmp: Path, env: Environment, behaviour_file: str | None,
                         explainer_file: str | None = None, transfer_file: str | None = None
                         ) -> None:
    """index.html (and features.html) of ``results.json`` into ``tmp``."""
    view = _View(results, scores)
    verdicts, loses_on_main = _verdicts(view)
    features = _feature_views(results.features)
    links = [(name, _link(run_dir / name, out))
             for name in (MANIFEST_FILE, RESULTS_FILE, SCORES_FILE)]
    figs = _figures(view, tmp)
    context = {
        "r": results,
        "view": view,
        "links": [(name, href) for name, href in links if href],
        "run_verdicts": results.verdicts,
        "verdicts": verdicts,
        "loses_on_main": loses_on_main,
        "best_baseline": view.best(view.baselines, view.main) if view.main else None,
        "rows": _method_rows(view, run_dir, out),
        "figs": figs,
        "categories": _category_table(view),
        "sweeps": [s for s in results.sweeps if s.points],
        "features": features,
        "feature_summary": _feature_summary(results.features),
        "sae_links": [_link(run_dir / s.path, out) if s.path else None for s in results.sae],
        "features_file": FEATURES_FILE if features else None,
        "behaviour_file": behaviour_file,
        "explainer_file": explainer_file,
        "transfer_file": transfer_file,
    }
    atomic_write_text(tmp / INDEX_FILE, env.get_template("index.html.j2").render(context))
    if features:
        atomic_write_text(tmp / FEATURES_FILE, env.get_template("features.html.j2").render(context))


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Render the HTML report of a run and return the path of its ``index.html``.

    Reads ``RUN_DIR/results.json`` and ``RUN_DIR/scores.jsonl`` (optional: without it the ROC and
    score-distribution figures are left out), ``RUN_DIR/behaviour.json`` when the behaviour lab
    ran and ``RUN_DIR/explain/eval/metrics.json`` when an explainer was evaluated. Writes
    ``index.html``, the PNG figures, ``features.html`` when the run has features,
    ``behaviour.html`` when it has a behaviour lab and ``explainer.html`` when it has an explainer
    evaluation into ``out`` (default ``RUN_DIR/report``), replacing any previous report there in
    one rename. Without ``results.json`` the behaviour page (else the explainer page) is also the
    ``index.html``.

    Raises :class:`~afscope.errors.ArtifactError` naming the file and field when the results are
    missing or malformed, :class:`~afscope.errors.ConfigError` when ``out`` is not a safe place to
    write.
    """
    run_dir = Path(run_dir)
    behaviour = read_behaviour(run_dir)
    explain = read_explain(run_dir)
    from afscope.report.transfer import (
        TRANSFER_PAGE,
        read_feature_sets,
        read_transfer,
        transfer_context,
    )

    transfer = read_transfer(run_dir)  # a transfer study (afscope.study.transfer)
    results, scores = None, {}
    if (behaviour is None and explain is None and transfer is None) or \
            (run_dir / RESULTS_FILE).exists():
        results = load_results(run_dir)
        scores = load_scores(run_dir, results)
    out_path = _resolve_out(run_dir, out)
    env = _environment()
    results_file = INDEX_FILE if results is not None else None
    behaviour_file = BEHAVIOUR_PAGE if behaviour is not None else None
    explainer_file = EXPLAINER_PAGE if explain is not None else None
    with atomic_dir(out_path) as tmp:
        if behaviour is not None:
            ctx = _behaviour_context(behaviour, run_dir, out_path, tmp, results_file,
                                     explainer_file)
            page = env.get_template("behaviour.html.j2").render(ctx)
            atomic_write_text(tmp / BEHAVIOUR_PAGE, page)
            if results is None:
                atomic_write_text(tmp / INDEX_FILE, page)
        if explain is not None:
            # imported here: afscope.report.explainer imports this module
            from afscope.report.explainer import explainer_context

            ctx = explainer_context(explain, run_dir, out_path, tmp, index_file=results_file,
                                    behaviour_file=behaviour_file)
            page = env.get_template("explainer.html.j2").render(ctx)
            atomic_write_text(tmp / EXPLAINER_PAGE, page)
            if results is None and behaviour is None:
                atomic_write_text(tmp / INDEX_FILE, page)
        if transfer is not None:
            page = env.get_template("transfer.html.j2").render(
                transfer_context(transfer, tmp, index_file=results_file,
                                 feature_sets=read_feature_sets(run_dir)))
            atomic_write_text(tmp / TRANSFER_PAGE, page)
            if results is None and behaviour is None and explain is None:
                atomic_write_text(tmp / INDEX_FILE, page)
        if results is not None:
            _write_results_pages(results, scores, run_dir, out_path, tmp, env, behaviour_file,
                                 explainer_file,
                                 TRANSFER_PAGE if transfer is not None else None)
    index = out_path / INDEX_FILE
    logger.info("report written to %s", index)
    return index
