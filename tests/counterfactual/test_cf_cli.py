"""``afscope counterfactual context|steering`` through click (the group, before registration)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from afscope.cli.counterfactual import command


def test_cli_context_writes_files_and_prints_stats(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(command, ["context", "--model", str(tiny_model_dir), "--out", str(out),
                                       "--n", "3", "--max-tokens", "4", "--test-fraction", "0.34"])
    assert res.exit_code == 0, res.output
    stats = json.loads((out / "stats.json").read_text())
    assert stats["n_records"] == 3
    assert "3 records" in res.output and "monitored -> unmonitored" in res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "counterfactual context" and manifest["config"]["n"] == 3


def test_cli_steering_parses_lists(tiny_model_dir, tmp_path):
    import torch

    from afscope.models import load_model
    from afscope.steer.vectors import SteeringVector

    info = load_model(str(tiny_model_dir)).info
    vpath = SteeringVector({2: torch.ones(info.d_model)}, model=info.name,
                           model_fingerprint=info.fingerprint, source="diffmean").save(
        tmp_path / "v.safetensors")
    out = tmp_path / "run"
    res = CliRunner().invoke(command, ["steering", "--model", str(tiny_model_dir), "--out",
                                       str(out), "--vector", str(vpath), "--alphas", "0,4",
                                       "--n", "2", "--max-tokens", "4", "--positions", "last"])
    assert res.exit_code == 0, res.output
    recs = json.loads((out / "train.json").read_text()) + json.loads(
        (out / "test.json").read_text())
    assert sorted((r["layer"], r["alpha"]) for r in recs) == [(2, 0.0), (2, 0.0), (2, 4.0),
                                                             (2, 4.0)]
    assert {r["positions"] for r in recs} == {"last"}
    assert "by_alpha" in res.output


def test_cli_steering_families_print_calibration_and_rate_per_vector(tiny_model_dir, tmp_path):
    import torch

    from afscope.models import load_model
    from afscope.steer.vectors import SteeringVector

    info = load_model(str(tiny_model_dir)).info
    paths = []
    for i, src in enumerate(("diffmean", "refusal")):
        g = torch.Generator().manual_seed(i)
        paths.append(SteeringVector({2: torch.randn(info.d_model, generator=g)}, model=info.name,
                                    model_fingerprint=info.fingerprint, source=src).save(
            tmp_path / f"{src}.safetensors"))
    out = tmp_path / "run"
    res = CliRunner().invoke(command, [
        "steering", "--model", str(tiny_model_dir), "--out", str(out),
        "--vector", f"af={paths[0]},ref={paths[1]}", "--alphas=-1,1", "--calibrate", "0.5",
        "--calibration-n", "2", "--calibration-scales", "1,3", "--n", "4", "--max-tokens", "4"])
    assert res.exit_code == 0, res.output
    assert "by_vector_name: af " in res.output and "by_alpha_scale: " in res.output
    assert "calibrated af:L2:+: alpha " in res.output and "calibrated ref:L2:-: alpha" in res.output
