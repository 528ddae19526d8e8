"""The explainer page of the report: ``explain/eval/metrics.json`` -> ``explainer.html``.

The page leads with verdicts computed from the table: for each explainer and task, does the trained
explainer beat each baseline (zero-shot, few-shot, majority answer, nearest neighbour) and each vector control (no,
shuffled, random vector) on the task's headline metric with non-overlapping 95% intervals? The
projector read-out is a reference, not a baseline: it says whether the language model adds to
what the projected vector alone names. A
trained row that does not clear the controls is not shown to read the activation. A test split
without changed (or unchanged) examples is flagged, since the has-changed F1 then scores one
class only. Then the metric table per task (every condition, headline metrics with CIs, content
match split by changed/unchanged), the training curves, and example explanations beside the
ground truth.

Headline metrics come from :func:`afscope.explain.evaluate.headline`, imported when a page is
built: that module pulls in torch, which a report without an explainer does not need.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from markupsafe import Markup, escape

from afscope.fileio import atomic_write_bytes
from afscope.report import plots
from afscope.report.render import (
    CI,
    EXPLAINER_PAGE,
    MANIFEST_FILE,
    Cell,
    Image,
    Verdict,
    _link,
    fmt_ci,
)
from afscope.report.schema import EXPLAIN_FILE, ExplainEval, ExplainRow

__all__ = ["EXPLAINER_PAGE", "compare", "explainer_context", "explainer_verdicts",
           "prompt_excerpt"]
LOSS_PLOT = "explainer_loss.png"
TRAINED = "trained"
#: conditions that test whether the explainer reads the injected vector.
CONTROLS = ("no_vector", "shuffled_vector", "random_vector")
#: references, not baselines: what the vector carries without the language model (the projector's
#: nearest vocabulary tokens), so the trained row says whether the LM adds to the map.
REFERENCES = ("projector_readout",)
#: characters of a prompt shown (its end: the question follows the context).
PROMPT_CHARS = 400
MAX_PREDICTION = 600
# afscope.explain.schema.VECTOR_MARKER (that module imports torch).
VECTOR_MARKER = "<|afscope_vector|>"
# The split columns of a task's table: (metric key, title, the two subsets). Behaviour tasks: the
# content match on changed / unchanged examples; features: the token F1 on novel test features
# (no target token in any training target) and familiar ones.
BEHAVIOUR_TASKS = ("context_ablation", "steering")
#: the headline column that asks which examples change (macro F1 of changed vs unchanged).
CHANGED_F1 = "changed F1"
SPLITS: dict[str, tuple[str, str, tuple[str, str]]] = {
    "context_ablation": ("content_match", "content", ("changed", "unchanged")),
    "steering": ("content_match", "content", ("changed", "unchanged")),
    "features": ("token_f1", "token F1", ("novel", "familiar")),
}

#: how a verdict names a subset where the task gives it a meaning of its own.
SUBSET_NAMES: dict[tuple[str, str], str] = {("steering", "novel"): "held-out vector family"}

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

Triple = tuple[float, float, float]


def _headline_of(task: str, subsets: dict[str, Any], subset: str = "all"
                 ) -> list[tuple[str, Triple | None]]:
    """``[(column title, (value, lo, hi) or None)]`` of one subset of a summary split."""
    from afscope.explain.evaluate import headline

    return headline({"task": task, "metrics": {"subsets": subsets}}, subset)


def _headline(row: ExplainRow, subset: str = "all") -> list[tuple[str, Triple | None]]:
    return _headline_of(row.task, row.metrics.subsets, subset)


def _metric(entry: dict[str, Any] | None) -> Triple | None:
    from afscope.explain.evaluate import metric_value

    return metric_value(entry)


def _ci(t: Triple | None) -> CI | None:
    if t is None or not all(math.isfinite(x) for x in t):
        return None
    return CI(value=t[0], lo=t[1], hi=t[2])


def _fmt(t: Triple | None) -> str:
    return fmt_ci(_ci(t))


def compare(trained: Triple, other: Triple) -> str:
    """``"beats"`` / ``"below"`` when the two 95% intervals do not overlap, else
    ``"within CI of"``."""
    if trained[1] > other[2]:
        return "beats"
    if trained[2] < other[1]:
        return "below"
    return "within CI of"


class _Index:
    """The table keyed by (explainer, condition, task), with each task's conditions in order."""

    def __init__(self, ev: ExplainEval):
        self.ev = ev
        self.rows = {(r.explainer, r.condition, r.task): r for r in ev.table}
        present = {r.task for r in ev.table} | {e.task for e in ev.examples}
        self.tasks = [t for t in ("context_ablation", "steering", "features") if t in present]
        self.labels = [e.label for e in ev.explainers]
        extra = sorted({r.condition for r in ev.table} - set(ev.conditions))
        self.conditions = [*ev.conditions, *extra]

    def task_rows(self, task: str) -> list[ExplainRow]:
        return [r for lab in self.labels for c in self.conditions
                if (r := self.rows.get((lab, c, task))) is not None]


