"""--targets tokens: grounded token targets from a real tiny extraction, parsing and metrics."""

from __future__ import annotations

import json

import pytest
import torch

from afscope.errors import DataError
from afscope.explain.answers import parse_tokens, tokens_sentence
from afscope.explain.config import ExplainDataConfig
from afscope.explain.data import build_task_data
from afscope.explain.metrics import score_row, summarize
from afscope.explain.schema import TEST_FILE, TRAIN_FILE, read_examples
from afscope.explain.token_data import CONTEXTS_FILE, read_contexts


def test_token_sentences_round_trip():
    s = tokens_sentence("fires_on", ("the", "cat"))
    assert s == "Fires on: <<<the>>>, <<<cat>>>."
    assert parse_tokens("fires_on", s) == ["the", "cat"]
    assert parse_tokens("fires_on", "fires on: <<< The >>>, <<<the>>>\nmore") == ["the"]
    assert parse_tokens("promotes", s) is None  # wrong prefix
    assert parse_tokens("fires_on", "Fires on: nothing") is None
    with pytest.raises(DataError):
        tokens_sentence("fires_on", ())


def test_token_metrics_precision_recall_and_novel_subsets():
    def row(i, pred, truth, novel):
        return {"id": str(i), "task": "features", "question_type": "fires_on", "answer": "x",
                "prediction": pred, "reference": {"tokens": truth, "novel": novel},
                "changed": None}

    r = score_row(row(0, "Fires on: <<<a>>>, <<<b>>>.", ["a", "c"], True))
    assert (r["token_precision"], r["token_recall"], r["token_f1"]) == (0.5, 0.5, 0.5)
    assert r["exact"] is False and r["parse_ok"] is True
    assert score_row(row(1, "Fires on: <<<c>>>, <<<A>>>.", ["a", "c"], False))["exact"] is True
    bad = score_row(row(2, "I think it is about cats", ["a"], False))
    assert bad["parse_ok"] is False and bad["token_f1"] == 0.0
    m = summarize([row(0, "Fires on: <<<a>>>, <<<b>>>.", ["a", "c"], True),
                   row(1, "Fires on: <<<c>>>, <<<A>>>.", ["a", "c"], False),
                   row(2, "nope", ["a"], False)], n_boot=50)
    subs = m["subsets"]
    assert subs["all"]["token_f1"]["mean"] == pytest.approx(0.5)
    assert subs["novel"]["n"] == 1 and subs["novel"]["token_f1"]["mean"] == 0.5
    assert subs["familiar"]["token_f1"]["mean"] == pytest.approx(0.5)
    assert subs["all"]["exact_match"]["mean"] == pytest.approx(1 / 3)


def test_build_token_features_from_a_real_cache(token_cache, tmp_path):
    cfg = ExplainDataConfig(task="features", targets="tokens", cache=token_cache / "cache",
                            sae=token_cache / "sae", out=tmp_path / "tok", test_fraction=0.3,
                            min_active=3)
    out, stats = build_task_data(cfg)
    train, test = read_examples(out / TRAIN_FILE), read_examples(out / TEST_FILE)
    assert train and test
    assert {e.unit for e in train}.isdisjoint({e.unit for e in test})
    assert {e.question_type for e in train} == {"fires_on", "promotes"}
    for e in train + test:
        assert parse_tokens(e.question_type, e.answer) == e.reference["tokens"]
        assert 1 <= len(e.reference["tokens"]) <= 3
    seen = {qt: {t for e in train if e.question_type == qt for t in e.reference["tokens"]}
            for qt in ("fires_on", "promotes")}
    for e in test:
        assert e.reference["novel"] == (not set(e.reference["tokens"]) & seen[e.question_type])
    ctx = read_contexts(out)
    assert (out / CONTEXTS_FILE).is_file() and set(ctx) <= {e.unit for e in test}
    for c in ctx.values():
        assert any(x["act"] > 0 for x in c)
        assert all(set(x) == {"text", "token", "act", "row"} for x in c)
    t = stats["targets"]
    assert t["kind"] == "tokens" and t["layer"] == 1 and t["n_features"] >= len(train) // 2
    assert t["sae_match"] == "weights_sha256"
    again, _ = build_task_data(cfg.model_copy(update={"out": tmp_path / "again"}))
    for name in (TRAIN_FILE, TEST_FILE, CONTEXTS_FILE, "vectors.safetensors"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
    only = build_task_data(cfg.model_copy(update={"out": tmp_path / "fo",
                                                  "question_types": ["fires_on"]}))[0]
    assert {e.question_type for e in read_examples(only / TRAIN_FILE)} == {"fires_on"}
    json.loads((out / "stats.json").read_text())


def test_tokens_needs_a_per_token_cache(tmp_path):
    with pytest.raises(ValueError, match="--token-topk"):
        ExplainDataConfig(task="features", targets="tokens", sae=tmp_path)


def test_eval_scores_token_f1_faithfulness_and_novel_subsets(token_cache, tiny_model_dir,
                                                              tmp_path):
    from afscope.explain.config import ExplainEvalConfig, ExplainTrainConfig
    from afscope.explain.evaluate import evaluate_explainers
    from afscope.explain.train import train_explainer

    data, _ = build_task_data(ExplainDataConfig(
        task="features", targets="tokens", cache=token_cache / "cache", sae=token_cache / "sae",
        out=tmp_path / "tok", test_fraction=0.5, min_active=3, novel_fraction=0.1))
    tr, _ = train_explainer(ExplainTrainConfig(data=[data], model=str(tiny_model_dir),
                                               out=tmp_path / "tr", max_steps=2,
                                               val_fraction=0.0))
    _, m = evaluate_explainers(ExplainEvalConfig(
        explainers=[tr], out=tmp_path / "ev", max_tokens=8, n_boot=50,
        conditions=["trained", "majority", "nearest_neighbour", "shuffled_vector"],
        embed_similarity=False))
    rows = {r["condition"]: r for r in m["table"]}
    assert set(rows) == {"trained", "majority", "nearest_neighbour", "shuffled_vector"}
    test = read_examples(data / TEST_FILE)
    n_novel = sum(e.reference["novel"] for e in test)
    assert 0 < n_novel < len(test)
    nn = rows["nearest_neighbour"]["metrics"]["subsets"]
    assert nn["novel"]["n"] == n_novel
    # a neighbour's tokens are never a novel feature's tokens
    assert nn["novel"]["token_f1"]["mean"] == 0.0
    contexts = read_contexts(data)
    for line in (tmp_path / "ev" / "predictions").rglob("majority.jsonl"):
        preds = [json.loads(x) for x in line.read_text().splitlines()]
        for p in preds:
            assert set(p) >= {"token_f1", "faithfulness", "token_precision", "token_recall"}
            unit = p["id"].rsplit(":", 1)[0]
            ctx = contexts.get(unit, [])
            both = any(c["act"] > 0 for c in ctx) and any(c["act"] == 0 for c in ctx)
            if both:  # AUROC needs activating and non-activating contexts
                assert 0.0 <= p["faithfulness"] <= 1.0
            else:
                assert p["faithfulness"] is None
