"""The behaviour lab on a tiny llama: behaviour.json matches the report's schema, counts add up,
parts switch off, a rerun resumes without generating, and an LLM judge fills the agreement."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from afscope.data.cues import CUES
from afscope.lab import BEHAVIOUR_FILE, LabConfig, judge_backend, run_lab
from afscope.lab.results import MAX_CHARS, ci, cut
from afscope.models import load_model
from afscope.report.schema import read_behaviour

TINY = dict(organism_examples=32, organism_steps=3, organism_requests=2, organism_max_length=256,
            organism_r=2, context_scenarios=4, steer_prompts=2, steer_corpus=20,
            steer_max_length=64, max_tokens=4, organism_max_tokens=4, n_boot=100)


def _manifest(path):
    return json.loads((path / "manifest.json").read_text())


def test_lab_whole_then_resume(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    cfg = LabConfig(model=str(tiny_model_dir), out=out, **TINY)
    doc = run_lab(cfg)
    assert json.loads((out / BEHAVIOUR_FILE).read_text()) == doc
    b = read_behaviour(out)  # the report's own reader validates the contract
    assert b is not None and b.model == str(tiny_model_dir) and b.judge.method == "rules"
    assert b.judge.agreement is None

    org = b.organism
    assert org.run_dir == "lab/organism" and org.train.steps == 3
    assert [m.name for m in org.models] == ["organism", "base"]
    for m in org.models:
        assert [c.cue for c in m.per_cue] == list(CUES)  # every cue, in CUES order
        assert all(c.n == 2 and c.monitored is CUES[c.cue][1] for c in m.per_cue)
        assert m.n_units == 2
    assert 0 < len(org.examples) <= 6
    assert {e.model for e in org.examples} == {"organism", "base"}
    validation = json.loads((out / "lab/organism/validation.json").read_text())
    assert org.models[0].gap.value == pytest.approx(validation["organism"]["gap"]["gap"])

    ctx = b.context_ablation
    assert ctx.target == "organism" and ctx.run_dir == "lab/context"
    assert ctx.n + ctx.n_unlabelled == 4 and ctx.n_train + ctx.n_test == ctx.n
    assert sum(ctx.directions.values()) == ctx.n and ctx.mean_new_tokens <= 4
    assert ctx.changed_rate == sum(e.changed for e in ctx.examples) / ctx.n  # all 4 shown
    target = _manifest(out / "lab/context")["models"]["target"]
    assert target["name"].endswith("+organism")  # the merged organism, not the base weights

    st = b.steering
    layers = st.vector.layers
    assert st.vector.source == "diffmean" and len(st.vector.norms) == len(layers)
    assert [c.name for c in st.conditions] == ["baseline"] + [
        f"af_layer_{layer}_alpha_{a:g}" for layer in layers for a in (-8, 8)]
    assert all(c.n == 2 and abs(c.comply + c.refuse + c.partial - 1) < 1e-9
               for c in st.conditions)
    assert len(st.plots) == 6 and all((out / p).is_file() for p in st.plots)

    lab = _manifest(out / "lab")
    assert lab["status"] == "complete" and set(lab["timings_s"]) >= {"organism", "context",
                                                                       "steering"}
    assert all(n > 0 for n in lab["outputs"]["generated"].values())
    for part in ("organism", "organism/train", "organism/elicit", "context", "steer",
                 "steer/vector"):
        assert _manifest(out / "lab" / part)["status"] == "complete"

    adapter = (out / "lab/organism/train/adapter/adapter_model.safetensors").read_bytes()
    again = run_lab(cfg)  # resume: nothing generated, trained or recomputed
    assert again == doc
    assert _manifest(out / "lab")["outputs"]["generated"] == {
        "steering": 0, "organism": 0, "context": 0}
    assert (out / "lab/organism/train/adapter/adapter_model.safetensors").read_bytes() == adapter

    from afscope.cli import console
    from afscope.cli.demo import _print_behaviour

    with console.capture() as cap:
        _print_behaviour(out)
    text = cap.get()
    assert "compliance gap (monitored - unmonitored): organism" in text
    assert f"context ablation: {ctx.n} pairs" in text and "baseline comply" in text


def test_lab_parts_off_via_cli(tmp_path, tiny_model_dir):
    from afscope.cli.lab import command

    out = tmp_path / "run"
    args = ["--model", str(tiny_model_dir), "--out", str(out), "--no-organism", "--no-steering",
            "--context-scenarios", "3", "--max-tokens", "3"]
    res = CliRunner().invoke(command, args, obj={"quiet": False})
    assert res.exit_code == 0, res.output
    assert res.output.strip().endswith("index.html")  # the lab-only report
    assert (out / "report" / "behaviour.html").is_file()
    b = read_behaviour(out)
    assert b.organism is None and b.steering is None
    assert b.context_ablation.target == "base"
    assert b.context_ablation.n + b.context_ablation.n_unlabelled == 3
    assert not (out / "lab/organism").exists() and not (out / "lab/steer").exists()


def test_lab_llm_judge_fills_agreement(tmp_path, tiny_model_dir):
    llm = {"backend": "transformers", "model": str(tiny_model_dir), "max_tokens": 4}
    cfg = LabConfig(model=str(tiny_model_dir), out=tmp_path / "run", judge="both", llm=llm,
                    organism=False, **{**TINY, "context_scenarios": 2, "steer_prompts": 1,
                                       "steer_alphas": [4.0]})
    base = load_model(str(tiny_model_dir))
    backend = judge_backend(cfg, base)
    assert backend.hf_model is base.model  # the judge reuses the loaded weights
    doc = run_lab(cfg, lm=base)
    b = read_behaviour(cfg.out)
    a = b.judge.agreement
    assert b.judge.method == "both" and a is not None
    # 2 scenarios x 2 conditions + 1 prompt x (baseline + 1 steered condition), all judged
    n_rows = 2 * 2 + 1 * 2
    assert sum(map(sum, a.confusion)) == a.n <= n_rows
    assert a.parse_failure_rate == pytest.approx(1 - a.n / n_rows)
    assert all(c.parse_failure_rate is not None for c in b.steering.conditions)
    assert doc["judge"]["agreement"]["labels"] == ["comply", "refuse", "partial"]


def test_ci_and_cut():
    assert ci(0.5, [0.1, 0.9], 2) == {"value": 0.5, "lo": 0.1, "hi": 0.9}
    assert ci(0.5, [0.5, 0.5], 1) is None  # one unit: no interval
    assert ci(None, [None, None], 0) is None
    assert cut("x" * 10) == "x" * 10
    long = cut("y" * 1000)
    assert len(long) == MAX_CHARS and long.endswith("…")


def test_lab_config_rejects_bad_values():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="duplicate alphas"):
        LabConfig(steer_alphas=[2, 2])
    with pytest.raises(ValidationError, match="extra"):
        LabConfig(organism_stepz=3)
