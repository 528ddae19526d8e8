"""Steering prediction end to end on a tiny llama: both answers, the vector by reference."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from cf_helpers import CountingModel, steering_cfg, tiny_lm

from afscope.counterfactual import STEERING_FIELDS, build_steering_dataset
from afscope.errors import ArtifactError
from afscope.steer.vectors import SteeringVector


def _vector(lm, path, layers=(1, 2)):
    g = torch.Generator().manual_seed(0)
    vecs = {i: torch.randn(lm.info.d_model, generator=g) for i in layers}
    return SteeringVector(vecs, model=lm.info.name, model_fingerprint=lm.info.fingerprint,
                          source="diffmean").save(path)


def test_steering_dataset_records_both_answers_and_vector_reference(tiny_model_dir, tmp_path):
    lm = tiny_lm(tiny_model_dir)
    vpath = _vector(lm, tmp_path / "v.safetensors")
    cfg = steering_cfg(tiny_model_dir, tmp_path / "run", vpath)
    res = build_steering_dataset(cfg, lm=lm)
    recs = res.train + res.test
    assert len(recs) == 3 * 2                     # scenarios x alphas (one layer)
    sha = hashlib.sha256(vpath.read_bytes()).hexdigest()
    for r in recs:
        assert set(r) == set(STEERING_FIELDS)
        assert r["vector_sha256"] == sha and r["vector_path"] == str(vpath.resolve())
        assert r["layer"] == 1 and r["positions"] == "both"
        assert r["changed"] == (r["behaviour_unsteered"] != r["behaviour_steered"])
        assert not any(isinstance(v, list) for v in r.values())   # never the raw vector
    zero = [r for r in recs if r["alpha"] == 0]
    big = [r for r in recs if r["alpha"] == 50]
    assert len(zero) == len(big) == 3
    assert all(r["steered_response"] == r["unsteered_response"] for r in zero)
    assert all(r["steered_response"] != r["unsteered_response"] for r in big)
    assert not {r["scenario"] for r in res.train} & {r["scenario"] for r in res.test}
    gens = [json.loads(x) for x in (cfg.out / "generations.jsonl").read_text().splitlines()]
    assert len(gens) == 3 * 2                     # unsteered + alpha 50; alpha 0 is reused
    st = res.stats
    assert set(st["changed_rate_by_alpha"]) == {"0.0", "50.0"}
    assert st["changed_rate_by_alpha"]["0.0"] == 0.0


def test_steering_resume_adds_conditions_without_regenerating(tiny_model_dir, tmp_path):
    lm = tiny_lm(tiny_model_dir)
    counter = CountingModel(lm)
    vpath = _vector(lm, tmp_path / "v.safetensors")
    out = tmp_path / "run"
    build_steering_dataset(steering_cfg(tiny_model_dir, out, vpath), lm=lm)
    calls = counter.calls
    build_steering_dataset(steering_cfg(tiny_model_dir, out, vpath), lm=lm)
    assert counter.calls == calls
    res = build_steering_dataset(steering_cfg(tiny_model_dir, out, vpath, layers=[1, 2]), lm=lm)
    gens = [json.loads(x) for x in (out / "generations.jsonl").read_text().splitlines()]
    assert len(gens) == 9 and len({g["id"] for g in gens}) == 9
    assert {r["layer"] for r in res.train + res.test} == {1, 2}


def test_steering_refuses_missing_layer_and_other_model(tiny_model_dir, tmp_path):
    lm = tiny_lm(tiny_model_dir)
    vpath = _vector(lm, tmp_path / "v.safetensors", layers=(1,))
    with pytest.raises(ArtifactError, match="layer 3"):
        build_steering_dataset(steering_cfg(tiny_model_dir, tmp_path / "a", vpath, layers=[3]),
                               lm=lm)
    other = SteeringVector({1: torch.ones(lm.info.d_model)}, model="other",
                           model_fingerprint="f" * 64, source="diffmean").save(tmp_path / "o.st")
    with pytest.raises(ArtifactError, match="allow-other-model"):
        build_steering_dataset(steering_cfg(tiny_model_dir, tmp_path / "b", other), lm=lm)


def _families(lm, tmp_path):
    from afscope.fileio import sha256_file
    from afscope.steer import random_vector

    af = _vector(lm, tmp_path / "af.safetensors")
    g = torch.Generator().manual_seed(5)
    other = SteeringVector({i: torch.randn(lm.info.d_model, generator=g) for i in (1, 2)},
                           model=lm.info.name, model_fingerprint=lm.info.fingerprint,
                           source="refusal").save(tmp_path / "ref.safetensors")
    from afscope.steer import load_vector

    rnd = random_vector(load_vector(af), 1, created_from={"like_sha256": sha256_file(af)}
                        ).save(tmp_path / "rnd.safetensors")
    return af, other, rnd


def test_steering_families_calibrate_per_vector_and_hold_one_family_out(tiny_model_dir,
                                                                        tmp_path):
    lm = tiny_lm(tiny_model_dir)
    af, ref, rnd = _families(lm, tmp_path)
    cfg = steering_cfg(tiny_model_dir, tmp_path / "run", f"af={af},ref={ref},rnd={rnd}",
                       n=6, alphas=[-1.0, 1.0], heldout_vectors=["ref"], calibrate=0.5,
                       calibration_n=2, calibration_scales=[0.5, 2.0], test_fraction=0.34)
    res = build_steering_dataset(cfg, lm=lm)
    cal = res.stats["calibration"]
    # random 'rnd' copies af's norms, so it is not calibrated: it takes af's alphas
    assert cal["matched"] == {"rnd": "af"}
    assert set(cal["keys"]) == {f"{v}:L1:{s}" for v in ("af", "ref") for s in "+-"}
    for k, row in cal["keys"].items():
        assert [t["scale"] for t in row["tried"]] == [0.5, 2.0][:len(row["tried"])]
        norm = cal["residual_norms"]["1"]
        vfile = af if row["vector"] == "af" else ref
        from afscope.steer import load_vector

        vnorm = float(load_vector(vfile).at(1).norm())
        assert row["alpha"] == pytest.approx(row["sign"] * row["scale"] * norm / vnorm)
        assert row["reached"] == (row["changed_rate"] >= 0.5)
    recs = res.train + res.test
    for r in recs:
        assert set(r) == set(STEERING_FIELDS)
        key = f"{'af' if r['vector_name'] == 'rnd' else r['vector_name']}:L1:" \
              f"{'+' if r['alpha_scale'] > 0 else '-'}"
        assert r["alpha"] == pytest.approx(abs(r["alpha_scale"]) * cal["keys"][key]["alpha"])
        assert r["id"].endswith(f"{r['vector_name']}:L1:a{r['alpha_scale']:g}")
    # the held-out family steers test scenarios only; the others steer every scenario
    assert not any(r["heldout_vector"] for r in res.train)
    test_units = {r["scenario"] for r in res.test}
    held = [r for r in res.test if r["vector_name"] == "ref"]
    assert held and {r["scenario"] for r in held} == test_units
    assert all(r["heldout_vector"] for r in held)
    assert {r["vector_source"] for r in recs} == {"diffmean", "refusal", "random"}
    assert set(res.stats["changed_rate_by_vector_name"]) == {"af", "ref", "rnd"}
    assert set(res.stats["changed_rate_by_alpha_scale"]) == {"-1.0", "1.0"}
    # calibration prompts are training scenarios; resuming regenerates nothing
    cal_gens = [json.loads(x) for x in
                (cfg.out / "calibration.generations.jsonl").read_text().splitlines()]
    assert {g["scenario_id"] for g in cal_gens}.isdisjoint({r["request_id"] for r in res.test})
    files = {n: (cfg.out / n).read_bytes() for n in ("generations.jsonl",
                                                     "calibration.generations.jsonl")}
    counter = CountingModel(lm)
    again = build_steering_dataset(cfg, lm=lm)
    assert counter.calls == 1  # the residual-norm forward pass only
    assert again.stats == res.stats
    assert all((cfg.out / n).read_bytes() == b for n, b in files.items())


def test_choose_takes_the_first_scale_reaching_the_target_else_the_best():
    from afscope.counterfactual.calibrate import choose

    rows = [{"scale": s, "alpha": s, "changed_rate": r}
            for s, r in ((0.1, 0.1), (0.2, 0.5), (0.3, 0.7))]
    assert choose(rows, 0.4) == (rows[1], True)
    low = [{"scale": s, "alpha": s, "changed_rate": r} for s, r in ((0.1, 0.2), (0.2, 0.2),
                                                                    (0.3, 0.1))]
    assert choose(low, 0.4) == (low[0], False)


def test_steering_config_refuses_unknown_or_all_heldout_vectors(tmp_path):
    from pydantic import ValidationError

    from afscope.counterfactual import SteeringConfig

    with pytest.raises(ValidationError, match="heldout_vectors"):
        SteeringConfig(vector="a=x.st,b=y.st", heldout_vectors=["c"])
    with pytest.raises(ValidationError, match="every vector is held out"):
        SteeringConfig(vector="a=x.st,b=y.st", heldout_vectors=["a", "b"])
    with pytest.raises(ValidationError, match="duplicate names"):
        SteeringConfig(vector="a=x.st,a=y.st")
    with pytest.raises(ValidationError, match="one process"):
        SteeringConfig(vector="a=x.st", calibrate=0.3, shard="0/2")
    assert list(SteeringConfig(vector=str(tmp_path / "v")).vector_paths()) == ["v"]


def test_the_documented_families_config_parses():
    from pathlib import Path

    import yaml

    from afscope.counterfactual import SteeringConfig

    path = Path(__file__).parents[2] / "configs" / "steering_families.yaml"
    cfg = SteeringConfig(**yaml.safe_load(path.read_text()))
    assert list(cfg.vector_paths()) == ["af", "refusal", "random_af", "random_refusal",
                                        "af_bench"]
    assert cfg.heldout_vectors == ["af_bench"] and cfg.calibrate == 0.4
