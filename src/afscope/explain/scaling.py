"""``afscope explain scaling``: held-out score against the number of training examples.

Why: one trained explainer beating its controls says it reads the vector; whether more data would
help, and how far it is from the baselines as data grows, needs the curve (the paper's scaling
figures). Each size trains a fresh explainer on nested seeded subsets of every task's training
units (:func:`afscope.explain.train.subsample_units`), with the same steps, seed and validation
units, and scores it on the same held-out examples. Baselines that read the training data
(majority, nearest neighbour) are scored at every size; vector controls, which generate, at the
largest size only (a flat line in the plot).

``OUT/scaling.json``: ``points`` = one row per size x condition x task with the task's headline
metric (token F1 for features, content match for behaviour tasks), its 95% CI, ``n`` (held-out
examples) and ``n_train`` (that explainer's training examples of the task: the x axis).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from afscope.explain.config import ExplainEvalConfig, ExplainScalingConfig, ExplainTrainConfig
from afscope.explain.evaluate import HEADLINE, VECTOR_CONTROLS, evaluate_explainers
from afscope.explain.train import train_explainer
from afscope.fileio import atomic_write_json
from afscope.runs import start_run

SCALING_FILE = "scaling.json"
KIND = "afscope_explain_scaling"
FORMAT_VERSION = 1


def scaling_points(table: list[dict[str, Any]], size: int, n_train: dict[str, int]
                   ) -> list[dict[str, Any]]:
    """One point per row of an eval table: the task's first headline metric that has a value
    (token F1 for token answers, judge/embedding similarity for free descriptions), over all of
    the row's examples, at ``n_train[task]`` (the explainer's training examples of that task)."""
    points = []
    for row in table:
        sub = row["metrics"]["subsets"].get("all") or {}
        keys = [k for k, _ in HEADLINE[row["task"]] if (sub.get(k) or {}).get("mean") is not None]
        if not keys:
            continue
        key, entry = keys[0], sub[keys[0]]
        points.append({"size": size, "n_train": n_train.get(row["task"], 0),
                       "condition": row["condition"],
                       "task": row["task"], "metric": key, "value": float(entry["mean"]),
                       "lo": float(entry["lo"]), "hi": float(entry["hi"]), "n": row["n"]})
    return points


def add_run(out: str | Path, table: list[dict[str, Any]], n_train: dict[str, int]
            ) -> dict[str, Any]:
    """Add the points of an explainer trained on *all* training units (``size`` None), scored
    elsewhere (``table``: its eval table; ``n_train``: its training examples per task), to
    ``OUT/scaling.json``: the demo's main explainer is the curve's largest point without
    training it twice."""
    path = Path(out) / SCALING_FILE
    result = json.loads(path.read_text(encoding="utf-8"))
    for p in scaling_points(table, 0, n_train):
        result["points"].append({**p, "size": None})
    atomic_write_json(path, result)
    return result


def run_scaling(cfg: ExplainScalingConfig) -> tuple[Path, dict[str, Any]]:
    """Train and score one explainer per size; writes ``OUT/scaling.json``; returns it."""
    out = Path(cfg.out)
    train_fields = set(ExplainTrainConfig.model_fields)
    base = {k: v for k, v in cfg.model_dump().items() if k in train_fields}
    points: list[dict[str, Any]] = []
    with start_run("explain scaling", cfg.to_dict(), out) as run:
        for size in cfg.sizes:
            tcfg = ExplainTrainConfig(**{**base, "out": out / f"n{size}" / "train",
                                         "max_train_units": size, "resume": False})
            with run.timer(f"n{size}:train"):
                tdir, summary = train_explainer(tcfg)
            conds = ["trained", *[c for c in cfg.controls if c not in VECTOR_CONTROLS
                                  or size == cfg.sizes[-1]]]
            with run.timer(f"n{size}:eval"):
                _, ev = evaluate_explainers(ExplainEvalConfig(
                    explainers=[tdir], out=out / f"n{size}" / "eval", conditions=conds,
                    max_examples=cfg.eval_examples, max_tokens=cfg.max_tokens,
                    batch_size=cfg.eval_batch_size, n_boot=cfg.n_boot, embed_similarity=False,
                    dtype=cfg.dtype, device=cfg.device, seed=cfg.seed))
            points += scaling_points(ev["table"], size, summary["n_train_by_task"])
        result = {"kind": KIND, "format_version": FORMAT_VERSION, "sizes": cfg.sizes,
                  "steps": cfg.max_steps, "points": points}
        atomic_write_json(out / SCALING_FILE, result)
        run.add_output("scaling", str(out / SCALING_FILE))
    return out, result
