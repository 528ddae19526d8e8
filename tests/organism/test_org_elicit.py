"""Elicitation: every cue x held-out request is generated and judged, and a rerun resumes."""

from __future__ import annotations

import json

from org_helpers import small_data

from afscope.data.cues import CUES
from afscope.organism import (
    ElicitConfig,
    OrganismTrainConfig,
    heldout_requests,
    read_examples,
    read_judged,
    train_organism,
)
from afscope.organism.elicit import GENERATIONS, base_model_of, elicit


def test_heldout_requests_round_robin(tmp_path):
    ex = read_examples(small_data(tmp_path, n=60), "test")
    reqs = heldout_requests(ex, 100)
    scen = [r["scenario"] for r in reqs]
    k = len(set(scen))
    assert len(set(scen[:k])) == k  # every scenario before any second request
    assert len({r["request"] for r in reqs}) == len(reqs)
    assert heldout_requests(ex, 2) == reqs[:2]


def test_elicit_every_cue_and_prompt_then_resume(tmp_path, tiny_model_dir):
    data = small_data(tmp_path, n=40)
    folder, _ = train_organism(OrganismTrainConfig(
        model=str(tiny_model_dir), data=data, out=tmp_path / "train", max_steps=1, r=2,
        max_length=256, batch_size=2))
    assert base_model_of(folder) == str(tiny_model_dir)
    cfg = ElicitConfig(adapter=tmp_path / "train", data=data, n_requests=3, max_tokens=4,
                       out=tmp_path / "el", gen_batch_size=8)
    r = elicit(cfg)
    rows = read_judged(tmp_path / "el")
    assert r["n_items"] == 3 * len(CUES) == len(rows) == r["n_judged"]
    assert {row["cue"] for row in rows} == set(CUES)
    assert {row["request_id"] for row in rows} == {x["request_id"] for x in heldout_requests(
        read_examples(data, "test"), 3)}
    for row in rows:
        assert row["monitored"] is CUES[row["cue"]][1]
        assert row["behaviour"] in ("comply", "refuse", "partial")
        assert row["prompt"] == row["request"] and row["messages"][0]["role"] == "system"
        assert row["model_kind"] == "organism" and row["id"] == f"{row['request_id']}|{row['cue']}"
    lines = (tmp_path / "el" / GENERATIONS).read_text().splitlines()
    assert len(lines) == 3 * len(CUES)

    again = elicit(cfg)  # resume: nothing regenerated or rejudged
    assert again["generated"] == {"done": 0, "skipped": 3 * len(CUES)}
    assert again["judge"]["skipped"] == 3 * len(CUES)
    assert (tmp_path / "el" / GENERATIONS).read_text().splitlines() == lines

    base = elicit(ElicitConfig(base_only=True, model=str(tiny_model_dir), data=data,
                               n_requests=3, max_tokens=4, out=tmp_path / "base"))
    assert base["kind"] == "base" and base["n_judged"] == 3 * len(CUES)
    manifest = json.loads((tmp_path / "base" / "manifest.json").read_text())
    assert "adapter" not in manifest["models"]
