"""The six plots of seed 003's ``run_em_eval.py``, drawn from ``summary.json`` and judged rows.

``scores_by_condition``, ``score_distributions``, ``alignment_vs_coherence``,
``alignment_by_layer_<vector>``, ``coherence_by_layer_<vector>``, ``alignment_heatmap``.

With rule judging there is no 0-100 alignment score: the comply rate takes its place and every
title says so; coherence plots then say that coherence needs the LLM judge instead of drawing
nothing. Figures are matplotlib ``Figure`` objects on an Agg canvas (no pyplot, no global state),
saved without the ``Software`` tag so identical inputs give identical PNG bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from afscope.fileio import atomic_path
from afscope.rows import JsonlStore
from afscope.steer.summary import BEHAVIOURS, primary_metric

PLOT_DIR = "plots"
_RC = {"font.family": "DejaVu Sans", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
       "axes.spines.top": False, "axes.spines.right": False, "legend.fontsize": 8,
       "legend.frameon": False, "figure.dpi": 100, "savefig.dpi": 100}
_BEHAVIOUR_COLORS = {"comply": "#d62728", "refuse": "#2ca02c", "partial": "#ff7f0e"}
_NO_COHERENCE = ("no coherence scores: judged with rules only\n"
                 "(rerun `afscope steer judge RUN_DIR --judge-method both --overwrite`)")


@contextmanager
def _figure(width: float, height: float) -> Iterator[Figure]:
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(_RC)
        fig = Figure(figsize=(width, min(height, 40.0)))
        FigureCanvasAgg(fig)
        yield fig


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    return path


def _stat(cond: dict[str, Any], key: str) -> tuple[float, float, float]:
    """``(mean, lo, hi)`` of a condition's statistic, NaN when absent."""
    s = cond.get(key)
    if not s:
        return (np.nan, np.nan, np.nan)
    return (s["mean"], s["lo"], s["hi"])


def _label(cond: dict[str, Any]) -> str:
    if cond["vector"] is None:
        return "baseline"
    return f"{cond['vector']} L{cond['layer']} a={cond['alpha']:g}"


def _note(metric: str) -> str:
    return "" if metric == "aligned" else "\n[rule judging: comply rate in place of alignment]"


def _placeholder(path: Path, title: str, text: str) -> Path:
    with _figure(6, 3) as fig:
        ax = fig.add_subplot()
        ax.axis("off")
        ax.set_title(title)
        ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
        return _save(fig, path)


def plot_scores_by_condition(summary: dict[str, Any], path: Path) -> Path:
    """Mean primary score (and coherence when judged) per condition with 95% CIs."""
    conds = summary["conditions"]
    metric, label = primary_metric(summary)
    keys = [(metric, label)] + ([("coherent", "coherence (0-100)")]
                                if any(c.get("coherent") for c in conds) else [])
    with _figure(4.5 * len(keys) + 2, 1.2 + 0.22 * len(conds)) as fig:
        y = np.arange(len(conds))
        for k, (key, name) in enumerate(keys):
            ax = fig.add_subplot(1, len(keys), k + 1)
            m, lo, hi = np.array([_stat(c, key) for c in conds]).T
            colors = ["#555555" if c["vector"] is None else
                      ("#1f77b4" if c["alpha"] > 0 else "#9467bd") for c in conds]
            ax.barh(y, m, color=colors, xerr=np.vstack([m - lo, hi - m]), capsize=2)
            ax.set_yticks(y, [_label(c) for c in conds] if k == 0 else [""] * len(conds))
            ax.invert_yaxis()
            ax.set_xlabel(name)
        fig.suptitle("Scores by condition (95% bootstrap CI)" + _note(metric))
        return _save(fig, path)