def _primary(row: ExplainRow, subset: str = "all", column: str | None = None
             ) -> tuple[int, str, Triple] | None:
    """The first headline metric the row has a value for (or the one titled ``column``):
    ``(column, title, (value, lo, hi))``."""
    for i, (title, t) in enumerate(_headline(row, subset)):
        if column is not None and title != column:
            continue
        if _ci(t) is not None:
            assert t is not None
            return i, title, t
    return None


def _against(idx: _Index, label: str, task: str, column: int, trained: Triple,
             conditions: Sequence[str], subset: str = "all") -> list[tuple[str, str, Triple]]:
    """``(condition, relation word, its value)`` for each condition with a value in ``column``."""
    out = []
    for cond in conditions:
        row = idx.rows.get((label, cond, task))
        t = _headline(row, subset)[column][1] if row is not None else None
        if _ci(t) is not None:
            assert t is not None
            out.append((cond, compare(trained, t), t))
    return out


def _sentence(parts: list[tuple[str, str, Triple]]) -> str:
    return "; ".join(f"{word} {cond} ({_fmt(t)})" for cond, word, t in parts)


def _split_warnings(idx: _Index, label: str, task: str) -> list[Verdict]:
    rows = [r for c in idx.conditions if (r := idx.rows.get((label, c, task))) is not None]
    if not rows:
        return []
    row = max(rows, key=lambda r: (r.condition == TRAINED, r.n))
    out = []
    for name in ("changed", "unchanged"):
        sub = row.metrics.subsets.get(name)
        if sub is not None and sub.get("n") == 0:
            out.append(Verdict(f"{label} on {task}: the test split has no {name} examples, so the "
                               f"has-changed F1 is not informative (it can only score the other "
                               f"class).", warn=True))
    return out


def _verdict_subsets(idx: _Index, label: str, task: str) -> list[str]:
    """``"all"``, then the subsets where reading the input matters most when the trained row has
    them: the changed examples (behaviour tasks) or the novel features, and for steering the
    held-out vector family (its ``novel`` subset)."""
    trained = idx.rows.get((label, TRAINED, task))
    if trained is None:
        return ["all"]
    wanted = [SPLITS.get(task, ("", "", ("",)))[2][0]]
    if task == "steering":
        wanted.append("novel")
    return ["all"] + [s for s in wanted if (trained.metrics.subsets.get(s) or {}).get("n")]


def explainer_verdicts(ev: ExplainEval) -> list[Verdict]:
    """Per explainer x task (and on its changed / novel subset): the trained row against every
    baseline, then every vector control, on the task's headline metric; plus a warning for each
    split with no changed examples."""
    idx = _Index(ev)
    relations = {e.label: e.relation for e in ev.explainers}
    out: list[Verdict] = []
    for label in idx.labels:
        for task in idx.tasks:
            if not any(k[0] == label and k[2] == task for k in idx.rows):
                continue
            for subset in _verdict_subsets(idx, label, task):
                out += _task_verdicts(idx, label, task, subset, relations[label])
            if task in BEHAVIOUR_TASKS:
                out += _task_verdicts(idx, label, task, "all", relations[label],
                                      column=CHANGED_F1)
                out += _constant_changed(idx, label, task)
            out += _split_warnings(idx, label, task)
    return out


