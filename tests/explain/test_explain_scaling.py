"""Data-scaling curve: nested training subsets, one explainer per size, points per condition."""

from __future__ import annotations

import json

import pytest

from afscope.explain.config import ExplainDataConfig, ExplainScalingConfig
from afscope.explain.data import build_task_data
from afscope.explain.scaling import SCALING_FILE, run_scaling
from afscope.explain.schema import TRAIN_FILE, read_examples
from afscope.explain.train import subsample_units, training_subset
from explain_tasks import vector_folder


def test_subsample_units_is_nested_and_per_task(tmp_path):
    train = read_examples(vector_folder(tmp_path, d=8, n=40) / TRAIN_FILE)
    other = [e.model_copy(update={"task": "steering", "id": "s" + e.id}) for e in train]
    n_units = len({e.unit for e in train})
    assert n_units == 30
    units = {n: {(e.task, e.unit) for e in subsample_units(train + other, n, seed=3)}
             for n in (3, 10, 10**6)}
    assert units[3] < units[10] < units[10**6]
    assert sum(t == "features" for t, _ in units[10]) == 10  # per task
    assert sum(t == "steering" for t, _ in units[10]) == 10
    assert units[10**6] == {(e.task, e.unit) for e in train + other}


def test_scaling_trains_one_explainer_per_size(token_cache, tiny_model_dir, tmp_path):
    data, _ = build_task_data(ExplainDataConfig(
        task="features", targets="tokens", cache=token_cache / "cache", sae=token_cache / "sae",
        out=tmp_path / "tok", test_fraction=0.3, min_active=1, novel_fraction=0.0))
    out, result = run_scaling(ExplainScalingConfig(
        data=[data], model=str(tiny_model_dir), out=tmp_path / "sc", sizes=[4, 2],
        max_steps=2, val_fraction=0.0, eval_examples=6, max_tokens=6, n_boot=50))
    assert result["sizes"] == [2, 4]
    assert json.loads((out / SCALING_FILE).read_text()) == result
    pts = result["points"]
    by = {(p["size"], p["condition"]) for p in pts}
    assert {(2, "trained"), (4, "trained"), (2, "nearest_neighbour"), (4, "majority")} <= by
    # the vector control generates: the largest size only
    assert (4, "shuffled_vector") in by and (2, "shuffled_vector") not in by
    n_train = {p["size"]: p["n_train"] for p in pts if p["condition"] == "trained"}
    assert n_train[2] < n_train[4]
    for p in pts:
        assert p["metric"] == "token_f1" and p["lo"] <= p["value"] <= p["hi"]
    assert len({p["n"] for p in pts}) == 1 and 0 < pts[0]["n"] <= 6
    manifest = json.loads((out / "n2" / "train" / "manifest.json").read_text())
    assert manifest["config"]["max_train_units"] == 2
    assert manifest["outputs"]["n_train_by_task"] == {"features": n_train[2]}
    # the baselines read only the explainer's own training subset
    meta = json.loads((out / "n2" / "train" / "explainer.json").read_text())
    seen = training_subset(read_examples(data / TRAIN_FILE), meta)
    assert len({e.unit for e in seen}) == 2
    preds = (out / "n2" / "eval" / "predictions").rglob("nearest_neighbour.jsonl")
    answers = {json.loads(x)["prediction"] for f in preds for x in f.read_text().splitlines()}
    assert answers and answers <= {e.answer for e in seen}


def test_a_point_counts_the_training_examples_of_its_own_task():
    """A two-task explainer's features point sits at its features examples, not at both tasks'."""
    from afscope.explain.scaling import scaling_points

    def row(task: str, key: str) -> dict:
        return {"task": task, "condition": "trained", "n": 9, "metrics": {"subsets": {
            "all": {key: {"mean": 0.5, "lo": 0.4, "hi": 0.6}}}}}

    pts = scaling_points([row("features", "token_f1"), row("context_ablation", "content_match")],
                         8, {"features": 8, "context_ablation": 72})
    assert {p["task"]: (p["n_train"], p["metric"]) for p in pts} == {
        "features": (8, "token_f1"), "context_ablation": (72, "content_match")}


def test_scaling_sizes_must_be_distinct():
    with pytest.raises(ValueError, match="distinct"):
        ExplainScalingConfig(data=["x"], sizes=[4, 4])
