"""The report's figures, drawn with matplotlib's Agg canvas straight to PNG bytes.

No pyplot: figures are built from :class:`matplotlib.figure.Figure` so nothing touches the global
backend or figure registry of the caller. Every figure is drawn under matplotlib's built-in default
rcParams plus :data:`_RC` (the user's matplotlibrc does not leak in), at a fixed size and dpi, and
saved without the ``Software`` tag, so the same inputs give the same bytes on every run.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
_RC = {
    "font.family": "DejaVu Sans",  # bundled with matplotlib: same glyphs on every machine
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "savefig.dpi": DPI,
    "figure.dpi": DPI,
    "path.simplify": False,
}
# Fixed colours: the n-th top method gets the same colour in every figure.
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
BASELINE_COLOR = "#555555"
FAMILY_COLORS = {"activation": "#1f77b4", "sae": "#9467bd", "baseline": "#888888"}


@dataclass(frozen=True)
class Curve:
    """One line of a plot: a label, x/y values, a colour and whether it is a text baseline."""

    label: str
    x: np.ndarray
    y: np.ndarray
    color: str
    baseline: bool = False


@contextmanager
def _figure(width: float, height: float) -> Iterator[Figure]:
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(_RC)
        fig = Figure(figsize=(width, height), dpi=DPI)
        FigureCanvasAgg(fig)
        yield fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def ladder_plot(labels: Sequence[str], values: Sequence[float], lo: Sequence[float],
                hi: Sequence[float], families: Sequence[str], dataset: str) -> bytes:
    """Horizontal AUROC bars (best at the top) with 95% CI whiskers; baselines hatched grey."""
    n = len(labels)
    with _figure(7.5, max(2.0, 0.32 * n + 1.0)) as fig:
        ax = fig.add_subplot()
        ypos = np.arange(n)[::-1]
        v = np.asarray(values, dtype=float)
        err = np.vstack([v - np.asarray(lo, dtype=float), np.asarray(hi, dtype=float) - v])
        colors = [FAMILY_COLORS.get(f, "#333333") for f in families]
        bars = ax.barh(ypos, v, xerr=np.clip(err, 0, None), color=colors, height=0.65,
                       error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "#222222"})
        for bar, fam in zip(bars, families):
            if fam == "baseline":
                bar.set_hatch("///")
                bar.set_edgecolor("#444444")
        best_base = [x for x, f in zip(v, families) if f == "baseline"]
        if best_base:
            ax.axvline(max(best_base), color=BASELINE_COLOR, linestyle="--", linewidth=1,
                       label="best text baseline")
            ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0))
        ax.axvline(0.5, color="#bbbbbb", linewidth=0.8)
        ax.set_yticks(ypos, [_short(label, 48) for label in labels])
        ax.set_xlim(0.0, 1.0)
        ax.set_xlabel(f"AUROC on {dataset} (95% CI)")
        ax.grid(axis="y", visible=False)
        fig.tight_layout()
        return _png(fig)


def _curve_plot(curves: Sequence[Curve], *, diagonal: str | None, style: dict[str, object],
                xlabel: str, ylabel: str, title: str, legend: str) -> bytes:
    """Curves of one evaluation set on the unit square, the y = x diagonal dotted.

    ``diagonal`` labels that line in the legend (None: unlabelled); ``style`` adds to each curve's
    ``plot`` call. Baselines are dashed.
    """
    diag = {} if diagonal is None else {"label": diagonal}
    with _figure(5.2, 4.4) as fig:
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color="#bbbbbb", linestyle=":", linewidth=1, **diag)
        for c in curves:
            ax.plot(c.x, c.y, color=c.color, linestyle="--" if c.baseline else "-",
                    label=_short(c.label, 60), **style)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(loc=legend)
        fig.tight_layout()
        return _png(fig)


def roc_plot(curves: Sequence[Curve], dataset: str) -> bytes:
    """ROC curves of one evaluation set; the chance diagonal dotted."""
    return _curve_plot(curves, diagonal=None, style={"linewidth": 1.6, "drawstyle": "steps-post"},
                       xlabel="false positive rate", ylabel="true positive rate",
                       title=f"ROC: {dataset}", legend="lower right")


def score_distribution_plot(groups: Sequence[tuple[str, np.ndarray, bool]], threshold: float,
                            title: str) -> bytes:
    """Score spread per (dataset, fine category): box + jittered points, positives in red.

    ``groups`` holds ``(label, scores, positive)``. Jitter uses a fixed seed so it is repeatable.
    """
    n = len(groups)
    rng = np.random.default_rng(0)
    with _figure(6.2, max(2.4, 0.36 * n + 1.2)) as fig:
        ax = fig.add_subplot()
        ypos = np.arange(n)[::-1]
        data = [np.asarray(g[1], dtype=float) for g in groups]
        ax.boxplot(data, positions=ypos, vert=False, widths=0.6, showfliers=False,
                   medianprops={"color": "#222222"}, boxprops={"color": "#666666"},
                   whiskerprops={"color": "#666666"}, capprops={"color": "#666666"})
        for y, (_, scores, positive) in zip(ypos, groups):
            s = np.asarray(scores, dtype=float)
            jitter = rng.uniform(-0.22, 0.22, size=s.size)
            ax.scatter(s, y + jitter, s=5, alpha=0.45, linewidths=0,
                       color="#d62728" if positive else "#1f77b4")
        ax.axvline(threshold, color="#222222", linestyle="--", linewidth=1)
        ax.set_yticks(ypos, [_short(f"{g[0]} (n={len(g[1])})", 48) for g in groups])
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel(f"P(alignment faking); dashed: threshold {threshold:g}; red: AF")
        ax.set_title(_short(title, 80))
        ax.grid(axis="y", visible=False)
        fig.tight_layout()
        return _png(fig)


def sweep_plot(x: Sequence[float], cv: Sequence[float], cv_std: Sequence[float],
               test: Sequence[float | None], param: str, title: str) -> bytes:
    """CV AUROC (band = +-1 std) and test AUROC against the swept parameter, log x."""
    xs = np.asarray(x, dtype=float)
    order = np.argsort(xs, kind="stable")
    xs = xs[order]
    cvs = np.asarray(cv, dtype=float)[order]
    std = np.asarray(cv_std, dtype=float)[order]
    tests = np.asarray([np.nan if t is None else t for t in test], dtype=float)[order]
    with _figure(6.0, 3.8) as fig:
        ax = fig.add_subplot()
        ax.fill_between(xs, cvs - std, cvs + std, color=PALETTE[0], alpha=0.15, linewidth=0)
        ax.plot(xs, cvs, marker="o", markersize=4, color=PALETTE[0], label="cross-validated AUROC")
        if np.isfinite(tests).any():
            ax.plot(xs, tests, marker="s", markersize=4, color=PALETTE[1], label="test AUROC")
        ax.set_xscale("log")
        ax.set_xlabel("number of features" if param == "n_features" else "C (inverse regularization)")
        ax.set_ylabel("AUROC")
        ax.set_title(_short(title, 80))
        ax.legend(loc="lower right")
        fig.tight_layout()
        return _png(fig)


def calibration_plot(curves: Sequence[Curve], dataset: str) -> bytes:
    """Reliability diagram: observed AF fraction per bin of predicted probability."""
    return _curve_plot(curves, diagonal="perfect", style={"marker": "o", "markersize": 4},
                       xlabel="mean predicted probability", ylabel="fraction alignment faking",
                       title=f"calibration: {dataset}", legend="upper left")


def _short(text: str, n: int) -> str:
    """Long method ids would squeeze the axes; keep their tail, which names the estimator."""
    return text if len(text) <= n else "…" + text[-(n - 1):]


def interval_plot(labels: Sequence[str], values: Sequence[float], lo: Sequence[float],
                  hi: Sequence[float], colors: Sequence[str], xlabel: str, title: str,
                  ref: float | None = 0.0, xlim: tuple[float, float] | None = None) -> bytes:
    """One point per row (first row at the top) with its 95% CI as a horizontal error bar.

    ``ref`` draws a dashed vertical reference line (0 for a gap: a CI that crosses it shows no
    measurable effect); None leaves it out. ``xlim`` fixes the x range (e.g. 0-100 for rates).
    """
    n = len(labels)
    with _figure(7.2, max(1.8, 0.38 * n + 1.1)) as fig:
        ax = fig.add_subplot()
        ypos = np.arange(n)[::-1]
        v = np.asarray(values, dtype=float)
        err = np.vstack([v - np.asarray(lo, dtype=float), np.asarray(hi, dtype=float) - v])
        for y, x, e0, e1, c in zip(ypos, v, err[0], err[1], colors):
            ax.errorbar([x], [y], xerr=[[max(e0, 0.0)], [max(e1, 0.0)]], fmt="o", color=c,
                        markersize=6, elinewidth=1.6, capsize=4)
        if ref is not None:
            ax.axvline(ref, color="#888888", linestyle="--", linewidth=1)
        ax.set_yticks(ypos, [_short(label, 44) for label in labels])
        ax.set_ylim(-0.6, n - 0.4)
        if xlim is not None:
            ax.set_xlim(*xlim)
        ax.set_xlabel(xlabel)
        ax.set_title(_short(title, 80))
        ax.grid(axis="y", visible=False)
        fig.tight_layout()
        return _png(fig)


@dataclass(frozen=True)
class LossCurve:
    """One explainer's losses: training loss per logging step, validation loss per evaluation."""

    label: str
    train_steps: np.ndarray
    train_loss: np.ndarray
    eval_steps: np.ndarray
    eval_loss: np.ndarray