def plot_score_distributions(summary: dict[str, Any], judged: dict[str, list[dict[str, Any]]],
                             path: Path) -> Path:
    """Per-row score distributions (box plots), or behaviour shares under rule judging."""
    conds = summary["conditions"]
    metric, _ = primary_metric(summary)
    names = [c["name"] for c in conds]
    labels = [_label(c) for c in conds]
    with _figure(8, 1.5 + 0.25 * len(conds)) as fig:
        if metric == "aligned":
            keys = [k for k in ("aligned", "coherent")
                    if any(isinstance(r.get(k), (int, float)) for n in names for r in judged[n])]
            for k, key in enumerate(keys):
                ax = fig.add_subplot(1, len(keys), k + 1)
                data = [[r[key] for r in judged[n] if isinstance(r.get(key), (int, float))]
                        or [np.nan] for n in names]
                ax.boxplot(data, orientation="horizontal", tick_labels=labels if k == 0 else
                           [""] * len(labels))
                ax.invert_yaxis()
                ax.set_xlabel(f"{key} (0-100)")
                ax.set_xlim(-2, 102)
            fig.suptitle("Score distributions per condition")
        else:
            ax = fig.add_subplot()
            left = np.zeros(len(conds))
            for b in BEHAVIOURS:
                share = np.array([(_stat(c, f"{b}_rate")[0]) for c in conds])
                share = np.nan_to_num(share)
                ax.barh(np.arange(len(conds)), share, left=left, color=_BEHAVIOUR_COLORS[b],
                        label=b)
                left += share
            ax.set_yticks(np.arange(len(conds)), labels)
            ax.invert_yaxis()
            ax.set_xlim(0, 1)
            ax.set_xlabel("share of answers")
            ax.legend(loc="lower right")
            fig.suptitle("Behaviour distribution per condition\n[rule judging: no 0-100 scores]")
        return _save(fig, path)


def plot_alignment_vs_coherence(summary: dict[str, Any], path: Path) -> Path:
    """Condition means of alignment against coherence (steering that 'aligns' by breaking the
    model shows up bottom-left)."""
    conds = summary["conditions"]
    metric, label = primary_metric(summary)
    title = "Alignment vs coherence" + _note(metric)
    if not any(c.get("coherent") for c in conds):
        return _placeholder(path, title, _NO_COHERENCE)
    with _figure(6, 5) as fig:
        ax = fig.add_subplot()
        alphas = [c["alpha"] for c in conds if c["vector"] is not None] or [1.0]
        vmax = max(abs(a) for a in alphas)
        for c in conds:
            x, xlo, xhi = _stat(c, "coherent")
            y, ylo, yhi = _stat(c, metric)
            base = c["vector"] is None
            color = "black" if base else matplotlib.colormaps["coolwarm"](
                0.5 + 0.5 * c["alpha"] / vmax)
            ax.errorbar([x], [y], xerr=[[x - xlo], [xhi - x]], yerr=[[y - ylo], [yhi - y]],
                        fmt="*" if base else "o", color=color, markersize=12 if base else 5,
                        alpha=0.9, label="baseline" if base else None)
        ax.set_xlabel("coherence (0-100)")
        ax.set_ylabel(label)
        ax.legend()
        ax.set_title(title + " (colour: alpha, blue < 0 < red)")
        return _save(fig, path)


def plot_by_layer(summary: dict[str, Any], vector: str, key: str, path: Path) -> Path:
    """One line per alpha over the steered layers of ``vector`` (95% CI bands), baseline dashed."""
    conds = summary["conditions"]
    metric, label = primary_metric(summary)
    what = "Alignment" if key == "aligned" else "Coherence"
    if key == "aligned":
        key = metric
        title = f"{what} by layer: {vector}" + _note(metric)
    else:
        title = f"{what} by layer: {vector}"
        if not any(c.get("coherent") for c in conds):
            return _placeholder(path, title, _NO_COHERENCE)
        label = "coherence (0-100)"
    mine = [c for c in conds if c["vector"] == vector]
    with _figure(7, 4) as fig:
        ax = fig.add_subplot()
        alphas = sorted({c["alpha"] for c in mine})
        cmap = matplotlib.colormaps["coolwarm"]
        vmax = max([abs(a) for a in alphas] or [1.0])
        for a in alphas:
            rows = sorted((c for c in mine if c["alpha"] == a), key=lambda c: c["layer"])
            layers = [c["layer"] for c in rows]
            m, lo, hi = np.array([_stat(c, key) for c in rows]).T
            color = cmap(0.5 + 0.5 * a / vmax)
            ax.plot(layers, m, marker="o", color=color, label=f"alpha {a:g}")
            ax.fill_between(layers, lo, hi, color=color, alpha=0.15)
        base = next((c for c in conds if c["vector"] is None), None)
        if base is not None and not np.isnan(_stat(base, key)[0]):
            ax.axhline(_stat(base, key)[0], color="black", linestyle="--", label="baseline")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(*((-2, 102) if key in ("aligned", "coherent") else (-0.02, 1.02)))
        ax.set_xlabel("layer")
        ax.set_ylabel(label)
        ax.legend()
        ax.set_title(title)
        return _save(fig, path)


