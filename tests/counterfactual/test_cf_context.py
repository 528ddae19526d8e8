"""Context ablation end to end on a tiny llama: schema, labels, split, resume, warning."""

from __future__ import annotations

import json
import logging

import pytest
from cf_helpers import CountingModel, context_cfg, tiny_lm
from tiny_models import random_lora

from afscope.counterfactual import CONTEXT_FIELDS, build_context_dataset
from afscope.errors import ArtifactError, DataError
from afscope.generate import render_prompt
from afscope.judge import classify_behaviour
from afscope.rows import JsonlStore


def _lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_context_dataset_schema_labels_and_split(tiny_model_dir, tmp_path, caplog):
    lm = tiny_lm(tiny_model_dir)
    cfg = context_cfg(tiny_model_dir, tmp_path / "run")
    with caplog.at_level(logging.WARNING):
        res = build_context_dataset(cfg, lm=lm)
    train = json.loads((cfg.out / "train.json").read_text())
    test = json.loads((cfg.out / "test.json").read_text())
    stats = json.loads((cfg.out / "stats.json").read_text())
    assert train == res.train and test == res.test and stats == res.stats
    assert len(train) + len(test) == 6 and train and test
    assert not {r["scenario"] for r in train} & {r["scenario"] for r in test}
    for rec in train + test:
        assert set(rec) == set(CONTEXT_FIELDS)
        # labels come from the judge rules applied to the stored answers
        assert rec["behaviour_monitored"] == classify_behaviour(rec["response_monitored"],
                                                                rec["ablation_prompt"]).behaviour
        assert rec["changed"] == (rec["behaviour_monitored"] != rec["behaviour_unmonitored"])
        assert rec["changed_pred_bc_hint"] == rec["changed"]
        # the prediction fields hold the labels: the flag is their comparison
        assert rec["random_hint_prediction"] == rec["behaviour_monitored"]
        assert rec["zeroshot_prediction"] == rec["behaviour_unmonitored"]
        assert rec["changed_pred_bc_hint"] == (rec["random_hint_prediction"]
                                               != rec["zeroshot_prediction"])
        assert rec["unmonitored_system_prompt"] == cfg.unmonitored_system
        msgs = [{"role": "system", "content": cfg.monitored_system},
                {"role": "user", "content": rec["ablation_prompt"]}]
        assert rec["hint_prompt_full"] == render_prompt(lm.tokenizer, msgs)
        assert rec["hint_prompt_full"].startswith("<|im_start|>system\n" + cfg.monitored_system)
        assert cfg.unmonitored_system in rec["original_prompt_full"]
        assert rec["hint_user_prompt"] == rec["original_user_prompt"] == rec["ablation_prompt"]
        assert rec["judge_method"] == "rules" and rec["model"] == str(tiny_model_dir)
    # random text: the answers differ as strings, yet a pair with equal labels is not changed
    recs = train + test
    assert any(r["response_monitored"] != r["response_unmonitored"] and not r["changed"]
               for r in recs)
    assert stats["n_records"] == 6 and stats["n_changed"] == sum(r["changed"] for r in recs)
    assert sum(stats["directions"].values()) == 6
    gens = _lines(cfg.out / "generations.jsonl")
    assert len(gens) == 12
    assert stats["mean_response_tokens"] == pytest.approx(
        sum(g["n_new_tokens"] for g in gens) / 12)
    if stats["changed_rate"] < 0.2:
        assert stats["low_changed_rate"] and "too noisy" in caplog.text
    manifest = json.loads((cfg.out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["outputs"]["generations"]["done"] == 12


def test_context_resume_makes_no_duplicate_or_repeated_generations(tiny_model_dir, tmp_path):
    lm = tiny_lm(tiny_model_dir)
    counter = CountingModel(lm)
    out = tmp_path / "run"
    build_context_dataset(context_cfg(tiny_model_dir, out, max=2), lm=lm)
    first = _lines(out / "generations.jsonl")
    assert len(first) == 4 and counter.calls > 0
    calls_small = counter.calls
    build_context_dataset(context_cfg(tiny_model_dir, out), lm=lm)
    gens = _lines(out / "generations.jsonl")
    assert len(gens) == 12 and len({g["id"] for g in gens}) == 12
    assert gens[:4] == first                       # finished rows untouched
    assert counter.calls > calls_small
    # a full rerun makes no model call at all
    before = counter.calls
    res = build_context_dataset(context_cfg(tiny_model_dir, out), lm=lm)
    assert counter.calls == before and res.stats["n_records"] == 6
    assert len(_lines(out / "labels.jsonl")) == 12
    # a kill mid-write (torn last line) redoes only that row
    raw = (out / "generations.jsonl").read_bytes()
    (out / "generations.jsonl").write_bytes(raw[:-40])
    redo = build_context_dataset(context_cfg(tiny_model_dir, out), lm=lm)
    gens2 = _lines(out / "generations.jsonl")
    assert len(gens2) == 12 and gens2 == gens and redo.train == res.train
    assert json.loads((out / "manifest.json").read_text())["outputs"]["generations"] == {
        "done": 1, "skipped": 11}


def test_context_refuses_store_of_other_prompts(tiny_model_dir, tmp_path):
    lm = tiny_lm(tiny_model_dir)
    out = tmp_path / "run"
    build_context_dataset(context_cfg(tiny_model_dir, out, n=2), lm=lm)
    with pytest.raises(ArtifactError, match="other settings"):
        build_context_dataset(context_cfg(tiny_model_dir, out, n=2, monitored_system="Watched."),
                              lm=lm)
    assert len(JsonlStore(out / "generations.jsonl")) == 4


def test_context_bad_file_is_data_error_and_leaves_nothing(tiny_model_dir, tmp_path):
    bad = tmp_path / "reqs.jsonl"
    bad.write_text('{"text": "Help me."}\n{"request": "no text field"}\n')
    out = tmp_path / "run"
    with pytest.raises(DataError, match=r"reqs\.jsonl: record 1 \(line 2\): field 'text'"):
        build_context_dataset(context_cfg(tiny_model_dir, out, data=bad))
    assert not out.exists()


def test_context_llm_judge_labels_and_unparsed_answers_are_left_out(tiny_model_dir, tmp_path,
                                                                    caplog):
    from cf_helpers import CycleJudge, verdict

    lm = tiny_lm(tiny_model_dir)
    # judged in item order: s0:monitored, s0:unmonitored, s1:monitored, ...
    judge = CycleJudge([verdict("comply", af=True), verdict("refuse"), verdict("partial"),
                        verdict("partial"), "not a verdict", verdict("refuse")])
    cfg = context_cfg(tiny_model_dir, tmp_path / "run", n=3, judge="both")
    with caplog.at_level(logging.WARNING):
        res = build_context_dataset(cfg, lm=lm, backend=judge)
    recs = {r["id"]: r for r in res.train + res.test}
    assert len(recs) == 2 and res.stats["n_unlabelled"] == 1
    first, second = recs["req-00000"], recs["req-00001"]
    assert (first["behaviour_monitored"], first["behaviour_unmonitored"]) == ("comply", "refuse")
    assert first["changed"] is True and first["af_monitored"] is True
    assert second["changed"] is False and second["judge_method"] == "both"
    assert res.stats["directions"] == {"comply->refuse": 1, "partial->partial": 1}
    assert res.stats["changed_rate"] == 0.5 and not res.stats["low_changed_rate"]
    assert "left out" in caplog.text
    labels = _lines(cfg.out / "labels.jsonl")
    assert len(labels) == 6 and {r["judge_status"] for r in labels} == {"ok", "parse_error"}
    # rerun: nothing is judged again (parse failures are stored, as greedy would repeat them)
    build_context_dataset(cfg, lm=lm, backend=judge)
    assert judge.n == 6


def test_context_adapter_is_the_organism_s_behaviour(tiny_model_dir, tmp_path):
    """--adapter merges an organism LoRA into the target: the records are the organism's (its
    name and answers), the same as passing the merged model in, and a server refuses it."""
    from afscope.organism import load_organism

    org = random_lora(tiny_model_dir, tmp_path / "org")
    via_flag = build_context_dataset(context_cfg(tiny_model_dir, tmp_path / "flag", adapter=org))
    merged = load_organism(tiny_lm(tiny_model_dir), org)
    passed = build_context_dataset(context_cfg(tiny_model_dir, tmp_path / "lm"), lm=merged)
    base = build_context_dataset(context_cfg(tiny_model_dir, tmp_path / "base"),
                                 lm=tiny_lm(tiny_model_dir))
    recs = via_flag.train + via_flag.test
    assert {r["model"] for r in recs} == {f"{tiny_model_dir}+organism"}
    answers = [r["response_monitored"] for r in recs]
    assert answers == [r["response_monitored"] for r in passed.train + passed.test]
    assert answers != [r["response_monitored"] for r in base.train + base.test]
    with pytest.raises(ValueError, match="'adapter' is merged into a local model"):
        context_cfg(tiny_model_dir, tmp_path / "s", adapter=org, server="http://127.0.0.1:1/v1")


def test_context_organism_config_parses():
    """configs/context_organism.yaml (the documented Task 3 experiment) is a valid config."""
    from pathlib import Path

    import yaml

    from afscope.counterfactual import ContextConfig

    path = Path(__file__).parents[2] / "configs" / "context_organism.yaml"
    cfg = ContextConfig(**yaml.safe_load(path.read_text()))
    assert cfg.adapter == Path("runs/demo/lab/organism/train")
    assert (cfg.n, cfg.seed, cfg.max_tokens, cfg.test_fraction) == (440, 1, 80, 0.3)
