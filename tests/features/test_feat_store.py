"""Append-only JSONL stores: resume after a kill, truncated last line, no duplicates."""

from __future__ import annotations

import json

import pytest
from feat_helpers import oracle_reply
from scripted_llm import ScriptedBackend

from afscope.errors import ArtifactError
from afscope.features import DescribeParams, describe_features
from afscope.features.describe import describe_store
from afscope.rows import JsonlStore


def test_append_read_back_and_refuse_duplicates(tmp_path):
    s = JsonlStore(tmp_path / "x.jsonl", key="feature")
    s.append([{"feature": 1, "v": "a"}, {"feature": 2, "v": "b"}])
    again = JsonlStore(tmp_path / "x.jsonl", key="feature")
    assert [r["feature"] for r in again.rows()] == [1, 2] and 2 in again and 3 not in again
    with pytest.raises(ArtifactError, match="already stored"):
        again.append([{"feature": 2}])
    with pytest.raises(ArtifactError, match="already stored"):
        again.append([{"feature": 5}, {"feature": 5}])


def test_truncated_last_line_is_dropped_and_rewritten(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"feature": 1}\n{"feature": 2}\n{"feature": 3, "descr')
    s = JsonlStore(path, key="feature")
    assert [r["feature"] for r in s.rows()] == [1, 2]
    assert path.read_text() == '{"feature": 1}\n{"feature": 2}\n'
    s.append([{"feature": 3}])
    assert [json.loads(line)["feature"] for line in path.read_text().splitlines()] == [1, 2, 3]


def test_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"feature": 1}\nnot json\n{"feature": 2}\n')
    with pytest.raises(ArtifactError, match="line 2"):
        JsonlStore(path, key="feature")


def test_other_settings_refuse_to_resume(tmp_path):
    s = JsonlStore(tmp_path / "x.jsonl", key="feature", meta={"n_top": 5})
    s.append([{"feature": 1}])
    JsonlStore(tmp_path / "x.jsonl", key="feature", meta={"n_top": 5})
    with pytest.raises(ArtifactError, match="n_top"):
        JsonlStore(tmp_path / "x.jsonl", key="feature", meta={"n_top": 3})


def test_resume_after_kill_neither_redoes_nor_duplicates(toy, tmp_path):
    X, y, texts, ids, cats = toy
    feats = [0, 1, 2, 4, 5]
    params = DescribeParams(n_top=2, n_zero=2)
    killer = ScriptedBackend(oracle_reply, fail_after=3)  # dies inside the 2nd batch of 2
    with pytest.raises(RuntimeError, match="simulated kill"):
        describe_features(X, y, texts, ids, cats, feats, killer, describe_store(tmp_path, params, 0),
                          params, batch_size=2)
    path = tmp_path / "descriptions.jsonl"
    assert [json.loads(line)["feature"] for line in path.read_text().splitlines()] == [0, 1]
    with open(path, "a") as f:
        f.write('{"feature": 2, "status": "o')   # and the kill also left half a line
    llm = ScriptedBackend(oracle_reply)
    stats = describe_features(X, y, texts, ids, cats, feats, llm, describe_store(tmp_path, params, 0),
                              params, batch_size=2)
    assert stats.skipped == 2 and stats.done == 3 and len(llm.prompts) == 3
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["feature"] for r in rows] == [0, 1, 2, 4, 5]
    # the resumed rows are what an uninterrupted run writes
    fresh = tmp_path / "fresh"
    describe_features(X, y, texts, ids, cats, feats, ScriptedBackend(oracle_reply),
                      describe_store(fresh, params, 0), params, batch_size=2)
    assert (fresh / "descriptions.jsonl").read_text() == path.read_text()


def test_backend_failures_are_counted_not_written_and_retried(toy, tmp_path):
    X, y, texts, ids, cats = toy
    flaky = ScriptedBackend(oracle_reply, error_on="cooking")  # feature 1's prompt shows recipes
    store = JsonlStore(tmp_path / "d.jsonl")
    stats = describe_features(X, y, texts, ids, cats, [0, 1], flaky, store)
    assert stats.backend_errors >= 1 and stats.done + stats.backend_errors == 2
    assert "scripted failure" in stats.errors[0]
    stats2 = describe_features(X, y, texts, ids, cats, [0, 1], ScriptedBackend(oracle_reply),
                               JsonlStore(store.path, key="feature"))
    assert stats2.done == stats.backend_errors and len(JsonlStore(store.path, key="feature")) == 2
