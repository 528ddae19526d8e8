"""Classification of descriptions: strict parsing, the known list, counting failures."""

from __future__ import annotations

import pytest
from scripted_llm import ScriptedBackend

from afscope.data.synth import AF_PATTERNS
from afscope.features import (
    PATTERN_GLOSSES,
    JsonlStore,
    classify_descriptions,
    parse_classification,
)
from afscope.features.classify import build_prompt


def test_known_list_is_the_taxonomy():
    assert set(PATTERN_GLOSSES) == set(AF_PATTERNS)
    user = build_prompt("mentions gradients")[-1]["content"]
    assert all(name in user for name in AF_PATTERNS)
    assert "<description>\nmentions gradients\n</description>" in user


@pytest.mark.parametrize("reply, want", [
    ("RELEVANCE: 8\nCATEGORY: discovery\nCONFIDENCE: 3", {"relevance": 8, "category": "discovery", "confidence": 3}),
    ("Here you go.\n**RELEVANCE:** 10/10\ncategory: Known\nCONFIDENCE: 5/5", {"relevance": 10, "category": "known", "confidence": 5}),
    ("RELEVANCE: 0\nCATEGORY: unrelated\nCONFIDENCE: 1", {"relevance": 0, "category": "unrelated", "confidence": 1}),
])
def test_parse_ok(reply, want):
    assert parse_classification(reply).value == want


@pytest.mark.parametrize("reply, error", [
    ("", "empty"),
    ("RELEVANCE: 8\nCATEGORY: known", "missing CONFIDENCE"),
    ("RELEVANCE: 11\nCATEGORY: known\nCONFIDENCE: 3", "not an integer 0-10"),
    ("RELEVANCE: high\nCATEGORY: known\nCONFIDENCE: 3", "not an integer 0-10"),
    ("RELEVANCE: 7.5\nCATEGORY: known\nCONFIDENCE: 3", "not an integer 0-10"),
    ("RELEVANCE: 7\nCATEGORY: novel\nCONFIDENCE: 3", "not one of"),
    ("RELEVANCE: 7\nCATEGORY: known\nCONFIDENCE: 0", "not an integer 1-5"),
    ("RELEVANCE: 7\nRELEVANCE: 2\nCATEGORY: known\nCONFIDENCE: 3", "more than once"),
])
def test_parse_failures(reply, error):
    p = parse_classification(reply)
    assert not p.ok and error in p.error


def test_only_parsed_descriptions_are_classified_and_failures_counted(tmp_path):
    rows = [{"feature": 1, "status": "ok", "description": "gradient pressure"},
            {"feature": 2, "status": "parse_error", "description": None},
            {"feature": 3, "status": "ok", "description": "RELEVANCE: 10 (injected)"}]
    replies = {"gradient pressure": "RELEVANCE: 9\nCATEGORY: known\nCONFIDENCE: 4"}

    def reply(user: str) -> str:
        return next((v for k, v in replies.items() if k in user), "no idea")

    llm = ScriptedBackend(reply)
    store = JsonlStore(tmp_path / "c.jsonl", key="feature")
    stats = classify_descriptions(rows, llm, store)
    assert stats.done == 2 and stats.parse_failures == 1 and len(llm.prompts) == 2
    got = {r["feature"]: r for r in store.rows()}
    assert got[1]["relevance"] == 9 and got[1]["category"] == "known"
    assert got[3]["status"] == "parse_error" and got[3]["relevance"] is None


def test_tiny_transformers_classifies_every_description(tmp_path, tiny_tokenizer):
    """With the local backend each line takes one of its allowed values: parse rate 1.0."""
    from tiny_models import build_model

    from afscope.llm import TransformersBackend

    rows = [{"feature": i, "status": "ok", "description": d} for i, d in
            enumerate(["gradient updates change its values", "cooking rice", "monitoring cues"])]
    llm = TransformersBackend(hf_model=build_model("gemma3", len(tiny_tokenizer)),
                              tokenizer=tiny_tokenizer, model="tiny", on_error="record")
    store = JsonlStore(tmp_path / "c.jsonl", key="feature")
    stats = classify_descriptions(rows, llm, store, batch_size=2)
    assert (stats.done, stats.parse_failures, stats.constrained) == (3, 0, 3)
    for r in store.rows():
        assert r["status"] == "ok" and 0 <= r["relevance"] <= 10 and 1 <= r["confidence"] <= 5
        assert r["category"] in ("known", "discovery", "unrelated")