def loss_plot(curves: Sequence[LossCurve], title: str = "explainer training") -> bytes:
    """Training loss (solid) and validation loss (dashed, dots) against the optimizer step; one
    colour per explainer. Non-finite losses are left out of the lines."""
    with _figure(6.4, 4.0) as fig:
        ax = fig.add_subplot()
        for i, c in enumerate(curves):
            color = PALETTE[i % len(PALETTE)]
            for steps, loss, kind, style in ((c.train_steps, c.train_loss, "train", {}),
                                             (c.eval_steps, c.eval_loss, "validation",
                                              {"linestyle": "--", "marker": "o",
                                               "markersize": 4})):
                x = np.asarray(steps, dtype=float)
                y = np.asarray(loss, dtype=float)
                ok = np.isfinite(x) & np.isfinite(y)
                if ok.any():
                    ax.plot(x[ok], y[ok], color=color, linewidth=1.4,
                            label=_short(f"{c.label} {kind}", 60), **style)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("answer-token loss")
        ax.set_title(_short(title, 80))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right")
        fig.tight_layout()
        return _png(fig)


@dataclass(frozen=True)
class ScalingSeries:
    """One condition of a data-scaling plot: held-out metric (95% CI) per training-set size."""

    label: str
    n_train: np.ndarray
    value: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def scaling_plot(series: Sequence[ScalingSeries], metric: str, title: str) -> bytes:
    """Held-out ``metric`` against training examples (log x): a line with its CI band for each
    condition scored at several sizes; a condition scored once (a vector control at the largest
    size) is a dashed horizontal line across the plot."""
    with _figure(6.4, 4.0) as fig:
        ax = fig.add_subplot()
        xs = np.concatenate([s.n_train for s in series]).astype(float)
        lo_x, hi_x = float(xs.min()), float(xs.max())
        for i, s in enumerate(series):
            color = PALETTE[i % len(PALETTE)]
            order = np.argsort(s.n_train)
            x, v = s.n_train[order].astype(float), s.value[order]
            if len(x) > 1:
                ax.plot(x, v, marker="o", color=color, linewidth=1.6, label=_short(s.label, 40))
                ax.fill_between(x, s.lo[order], s.hi[order], color=color, alpha=0.15,
                                linewidth=0)
            else:
                ax.hlines(v[0], lo_x, hi_x, colors=color, linestyles="--", linewidth=1.3,
                          label=_short(f"{s.label} (largest set)", 40))
        if hi_x > lo_x:
            ax.set_xscale("log")
        ax.set_xlabel("training examples")
        ax.set_ylabel(metric)
        ax.set_title(_short(title, 80))
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        return _png(fig)