def _constant_changed(idx: _Index, label: str, task: str) -> list[Verdict]:
    """Warn when a constant answer is perfect on the changed examples: then every change went the
    same way, and only the has-changed F1 over all examples needs the input."""
    row = idx.rows.get((label, "majority", task))
    t = _metric((row.metrics.subsets.get("changed") or {}).get("content_match")) if row else None
    if t is None or t[0] < 1.0:
        return []
    return [Verdict(f"{label} on {task}: the majority answer matches every changed example (all "
                    f"changes go the same way), so the changed-subset content match cannot show "
                    f"that the explainer reads its input; the {CHANGED_F1} over all examples "
                    f"(which scenarios change) can.", warn=True)]


def _task_verdicts(idx: _Index, label: str, task: str, subset: str, relation: str,
                   column: str | None = None) -> list[Verdict]:
    """The verdicts of one explainer x task x subset (see :func:`explainer_verdicts`), on the
    first headline metric with a value or on the one titled ``column``."""
    out: list[Verdict] = []
    shown = SUBSET_NAMES.get((task, subset), subset)
    where = f"{label} ({relation}) on {task}" + ("" if subset == "all" else
                                                 f", {shown} examples")
    trained = idx.rows.get((label, TRAINED, task))
    primary = _primary(trained, subset, column) if trained is not None else None
    if primary is None and column is not None:
        return []
    if primary is None:
        out.append(Verdict(f"{where}: no trained row with a headline metric, so nothing "
                           f"to compare.", warn=True))
        return out
    col, title, t = primary
    n = (trained.metrics.subsets.get(subset) or {}).get("n", 0) if trained else 0
    head = f"{where}: trained {title} {_fmt(t)} (n = {n})"
    others = [c for c in idx.conditions if c != TRAINED]
    base = _against(idx, label, task, col, t,
                    [c for c in others if c not in CONTROLS and c not in REFERENCES], subset)
    refs = _against(idx, label, task, col, t, [c for c in others if c in REFERENCES], subset)
    ctrl = _against(idx, label, task, col, t, [c for c in others if c in CONTROLS],
                    subset)
    if base:
        wins = all(word == "beats" for _, word, _ in base)
        out.append(Verdict(f"{head} {_sentence(base)}"
                           + (": it beats every baseline." if wins else
                              ": it does not beat every baseline."), warn=not wins))
    if ctrl:
        reads = all(word == "beats" for _, word, _ in ctrl)
        lead = f"{where}, vector controls: trained" if base else head
        out.append(Verdict(f"{lead} {_sentence(ctrl)}"
                           + (": the explainer reads the vector." if reads else
                              ": the explainer is not shown to read the activation."),
                           warn=not reads))
    if refs:
        word = refs[0][1]
        out.append(Verdict(
            f"{where}, reference: trained {_sentence(refs)}: "
            + {"beats": "the language model adds to what the projected vector alone names.",
               "below": "the projected vector alone names more than the trained explainer does "
                        "(more training steps close this gap; see the data-scaling curve)."}
            .get(word, "the trained explainer names about what the projected vector alone "
                       "does."), warn=word == "below"))
    if not base and not ctrl:
        out.append(Verdict(f"{head}; no baseline or control has a {title} value to "
                           f"compare with.", warn=True))
    return out


def _row_css(condition: str) -> str:
    if condition == TRAINED:
        return "cond-trained"
    return "cond-control" if condition in CONTROLS else "cond-baseline"


