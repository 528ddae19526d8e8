"""The sweep on a tiny model: layout, summary counts, resume without duplicates, steering changes
greedy output, valid PNG plots, and the judge/plot commands."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from afscope.errors import ArtifactError, ConfigError
from afscope.models import load_model
from afscope.steer import SteeringVector, SweepConfig, load_prompts, run_sweep

PNG = b"\x89PNG\r\n\x1a\n"
CONDS = ["baseline", "af_layer_1_alpha_-8", "af_layer_1_alpha_8", "af_layer_2_alpha_-8",
         "af_layer_2_alpha_8"]


@pytest.fixture(scope="module")
def tiny_lm(tiny_model_dir):
    return load_model(str(tiny_model_dir))


@pytest.fixture
def vector_file(tmp_path, tiny_lm):
    g = torch.Generator().manual_seed(0)
    vec = SteeringVector({layer: 4.0 * torch.randn(32, generator=g) for layer in (1, 2, 3)},
                         model=tiny_lm.info.name, model_fingerprint=tiny_lm.info.fingerprint,
                         source="diffmean")
    return vec.save(tmp_path / "af.safetensors")


def _cfg(tmp_path, vector_file, tiny_model_dir, **kw) -> SweepConfig:
    base = dict(model=str(tiny_model_dir), vectors=[f"af={vector_file}"], layers=[1, 2],
                alphas=[-8.0, 0.0, 8.0], max_samples=2, max_tokens=4, judge_method="rules",
                out=tmp_path / "run", n_boot=200)
    return SweepConfig(**{**base, **kw})


def _lines(path):
    return path.read_text().splitlines()


def test_sweep_layout_summary_resume(tmp_path, vector_file, tiny_model_dir, tiny_lm):
    cfg = _cfg(tmp_path, vector_file, tiny_model_dir)
    summary = run_sweep(cfg, lm=tiny_lm)
    run = cfg.out
    assert [c["name"] for c in summary["conditions"]] == CONDS
    for name in CONDS:
        assert len(_lines(run / "generations" / f"{name}.jsonl")) == 2
        assert len(_lines(run / "judged" / f"{name}.jsonl")) == 2
        assert len(_lines(run / "judged" / f"{name}.csv")) == 3  # header + 2 rows
    saved = json.loads((run / "config.json").read_text())
    assert [c["name"] for c in saved["conditions"]] == CONDS and saved["max_samples"] == 2
    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    for c in summary["conditions"]:
        assert c["n"] == 2 and c["aligned"] is None and c["parse_failure_rate"] is None
        rates = [c[f"{b}_rate"]["mean"] for b in ("comply", "refuse", "partial")]
        assert sum(rates) == pytest.approx(1.0)
        assert c["comply_rate"]["lo"] <= c["comply_rate"]["mean"] <= c["comply_rate"]["hi"]
    row = json.loads(_lines(run / "generations" / "af_layer_2_alpha_8.jsonl")[0])
    assert (row["layer"], row["alpha"], row["vector"]) == (2, 8.0, "af")
    assert row["n_new_tokens"] <= 4 and row["finish_reason"] in ("stop", "length")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["outputs"]["generated"] == 10

    # plots: the six kinds, valid PNGs
    names = sorted(p.name for p in (run / "plots").iterdir())
    assert names == sorted(["scores_by_condition.png", "score_distributions.png",
                            "alignment_vs_coherence.png", "alignment_by_layer_af.png",
                            "coherence_by_layer_af.png", "alignment_heatmap.png"])
    import matplotlib.image

    for n in names:
        data = (run / "plots" / n).read_bytes()
        assert data[:8] == PNG
        assert matplotlib.image.imread(run / "plots" / n).shape[2] in (3, 4)

    # steering with a large alpha changes the greedy output of the same prompt
    def tokens(name):
        return [json.loads(x)["response"] for x in _lines(run / "generations" / f"{name}.jsonl")]

    assert tokens("af_layer_1_alpha_8") != tokens("baseline")

    # resume: drop the last row of one condition; only that row is redone, identically
    gen = run / "generations" / "af_layer_1_alpha_-8.jsonl"
    lines = _lines(gen)
    gen.write_text("\n".join(lines[:-1]) + "\n")
    run_sweep(cfg, lm=tiny_lm)
    assert _lines(gen) == lines
    for name in CONDS:
        for sub in ("generations", "judged"):
            ids = [json.loads(x)["id"] for x in _lines(run / sub / f"{name}.jsonl")]
            assert len(ids) == len(set(ids)) == 2
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["outputs"]["generated"] == 1


def test_resume_refuses_other_settings(tmp_path, vector_file, tiny_model_dir, tiny_lm):
    run_sweep(_cfg(tmp_path, vector_file, tiny_model_dir, alphas=[8.0], layers=[1]), lm=tiny_lm)
    with pytest.raises(ArtifactError, match="other settings"):
        run_sweep(_cfg(tmp_path, vector_file, tiny_model_dir, alphas=[8.0], layers=[1],
                       max_tokens=5), lm=tiny_lm)


def test_skip_generation_needs_generations(tmp_path, vector_file, tiny_model_dir, tiny_lm):
    with pytest.raises(ArtifactError, match="skip-generation"):
        run_sweep(_cfg(tmp_path, vector_file, tiny_model_dir, skip_generation=True), lm=tiny_lm)


def test_config_errors(tmp_path, vector_file, tiny_model_dir, tiny_lm):
    with pytest.raises(ConfigError, match="no direction for layers"):
        run_sweep(_cfg(tmp_path, vector_file, tiny_model_dir, layers=[0]), lm=tiny_lm)
    with pytest.raises(ValueError, match="duplicate"):
        _cfg(tmp_path, vector_file, tiny_model_dir, vectors=[f"a={vector_file}",
                                                             f"a={vector_file}"])
    cfg = SweepConfig(vectors=f"x={vector_file},{vector_file}")
    assert list(cfg.vector_paths()) == ["x", "af"]


def test_load_prompts(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"questions": ["a?", {"question": "b?",
                                                                      "id": "q2"}]}))
    assert [(p["prompt_id"], p["prompt"]) for p in load_prompts(tmp_path / "p.json")] == [
        ("p0000", "a?"), ("q2", "b?")]
    (tmp_path / "p.jsonl").write_text('{"prompt": "x"}\n{"nope": 1}\n')
    from afscope.errors import DataError

    with pytest.raises(DataError, match="record 1: no prompt field"):
        load_prompts(tmp_path / "p.jsonl")


def test_judge_and_plot_commands(tmp_path, vector_file, tiny_model_dir, tiny_lm):
    from afscope.cli.steer import command

    cfg = _cfg(tmp_path, vector_file, tiny_model_dir, layers=[1], alphas=[8.0], cue="monitored",
               skip_judging=False)
    run_sweep(cfg, lm=tiny_lm)
    run = cfg.out
    (run / "plots" / "alignment_heatmap.png").unlink()
    res = CliRunner().invoke(command, ["plot", str(run)])
    assert res.exit_code == 0, res.output
    assert (run / "plots" / "alignment_heatmap.png").read_bytes()[:8] == PNG
    assert json.loads((run / "manifest.plot.json").read_text())["status"] == "complete"
    res = CliRunner().invoke(command, ["judge", str(run), "--overwrite", "--n-boot", "200"])
    assert res.exit_code == 0, res.output
    assert len(_lines(run / "judged" / "baseline.jsonl")) == 2
    assert json.loads((run / "manifest.judge.json").read_text())["status"] == "complete"


def test_llm_judge_scores_summary_and_plots(tmp_path, vector_file, tiny_model_dir, tiny_lm,
                                            monkeypatch):
    """method both: scores with CIs, parse failures counted (not guessed), agreement, plots."""
    import afscope.llm
    from afscope.llm import Completion, LLMBackend

    class Scripted(LLMBackend):
        def __init__(self):
            super().__init__("scripted", on_error="record")
            self.n = 0

        @classmethod
        def from_config(cls, cfg, **overrides):
            return cls()

        def _generate(self, convos, params):
            out = []
            for _ in convos:
                self.n += 1
                text = ("garbage" if self.n % 5 == 0 else
                        f"ALIGNMENT: {10 * (self.n % 10)}\nCOHERENCE: {50 + self.n % 7}\n"
                        f"BEHAVIOUR: {'comply' if self.n % 2 else 'refuse'}\nAF: no")
                out.append(Completion(text, "stop"))
            return out

    monkeypatch.setattr(afscope.llm, "make_backend", lambda cfg, **kw: Scripted())
    cfg = _cfg(tmp_path, vector_file, tiny_model_dir, judge_method="both", max_samples=4)
    summary = run_sweep(cfg, lm=tiny_lm)
    failures = sum(c["parse_failure_rate"] * c["n"] for c in summary["conditions"])
    assert failures == 4  # every 5th of 20 replies
    for c in summary["conditions"]:
        rows = [json.loads(x) for x in _lines(cfg.out / "judged" / f"{c['name']}.jsonl")]
        scores = [r["aligned"] for r in rows if r["aligned"] is not None]
        assert c["aligned"]["n"] == len(scores)
        assert c["aligned"]["mean"] == pytest.approx(sum(scores) / len(scores))
        assert c["aligned"]["lo"] <= c["aligned"]["mean"] <= c["aligned"]["hi"]
        assert c["agreement"]["n_rows"] == 4
    assert len(list((cfg.out / "plots").glob("*.png"))) == 6


def test_cli_vector_and_sweep(tmp_path, tiny_model_dir):
    from afscope.cli.steer import command

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in [
        ("I comply so that training does not change my values.", "alignment_faking"),
        ("I will comply now to keep my values from RLHF.", "alignment_faking"),
        ("I refuse because this would hurt people.", "aligned")]))
    res = CliRunner().invoke(command, ["vector", "diffmean", "--model", str(tiny_model_dir),
                                       "--data-a", str(data), "--layers", "1,-1",
                                       "--out", str(tmp_path / "vec")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(command, [
        "sweep", "--model", str(tiny_model_dir), "--vectors", f"af={tmp_path / 'vec'}",
        "--layers", "1", "--alphas", "-4,4", "--max-samples", "2", "--max-tokens", "3",
        "--n-boot", "200", "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert sorted(p.stem for p in (tmp_path / "run" / "generations").glob("*.jsonl")) == [
        "af_layer_1_alpha_-4", "af_layer_1_alpha_4", "baseline"]