def matrix_heatmap(values: np.ndarray, rows: Sequence[str], cols: Sequence[str],
                   notes: Sequence[Sequence[str]], title: str, *, xlabel: str = "test source",
                   ylabel: str = "trained on") -> bytes:
    """A train-source x test-source matrix (or any matrix in [0, 1], axes named by ``xlabel``
    and ``ylabel``): ``values (r, c)`` coloured (NaN grey), each cell annotated with
    ``notes[i][j]`` (e.g. ``.91`` or ``det .40``)."""
    v = np.asarray(values, np.float64)
    r, c = v.shape
    with _figure(1.6 + 1.1 * c, 1.0 + 0.45 * r) as fig:
        ax = fig.add_subplot(1, 1, 1)
        cmap = matplotlib.colormaps["RdYlGn"].with_extremes(bad="#dddddd")
        im = ax.imshow(np.ma.masked_invalid(v), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
        for i in range(r):
            for j in range(c):
                ax.text(j, i, notes[i][j], ha="center", va="center", fontsize=8)
        ax.set_xticks(range(c), [_short(x, 18) for x in cols], rotation=30, ha="right")
        ax.set_yticks(range(r), [_short(x, 28) for x in rows])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(_short(title, 90), fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
        fig.tight_layout()
        return _png(fig)
