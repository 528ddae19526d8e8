"""explain eval: controls, few-shot prompts, nearest neighbour, judge parsing, the CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from explain_tasks import context_folder, tiny_model_with_head, vector_folder

from afscope.cli import main
from afscope.explain.encode import Encoded
from afscope.explain.evaluate import (
    control_rows,
    few_shot_examples,
    limit_per_task,
    nearest_neighbour,
    parse_judge_score,
)
from afscope.explain.schema import TEST_FILE, TRAIN_FILE, VECTOR_MARKER, read_examples
from afscope.explain.train import load_tasks


def _rows(n: int) -> list[Encoded]:
    return [Encoded(f"e{i}", [1, 2, 3], [4], [1], [f"v{i}"], [2]) for i in range(n)]


def test_shuffled_control_is_a_derangement_and_seeded():
    rows = _rows(7)
    vecs = {f"v{i}": torch.randn(5) for i in range(7)}
    a, _ = control_rows(rows, "shuffled_vector", vecs, seed=3)
    b, _ = control_rows(rows, "shuffled_vector", vecs, seed=3)
    assert [r.keys for r in a] == [r.keys for r in b]
    assert all(r.keys != orig.keys for r, orig in zip(a, rows))
    assert sorted(k for r in a for k in r.keys) == sorted(vecs)  # a permutation
    assert [r.positions for r in a] == [r.positions for r in rows]


def test_no_vector_and_random_controls():
    rows = _rows(3)
    vecs = {f"v{i}": torch.randn(5) for i in range(3)}
    none, _ = control_rows(rows, "no_vector", vecs, seed=0)
    assert all(r.positions == [] and r.keys == [] for r in none)
    rnd, extra = control_rows(rows, "random_vector", vecs, seed=0)
    assert all(k.startswith("random:") and extra[k].shape == (5,) for r in rnd for k in r.keys)
    again, extra2 = control_rows(rows, "random_vector", vecs, seed=0)
    assert all(torch.equal(extra[k], extra2[k]) for k in extra)


def test_few_shot_puts_demos_before_the_question_with_their_vectors(tmp_path):
    folder = vector_folder(tmp_path, d=8, n=12)
    train = read_examples(folder / TRAIN_FILE)
    test = read_examples(folder / TEST_FILE)
    shots = few_shot_examples(test, train, k=2, seed=0)
    s = shots[0]
    assert [m.role for m in s.messages] == ["user", "assistant", "user", "assistant", "user"]
    assert s.messages[-1] == test[0].messages[-1]
    assert len(s.vectors) == 3 and s.vectors[-1] == test[0].vectors[0]
    assert sum(m.content.count(VECTOR_MARKER) for m in s.messages) == 3
    train_ids = {e.answer for e in train}
    assert s.messages[1].content in train_ids
    assert few_shot_examples(test, train, k=2, seed=0) == shots


def test_nearest_neighbour_returns_the_closest_training_answer(tmp_path):
    folder = vector_folder(tmp_path, d=8, n=12)
    train, vecs = load_tasks([folder])
    test, tvecs = load_tasks([folder], TEST_FILE)
    vecs.update(tvecs)
    # a test example whose vector is a training vector scaled: its neighbour is that example
    probe = test[0].model_copy(deep=True)
    vecs[probe.vectors[0].key] = 3.0 * vecs[train[4].vectors[0].key]
    assert nearest_neighbour([probe], train, vecs) == [train[4].answer]
    ctx = read_examples(context_folder(tmp_path) / TEST_FILE)
    assert nearest_neighbour(ctx[:2], train, vecs) == [None, None]  # no embedder: not applicable
    # without vectors, by the prompt text: a bag-of-words embedder finds the same scenario
    ctx_train = read_examples(context_folder(tmp_path) / "train.jsonl")
    q = ctx[0]
    twin = ctx_train[3].model_copy(update={"messages": q.messages, "answer": "the twin's answer"},
                                   deep=True)
    pool = [twin, *ctx_train]  # first among equals: argmax keeps the first

    def embed(texts):
        from sklearn.feature_extraction.text import CountVectorizer

        X = CountVectorizer().fit(texts).transform(texts).toarray().astype(float)
        return X / np.linalg.norm(X, axis=1, keepdims=True)

    same_kind = [t for t in pool if t.question_type == q.question_type]
    assert twin in same_kind
    assert nearest_neighbour([q], pool, vecs, embed) == ["the twin's answer"]


@pytest.mark.parametrize("text,score", [("4", 4), (" 5.\n", 5), ("1", 1), ("6", None),
                                         ("4/5", None), ("Score: 4", None), ("", None)])
def test_judge_score_is_strict(text, score):
    assert parse_judge_score(text) == score


def test_limit_per_task_keeps_file_order(tmp_path):
    exs = read_examples(context_folder(tmp_path) / TRAIN_FILE)
    assert limit_per_task(exs, 4) == exs[:4]
    assert limit_per_task(exs, None) == exs


def test_cli_train_then_eval_writes_the_table(tmp_path, tiny_model_dir):
    ctx = context_folder(tmp_path)
    feat = vector_folder(tmp_path, d=48)
    runner = CliRunner()
    res = runner.invoke(main, ["explain", "train", "--data", f"{ctx},{feat}",
                               "--model", str(tiny_model_dir), "--out", str(tmp_path / "tr"),
                               "--max-steps", "4", "--eval-steps", "2", "--batch-size", "4"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["explain", "eval", "--explainers", str(tmp_path / "tr"),
                               "--out", str(tmp_path / "ev"), "--max-tokens", "6",
                               "--n-boot", "50", "--no-embed-similarity"])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    conds = {(r["condition"], r["task"]) for r in m["table"]}
    assert ("trained", "context_ablation") in conds and ("trained", "features") in conds
    # vector controls only where there are vectors; nearest neighbour by text elsewhere
    assert ("shuffled_vector", "features") in conds
    assert ("shuffled_vector", "context_ablation") not in conds
    assert ("nearest_neighbour", "context_ablation") in conds
    n_test = {t: len([e for e in read_examples(f / TEST_FILE)]) for t, f in
              (("context_ablation", ctx), ("features", feat))}
    for r in m["table"]:
        if r["condition"] in ("trained", "zero_shot", "few_shot"):
            assert r["n"] == n_test[r["task"]]
    preds = (tmp_path / "ev" / "predictions").rglob("*.jsonl")
    assert {p.stem for p in preds} >= {"trained", "zero_shot", "few_shot", "no_vector"}
    assert len(m["train_curves"]) == 1 and m["examples"]


def test_eval_refuses_an_explainer_on_another_base_model(tmp_path, tiny_model_dir,
                                                         tiny_tokenizer):

    from afscope.errors import ConfigError
    from afscope.explain.config import ExplainTrainConfig
    from afscope.explain.train import load_explainer, train_explainer
    from afscope.models import load_model

    out, _ = train_explainer(ExplainTrainConfig(data=[context_folder(tmp_path)],
                                                model=str(tiny_model_dir), out=tmp_path / "tr",
                                                max_steps=1, val_fraction=0.0))
    other = tiny_model_with_head(tmp_path / "other", tiny_tokenizer, shift=1.0)
    with pytest.raises(ConfigError, match="trained on base model"):
        load_explainer(out, lm=load_model(str(other)))


def test_majority_is_the_most_common_training_answer_per_question_type(tmp_path):
    from afscope.explain.evaluate import majority_answers

    folder = context_folder(tmp_path)
    train = read_examples(folder / TRAIN_FILE)
    test = read_examples(folder / TEST_FILE)
    got = majority_answers(test, train)
    for e, p in zip(test, got):
        answers = [t.answer for t in train if t.question_type == e.question_type]
        top = max(answers.count(a) for a in set(answers))
        assert answers.count(p) == top and p == min(a for a in set(answers)
                                                    if answers.count(a) == top)


@pytest.mark.parametrize("d_target", [32, 48])  # self width, and another width (projector)
def test_a_trained_explainer_reads_the_vector(tmp_path, tiny_tokenizer, d_target):
    """End to end on a task only the vector can answer (which of two prototypes it is near): the
    trained explainer is right on held-out features, the shuffled-vector control and the majority
    answer are not. (The tiny model's lm_head is scaled up: at its init scale the logits cannot
    leave ~uniform, so nothing could be learned.)"""

    from afscope.explain.config import ExplainEvalConfig, ExplainTrainConfig
    from afscope.explain.evaluate import evaluate_explainers
    from afscope.explain.train import train_explainer

    model_dir = tiny_model_with_head(tmp_path / "m", tiny_tokenizer, scale=50.0)
    feat = vector_folder(tmp_path, d=d_target, n=64, clusters=True)
    out, s = train_explainer(ExplainTrainConfig(
        data=[feat], model=str(model_dir), out=tmp_path / "tr", max_steps=150, batch_size=8,
        lr=1e-2, scheduler="constant", val_fraction=0.0))
    assert s["last_loss"] < 0.05
    _, res = evaluate_explainers(ExplainEvalConfig(
        explainers=[out], out=tmp_path / "ev", max_tokens=24, n_boot=50, embed_similarity=False,
        conditions=["trained", "shuffled_vector", "majority"]))
    exact = {r["condition"]: r["metrics"]["subsets"]["all"]["exact_match"]["mean"]
             for r in res["table"]}
    assert exact["trained"] == 1.0
    assert exact["shuffled_vector"] <= 0.75 and exact["majority"] <= 0.75


def test_seed_groups_pool_runs_that_differ_only_in_seed():
    from afscope.explain.evaluate import seed_groups

    members = [("a", "k1", 0), ("b", "k2", 0), ("c", "k1", 1), ("d", "k1", 1), ("e", None, 2),
               ("f", "k2", 5)]
    assert seed_groups(members) == [[0, 2], [1, 5]]
    assert seed_groups([("a", "k", 0), ("b", "k", 0)]) == []


def test_eval_pools_the_seeds_of_one_training_config(tmp_path, tiny_model_dir):
    from afscope.report import ExplainEval

    ctx = context_folder(tmp_path)
    runner = CliRunner()
    runs = []
    for name, extra in (("s0", ["--seed", "0"]), ("s1", ["--seed", "1"]),
                        ("lr", ["--seed", "2", "--lr", "5e-3"])):
        runs.append(tmp_path / name)
        res = runner.invoke(main, ["explain", "train", "--data", str(ctx), "--model",
                                   str(tiny_model_dir), "--out", str(runs[-1]), "--max-steps", "2",
                                   "--batch-size", "4", "--val-fraction", "0", *extra])
        assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["explain", "eval", "--explainers", ",".join(map(str, runs)),
                               "--out", str(tmp_path / "ev"), "--max-tokens", "6",
                               "--conditions", "trained,majority", "--n-boot", "50",
                               "--no-embed-similarity"])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    ExplainEval.model_validate(m)
    pooled = [e for e in m["explainers"] if e["pooled"]]
    assert len(pooled) == 1 and len(m["explainers"]) == 4  # the other lr is not pooled
    entry = pooled[0]
    members = entry["pooled"]
    assert entry["label"] == f"{members[0]} (seeds 0,1)" and entry["seed"] is None
    assert entry["run_dir"] == f"{runs[0]},{runs[1]}"
    rows = {(r["explainer"], r["condition"]): r for r in m["table"]}
    n_units = len({e.unit for e in read_examples(ctx / TEST_FILE)})
    for cond in ("trained", "majority"):
        got = rows[(entry["label"], cond)]
        parts = [rows[(lab, cond)] for lab in members]
        assert got["n"] == sum(p["n"] for p in parts)
        every = got["metrics"]["subsets"]["all"]
        assert every["n_units"] == n_units
        assert every["content_match"]["mean"] == pytest.approx(np.mean(
            [p["metrics"]["subsets"]["all"]["content_match"]["mean"] for p in parts]))
    preds = json.loads((tmp_path / "ev" / "predictions" / members[0] / "trained.jsonl")
                       .read_text().splitlines()[0])
    assert preds["unit"] in {e.unit for e in read_examples(ctx / TEST_FILE)}
    run = tmp_path / "run"
    (run / "explain" / "eval").mkdir(parents=True)
    (run / "explain" / "eval" / "metrics.json").write_text(json.dumps(m))
    res = runner.invoke(main, ["report", str(run)])
    assert res.exit_code == 0, res.output
    page = (run / "report" / "explainer.html").read_text()
    assert f"pooled: {', '.join(members)}" in page and f"{n_units} units" in page