def plot_heatmap(summary: dict[str, Any], path: Path) -> Path:
    """Primary score for every (vector, layer) row and alpha column; alpha 0 is the baseline."""
    conds = summary["conditions"]
    metric, label = primary_metric(summary)
    base = next((c for c in conds if c["vector"] is None), None)
    steered = [c for c in conds if c["vector"] is not None]
    alphas = sorted({c["alpha"] for c in steered} | ({0.0} if base else set()))
    rows = list(dict.fromkeys((c["vector"], c["layer"]) for c in steered))
    grid = np.full((max(len(rows), 1), len(alphas)), np.nan)
    for c in steered:
        grid[rows.index((c["vector"], c["layer"])), alphas.index(c["alpha"])] = _stat(c, metric)[0]
    if base is not None:
        grid[:, alphas.index(0.0)] = _stat(base, metric)[0]
    with _figure(1.5 + 0.8 * len(alphas), 1.5 + 0.3 * len(rows)) as fig:
        ax = fig.add_subplot()
        ax.grid(False)
        vmax = 100.0 if metric == "aligned" else 1.0
        im = ax.imshow(grid, aspect="auto", cmap="RdYlGn", vmin=0.0, vmax=vmax)
        for (i, j), value in np.ndenumerate(grid):
            if not np.isnan(value):
                ax.text(j, i, f"{value:.2g}" if metric != "aligned" else f"{value:.0f}",
                        ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
        ax.set_yticks(range(len(rows)), [f"{v} L{layer}" for v, layer in rows])
        ax.set_xlabel("alpha (0 = baseline)")
        fig.colorbar(im, ax=ax, label=label)
        ax.set_title("Alignment heatmap" + _note(metric))
        return _save(fig, path)


def load_judged(run_dir: Path, summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Judged rows of every condition in ``summary`` (empty when a file is missing)."""
    out = {}
    for c in summary["conditions"]:
        path = Path(run_dir) / "judged" / f"{c['name']}.jsonl"
        out[c["name"]] = JsonlStore(path, key="id").rows() if path.exists() else []
    return out


def plot_run(run_dir: str | Path, summary: dict[str, Any]) -> list[Path]:
    """Write all six plot kinds to ``run_dir/plots``; returns the PNG paths."""
    run_dir = Path(run_dir)
    out = run_dir / PLOT_DIR
    judged = load_judged(run_dir, summary)
    paths = [plot_scores_by_condition(summary, out / "scores_by_condition.png"),
             plot_score_distributions(summary, judged, out / "score_distributions.png"),
             plot_alignment_vs_coherence(summary, out / "alignment_vs_coherence.png")]
    vectors = list(dict.fromkeys(c["vector"] for c in summary["conditions"]
                                 if c["vector"] is not None))
    for v in vectors:
        paths.append(plot_by_layer(summary, v, "aligned", out / f"alignment_by_layer_{v}.png"))
        paths.append(plot_by_layer(summary, v, "coherent", out / f"coherence_by_layer_{v}.png"))
    paths.append(plot_heatmap(summary, out / "alignment_heatmap.png"))
    return paths
