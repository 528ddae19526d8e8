"""Detection scoring: held-out samples only, strict yes/no parsing, balanced accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from feat_helpers import oracle_reply
from scripted_llm import ScriptedBackend

from afscope.features import (
    DescribeParams,
    JsonlStore,
    ScoreParams,
    balanced_accuracy,
    describe_features,
    parse_judgments,
    score_descriptions,
)


def test_parse_judgments():
    assert parse_judgments("1: yes\n2: No\n3) yes.", 3).value == [True, False, True]
    assert parse_judgments("Sure:\nSample 2: no\nSample 1: yes\n", 2).value == [True, False]
    for reply, err in [("", "empty"), ("1: yes", "no answer for sample(s) [2]"),
                       ("1: yes\n1: no\n2: no", "twice"), ("1: yes\n2: maybe", "not '<number>"),
                       ("1: yes\n2: no\n3: yes", "out of range")]:
        p = parse_judgments(reply, 2)
        assert not p.ok and err in p.error


def test_balanced_accuracy_and_ci():
    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    m = balanced_accuracy(truth, truth, n_boot=200)
    assert m["value"] == m["lo"] == m["hi"] == 1.0
    said = np.array([1, 1, 0, 0, 0, 0, 0, 0], bool)
    m = balanced_accuracy(truth, said, n_boot=500, seed=1)
    assert m["value"] == pytest.approx(0.75) and m["tpr"] == 0.5 and m["tnr"] == 1.0
    assert m["lo"] < 0.75 < m["hi"] <= 1.0
    assert m == balanced_accuracy(truth, said, n_boot=500, seed=1)


def test_scoring_never_reuses_describing_samples(toy, tmp_path):
    X, y, texts, ids, cats = toy
    feats = [0, 1, 2, 5]
    dstore = JsonlStore(tmp_path / "d.jsonl", key="feature")
    describe_features(X, y, texts, ids, cats, feats, ScriptedBackend(oracle_reply), dstore,
                      DescribeParams(n_top=5, n_zero=5), seed=0)
    llm = ScriptedBackend(oracle_reply)
    sstore = JsonlStore(tmp_path / "s.jsonl", key="feature")
    stats = score_descriptions(X, y, texts, ids, dstore.rows(), llm, sstore,
                               ScoreParams(n_score_pos=6, n_score_neg=6, n_boot=100), seed=0)
    assert stats.done == 4 and stats.parse_failures == 0
    for d in dstore.rows():
        s = sstore.get(d["feature"])
        used = {x["row"] for x in d["top"] + d["zero"]}
        scored = {it["row"] for it in s["items"]}
        assert scored and not used & scored
        assert sum(it["active"] for it in s["items"]) == 6 and len(s["items"]) == 12
    s0 = sstore.get(0)
    assert s0["bal_acc"] == 1.0 and s0["ci"]["value"] == 1.0    # the oracle's description works
    # "activating" = at or above the median of the held-out non-zero activations
    acts = X[:, 0].toarray().ravel()
    held = np.setdiff1d(np.flatnonzero(acts > 0), [x["row"] for x in dstore.get(0)["top"]])
    assert min(it["activation"] for it in s0["items"] if it["active"]) >= np.median(acts[held])
    # shuffled: the items are not all positives first
    assert [it["active"] for it in s0["items"]] != sorted((it["active"] for it in s0["items"]), reverse=True)


def test_no_held_out_samples_is_recorded_once(tmp_path):
    import scipy.sparse as sp

    X = sp.csr_matrix(np.array([[1.0], [2.0], [0.0], [0.0]]))
    y = np.array([1, 1, 0, 0])
    d = [{"feature": 0, "status": "ok", "description": "x y z",
          "top": [{"row": 0}, {"row": 1}], "zero": [{"row": 2}]}]
    llm = ScriptedBackend(oracle_reply)
    store = JsonlStore(tmp_path / "s.jsonl", key="feature")
    stats = score_descriptions(X, y, ["a", "b", "c", "d"], list("abcd"), d, llm, store)
    assert stats.done == 1 and not llm.prompts and store.get(0)["status"] == "no_samples"
    again = score_descriptions(X, y, ["a", "b", "c", "d"], list("abcd"), d, llm, JsonlStore(store.path, key="feature"))
    assert again.skipped == 1 and again.done == 0


def test_tiny_transformers_scores_every_item(toy, tmp_path, tiny_tokenizer):
    """With the local backend every sample gets a yes/no: parse rate 1.0, even from a random model."""
    from tiny_models import build_model

    from afscope.llm import TransformersBackend

    X, y, texts, ids, cats = toy
    dstore = JsonlStore(tmp_path / "d.jsonl", key="feature")
    describe_features(X, y, texts, ids, cats, [0, 1], ScriptedBackend(oracle_reply), dstore,
                      DescribeParams(n_top=3, n_zero=3), seed=0)
    llm = TransformersBackend(hf_model=build_model("llama", len(tiny_tokenizer)),
                              tokenizer=tiny_tokenizer, model="tiny", on_error="record")
    sstore = JsonlStore(tmp_path / "s.jsonl", key="feature")
    stats = score_descriptions(X, y, texts, ids, dstore.rows(), llm, sstore,
                               ScoreParams(n_score_pos=3, n_score_neg=3, n_boot=50), max_chars=80)
    assert (stats.done, stats.parse_failures, stats.constrained) == (2, 0, 2)
    for r in sstore.rows():
        assert r["status"] == "ok" and len(r["said"]) == len(r["items"]) == 6
        assert 0.0 <= r["bal_acc"] <= 1.0
