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