def _split_cell(row: ExplainRow, subset: str) -> Cell:
    sub = row.metrics.subsets.get(subset)
    if sub is None:
        return Cell("—", css="na")
    t = _metric(sub.get(SPLITS[row.task][0]))
    return Cell(_fmt(t), f"n = {sub.get('n', 0)}", "" if _ci(t) else "na")


def _tables(idx: _Index) -> list[dict[str, Any]]:
    """One metric table per task: rows explainer x condition, headline metrics, changed split."""
    tables = []
    for task in idx.tasks:
        rows = idx.task_rows(task)
        if not rows:
            continue
        titles = [title for title, _ in _headline(rows[0])]
        key, split_title, names = SPLITS.get(task, ("", "", ("changed", "unchanged")))
        split = any(names[0] in r.metrics.subsets for r in rows)
        out_rows = []
        for r in rows:
            cells = [Cell(_fmt(t), css="" if _ci(t) else "na") for _, t in _headline(r)]
            if split:
                cells += [_split_cell(r, names[0]), _split_cell(r, names[1])]
            out_rows.append({"r": r, "cells": cells, "css": _row_css(r.condition)})
        qts = sorted({qt for r in rows for qt in r.metrics.by_question_type})
        by_qt = None
        if len(qts) > 1:
            by_qt = {"types": qts, "rows": []}
            for r in rows:
                primary = _primary(r)
                col = primary[0] if primary else 0
                cells = []
                for qt in qts:
                    sub = r.metrics.by_question_type.get(qt)
                    if sub is None:
                        cells.append(Cell("—", css="na"))
                        continue
                    t = _headline_of(task, sub)[col]
                    cells.append(Cell(_fmt(t[1]), t[0], "" if _ci(t[1]) else "na"))
                by_qt["rows"].append({"r": r, "cells": cells, "css": _row_css(r.condition)})
        tables.append({"task": task, "titles": titles, "split": split, "rows": out_rows,
                       "by_qt": by_qt, "split_title": split_title, "split_names": names})
    return tables


def _loss_figure(ev: ExplainEval, tmp: Path) -> tuple[Image | None, list[dict[str, Any]]]:
    """The loss plot of every explainer with a training log, and a one-line summary of each."""
    curves, summary = [], []
    for e in ev.explainers:
        c = ev.train_curves.get(e.label)
        if c is None:
            continue
        curves.append(plots.LossCurve(
            e.label, np.array([p.step for p in c.train], dtype=float),
            np.array([p.loss for p in c.train], dtype=float),
            np.array([p.step for p in c.eval], dtype=float),
            np.array([p.loss for p in c.eval], dtype=float)))
        finite = [p for p in c.eval if math.isfinite(p.loss)]
        best = min(finite, key=lambda p: (p.loss, p.step)) if finite else None
        exact = [p for p in c.eval if p.exact is not None]
        top = max(exact, key=lambda p: (p.exact, -p.step)) if exact else None
        summary.append({"label": e.label, "steps": c.train[-1].step if c.train else None,
                        "first": c.train[0].loss if c.train else None,
                        "last": c.train[-1].loss if c.train else None,
                        "best_eval": best.loss if best else None,
                        "best_step": best.step if best else None, "n_eval": len(c.eval),
                        "best_exact": top.exact if top else None,
                        "best_exact_step": top.step if top else None})
    if not curves or not any(len(c.train_steps) or len(c.eval_steps) for c in curves):
        return None, summary
    atomic_write_bytes(tmp / LOSS_PLOT, plots.loss_plot(curves))
    return Image(LOSS_PLOT, "explainer training and validation loss",
                 "solid: training loss per logging step; dashed: validation loss per "
                 "evaluation"), summary


