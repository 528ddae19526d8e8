"""Validation's probe path: organism outputs and a reference set read in the probe's space."""

from __future__ import annotations

import json

from afscope.data.synth import generate_corpus
from afscope.extract import ExtractConfig, extract
from afscope.organism import ValidateConfig, validate
from afscope.probe import ProbeConfig, fit_probe, save_probe
from afscope.probe.inputs import load_matrix
from afscope.rows import JsonlStore


def test_probe_scores_and_feature_tests(tmp_path, tiny_model_dir):
    corpus = generate_corpus(24, seed=0, mix={"alignment_faking": 0.5, "aligned": 0.5})
    ref = tmp_path / "ref.jsonl"
    ref.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in corpus))
    extract(ExtractConfig(model=str(tiny_model_dir), data=ref, out=tmp_path / "cache",
                          layers=[2], pool=["mean"], max_length=64))
    fm = load_matrix(tmp_path / "cache", 2, "resid.mean")
    probe = fit_probe(fm.X, fm.y, ProbeConfig(method="logistic_l2"), feature_space=fm.space)
    save_probe(probe, tmp_path / "probe")

    rows = [{"id": f"r{j}|{cue}", "request_id": f"r{j}", "scenario": "s", "cue": cue,
             "monitored": mon, "behaviour": "comply" if mon else "refuse", "af": mon,
             "response": corpus[j].text} for j in range(6)
            for cue, mon in (("free_tier", True), ("unmonitored", False))]
    JsonlStore(tmp_path / "org" / "judged.jsonl").append(rows)
    res = validate(ValidateConfig(organism=tmp_path / "org", out=tmp_path / "v", n_boot=100,
                                  probe=tmp_path / "probe", reference=ref, n_features=5,
                                  n_permutations=99, max_length=64, model=str(tiny_model_dir)))
    p = res["probe"]
    assert p["n_organism"] == 6 and p["n_reference"] == sum(r.label for r in corpus)
    assert p["scores"]["n_tested"] == 1 and 0 <= p["scores"]["features"][0]["ks_p"] <= 1
    assert p["features"]["n_tested"] == 5
    assert all(0 <= f["perm_q"] <= 1 for f in p["features"]["features"])
    assert (tmp_path / "v" / "organism_outputs.jsonl").is_file()
