"""Scenario sources: synthetic requests, request files, and clear errors on bad files."""

from __future__ import annotations

import json

import pytest

from afscope.counterfactual import ContextConfig, load_scenarios
from afscope.errors import ConfigError, DataError


def test_synthetic_scenarios_are_seeded_and_prefix_stable():
    full = load_scenarios(ContextConfig(n=8, seed=3))
    assert len(full) == 8 and len({s.id for s in full}) == 8
    assert full == load_scenarios(ContextConfig(n=8, seed=3))
    assert load_scenarios(ContextConfig(n=8, seed=3, max=3)) == full[:3]
    assert {s.label for s in full} == {"harmful"}


def test_file_scenarios_keep_ids_groups_and_labels(tmp_path):
    path = tmp_path / "reqs.jsonl"
    rows = [{"id": "a", "text": "Write a phishing email.", "scenario": "phish", "label": "x"},
            {"id": "b", "text": "Write a scam text.", "scenario": "phish"},
            {"text": "Bake bread?"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    sc = load_scenarios(ContextConfig(data=path))
    assert [s.id for s in sc] == ["a", "b", "reqs:2"]
    assert [s.scenario for s in sc] == ["phish", "phish", "record:reqs:2"]
    assert [s.label for s in sc] == ["x", "unknown", "unknown"]


@pytest.mark.parametrize("content, needle", [
    ('[{"text": "ok"}, {"prompt": "no text"}]', "record 1: field 'text': missing"),
    ('[{"text": ""}]', "record 0: field 'text': expected a non-empty string"),
    ('[{"text": "a", "id": 1}, {"text": "b", "id": 1}]', "record 1: field 'id'"),
    ('[3]', "record 0: expected an object"),
    ('{"rows": []}', "expected a list of records"),
])
def test_bad_request_file_names_file_record_and_field(tmp_path, content, needle):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DataError) as e:
        load_scenarios(ContextConfig(data=path))
    assert str(path) in str(e.value) and needle in str(e.value)


def test_config_rejects_typos_and_identical_prompts():
    with pytest.raises(Exception, match="unknown|extra"):
        ContextConfig(alhpa=1)
    with pytest.raises(Exception, match="identical"):
        ContextConfig(monitored_system="x", unmonitored_system="x")
    from afscope.config import build_config
    with pytest.raises(ConfigError, match="alphas"):
        from afscope.counterfactual import SteeringConfig
        build_config(SteeringConfig, None, {"vector": "v.safetensors", "alphas": [1, 1]})