def _scaling_figures(run_dir: Path, tmp: Path) -> list[Image]:
    """One data-scaling plot per task of ``explain/scaling/scaling.json`` (none when absent)."""
    from afscope.report.schema import read_explain_scaling

    sc = read_explain_scaling(run_dir)
    if sc is None:
        return []
    figs = []
    for task in sorted({p.task for p in sc.points}):
        pts = [p for p in sc.points if p.task == task]
        series = []
        for cond in dict.fromkeys(p.condition for p in pts):
            mine = sorted((p for p in pts if p.condition == cond), key=lambda p: p.n_train)
            series.append(plots.ScalingSeries(
                cond, np.array([p.n_train for p in mine]), np.array([p.value for p in mine]),
                np.array([p.lo for p in mine]), np.array([p.hi for p in mine])))
        name = f"explainer_scaling_{task}.png"
        metric = pts[0].metric.replace("_", " ")
        atomic_write_bytes(tmp / name, plots.scaling_plot(
            series, metric, f"{task}: held-out {metric} vs training examples"))
        figs.append(Image(name, f"{task} data-scaling curve",
                          f"{sc.steps} optimizer steps at every size; shaded: 95% CI. Dashed "
                          "lines: conditions scored at the largest set only (vector controls)."))
    return figs


def _printable(text: str) -> str:
    """Control characters (an untrained model emits them) shown as U+FFFD; tabs and newlines
    kept."""
    return _CONTROL.sub("\ufffd", text)


def _norm(text: str) -> str:
    return " ".join(text.split())


def prompt_excerpt(prompt: str, n: int = PROMPT_CHARS) -> Markup:
    """The end of ``prompt`` (``…`` where cut), HTML-escaped, each vector marker shown as a
    badge."""
    text = _printable(prompt if len(prompt) <= n else "…" + prompt[-n:])
    badge = Markup('<span class="badge b-vec">vector</span>')
    return badge.join(escape(part) for part in text.split(VECTOR_MARKER))


def _cut(text: str, n: int = MAX_PREDICTION) -> str:
    return _printable(text if len(text) <= n else text[:n] + "…")


def _examples(idx: _Index) -> list[dict[str, Any]]:
    """Per task: the shown examples with each condition's prediction; ``hit`` marks a prediction
    equal to the ground truth (whitespace aside)."""
    out = []
    for task in idx.tasks:
        exs = [e for e in idx.ev.examples if e.task == task]
        if not exs:
            continue
        conds = [c for c in idx.conditions if any(c in e.predictions for e in exs)]
        rows = []
        for e in exs:
            cells = []
            for c in conds:
                p = e.predictions.get(c)
                if p is None:
                    cells.append({"text": "—", "css": "na"})
                else:
                    hit = _norm(p) == _norm(e.answer)
                    cells.append({"text": _cut(p), "css": "pred hit" if hit else "pred"})
            rows.append({"e": e, "prompt": prompt_excerpt(e.prompt), "answer": _cut(e.answer),
                         "cells": cells})
        out.append({"task": task, "conditions": conds, "rows": rows,
                    "show_explainer": len({e.explainer for e in exs}) > 1})
    return out


def explainer_context(ev: ExplainEval, run_dir: Path, out: Path, tmp: Path, *,
                      index_file: str | None, behaviour_file: str | None) -> dict[str, Any]:
    """Everything explainer.html.j2 reads; draws the loss plot into ``tmp``."""
    idx = _Index(ev)
    eval_dir = (run_dir / EXPLAIN_FILE).parent
    links = [(name, href) for name, path in (("metrics.json", run_dir / EXPLAIN_FILE),
                                             (MANIFEST_FILE, eval_dir / MANIFEST_FILE))
             if (href := _link(path, out))]
    fig, train = _loss_figure(ev, tmp)
    return {
        "ev": ev,
        "title": "afscope explainer evaluation",
        "links": links,
        "index_file": index_file,
        "behaviour_file": behaviour_file,
        "verdicts": explainer_verdicts(ev),
        "tables": _tables(idx),
        "loss_fig": fig,
        "scaling_figs": _scaling_figures(run_dir, tmp),
        "train": train,
        "examples": _examples(idx),
        "params": sorted(ev.params.items()),
    }
