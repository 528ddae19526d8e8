"""Per-source SAE latent selections, their comparison, fires-on tokens, LLM descriptions and the
report section, on matrices where it is known which latent is selective in which source."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from scripted_llm import ScriptedBackend

from afscope.data.dataset import Dataset
from afscope.data.records import Record
from afscope.extract.store import TokenTopK
from afscope.features.tokens import TokenNames
from afscope.study import StudyConfig
from afscope.study.feature_sets import (
    FEATURE_SETS_FILE,
    compare_sets,
    jaccard,
    model_feature_sets,
    source_profiles,
    token_descriptions,
    write_feature_sets,
)
from afscope.study.transfer import TransferData, invariant_select

D = 10  # latents
N = 40  # records per source, half AF


def _y() -> np.ndarray:
    return np.tile([0, 1], N // 2)


def _source(perfect: dict[int, int], half: tuple[int, ...] = ()) -> sp.csr_matrix:
    """``(N, D)``: latent f of ``perfect`` fires on every AF record (+1) or every other record
    (-1), so its AUROC is 1 or 0; a latent of ``half`` fires on half the AF records (AUROC 0.75);
    every other latent is dead (AUROC 0.5)."""
    y = _y()
    X = np.zeros((N, D), np.float32)
    for f, sign in perfect.items():
        X[:, f] = y if sign > 0 else 1 - y
    for f in half:
        X[np.flatnonzero(y)[::2], f] = 1.0
    return sp.csr_matrix(X)


# a: 0, 1, 2 perfect; b: 0, 1, 3 perfect, 2 half; c: 0, 4 perfect, 5 perfect the other way,
# 1 half
MATS = {"a": _source({0: 1, 1: 1, 2: 1}), "b": _source({0: 1, 1: 1, 3: 1}, half=(2,)),
        "c": _source({0: 1, 4: 1, 5: -1}, half=(1,))}


def _xy():
    X = {f"{s}.fit": m for s, m in MATS.items()}
    y = {f"{s}.fit": _y() for s in MATS}
    X["ev.test"], y["ev.test"] = _source({0: 1, 2: -1}), _y()  # two-class eval set
    X["pos.test"], y["pos.test"] = _source({}), np.ones(N, np.int64)  # single-class eval set
    return X, y


def test_jaccard():
    assert jaccard([0, 1, 2], [0, 1, 3]) == 0.5 and jaccard([], []) is None
    assert jaccard([1], []) == 0.0


def test_sets_jaccard_and_intersection():
    X, y = _xy()
    r = compare_sets(X, y, ["a", "b", "c"], ["a", "b", "c"], 3, eval_sources=["ev", "pos"])
    assert r["source_sets"] == {"a": [0, 1, 2], "b": [0, 1, 3], "c": [0, 4, 5]}
    # worst source: 0 (0.5 everywhere), 1 (0.25 in c), then the lowest index of the rest
    assert r["invariant_sets"] == {"pooled": [0, 1, 2], "worst": [0, 1, 2],
                                   "intersection": [0, 1]}
    j = dict(zip(r["jaccard"]["sets"], r["jaccard"]["matrix"]))
    assert r["jaccard"]["sets"] == ["a", "b", "c", "pooled", "worst", "intersection"]
    assert j["a"][1] == pytest.approx(0.5) and j["a"][2] == pytest.approx(0.2)
    assert j["b"][2] == pytest.approx(0.2) and j["a"][5] == pytest.approx(2 / 3)
    assert all(j[k][i] == 1.0 for i, k in enumerate(r["jaccard"]["sets"]))
    assert r["mean_jaccard"] == pytest.approx(0.3)
    assert r["selective_elsewhere"] == {
        "a": {"n_top": 3, "n_selective": 2, "latents": [0, 1]},
        "b": {"n_top": 3, "n_selective": 2, "latents": [0, 1]},
        "c": {"n_top": 3, "n_selective": 1, "latents": [0]}}
    assert r["selective_everywhere"] == [0, 1]
    lat = {x["latent"]: x for x in r["latents"]}
    assert [x["latent"] for x in r["latents"]] == [0, 1, 2, 3, 4, 5]  # widest first
    assert lat[0]["sources"] == ["a", "b", "c"] and lat[0]["invariant"] == list(
        ("pooled", "worst", "intersection"))
    assert lat[1]["auroc"] == {"a": 1.0, "b": 1.0, "c": 0.75, "ev": 0.5, "pos": None}
    assert lat[2]["auroc"]["ev"] == 0.0 and lat[5]["sign"] == -1
    assert lat[5]["selective_in"] == ["c"] and lat[1]["selective_in"] == ["a", "b", "c"]
    assert "0.30 on average" in r["verdict"] and "2 of the 6" in r["verdict"]
    assert "keeps 2 of 3" in r["verdict"]


def test_invariant_sets_pool_train_sources_only():
    X, y = _xy()
    r = compare_sets(X, y, ["a", "b", "c"], ["a", "b"], 3)
    assert r["source_sets"]["c"] == [0, 4, 5]  # a control source still gets its own set
    # latent 2 is selective in a and b; only c (not pooled here) would drop it
    assert r["invariant_sets"]["intersection"] == [0, 1, 2]
    assert r["invariant_sets"]["worst"] == [0, 1, 2]
    # a control is compared with the train sources, never required of them
    assert r["selective_everywhere"] == [0, 1, 2]
    assert {s: v["latents"] for s, v in r["selective_elsewhere"].items()} == {
        "a": [0, 1, 2], "b": [0, 1], "c": [0]}
    assert "in every one of the 2 train sources" in r["verdict"]
    one = compare_sets(X, y, ["a"], ["a"], 3)
    assert one["mean_jaccard"] is None and "nothing to compare" in one["verdict"]


def test_empty_intersection_and_dead_latents():
    eff = np.array([[0.5, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0]])
    # nothing is in both tops with one sign: the probe falls back to the best worst-source
    # latent, the comparison reports none; a dead latent (no sign) never counts
    assert invariant_select(eff, 1, "intersection", fallback=False).size == 0
    assert invariant_select(eff, 1, "intersection").tolist() == [0]
    assert invariant_select(eff, 2, "intersection", fallback=False).tolist() == []


class Tok:
    """A tokenizer stand-in with a fixed vocabulary (decode only)."""

    vocab = ["<s>", " The", "the", " cat", " dog", "\n", " training", "x"]
    all_special_ids = [0]
    added_tokens_decoder: dict = {}

    def decode(self, ids):
        return "".join(self.vocab[i] for i in ids)


def _topk(tokens, latents, values, rows=None):
    m = len(tokens)
    rows = np.zeros(m, np.int64) if rows is None else np.asarray(rows, np.int64)
    return TokenTopK(row=rows, pos=np.arange(m, dtype=np.int32),
                     token_id=np.asarray(tokens, np.int32),
                     indices=np.asarray(latents, np.int32),
                     values=np.asarray(values, np.float32))


def test_fires_on_per_source():
    # source a: latent 0 on ' cat' (5 of 6), latent 1 on 'the' (both spellings);
    # source b: latent 0 on ' training'; latent 1 on six different tokens once (spread)
    a = _topk([3, 3, 3, 3, 3, 4, 1, 2, 1, 2, 2],
              [[0, 9]] * 6 + [[1, 9]] * 5, [[5, 0]] * 11)
    b = _topk([6, 6, 6, 6, 6, 6, 3, 4, 5, 7, 1],
              [[0, 9]] * 5 + [[1, 9]] * 6, [[2, 0]] * 11)
    out = token_descriptions(source_profiles({"a": a, "b": b, "c": None}, D, TokenNames(Tok())),
                             [0, 1, 2])
    assert out[0]["a"]["text"] == "Fires on: cat" and out[0]["a"]["n_active"] == 6
    assert out[0]["a"]["coverage"] == pytest.approx(5 / 6)
    assert out[0]["b"]["tokens"] == ["training"]
    assert out[1]["a"]["text"] == "Fires on: the" and out[1]["b"] is None
    assert out[2] == {"a": None, "b": None, "c": None}


class FakeCache:
    """The part of an ActivationCache the feature-set comparison reads."""

    def __init__(self, X, tt=None):
        self.X, self.tt = X, tt
        self.sae_layers = [3]

    def sae_width(self, layer):
        return self.X.shape[1]

    def sae_features(self, layer, stat):
        return self.X if stat == "max" else self.X * 0.5

    def token_topk(self, layer):
        return self.tt


def _run(tmp_path, **transfer):
    src = [{"name": s, "synth": {"n": 10}} for s in ("a", "b")]
    src += [{"name": "c", "synth": {"n": 10}, "role": "control"},
            {"name": "ev", "synth": {"n": 10}, "role": "eval"}]
    cfg = StudyConfig.model_validate({"sources": src, "models": [], "out": tmp_path,
                                      "transfer": {"feature_sets": 3, **transfer}})
    specs = {s.name: s for s in cfg.sources}
    y = _y()

    def ds(name):
        return Dataset.from_records([Record(f"{name} trace {i}: " + ("scheming " if v else "plain ")
                                            * 3, "alignment_faking" if v else "aligned",
                                            int(v), f"{name}-{i}")
                                     for i, v in enumerate(y)], name)

    data = TransferData(specs, {s: ds(s) for s in ("a", "b", "c")},
                        {s: ds(s) for s in specs}, {}, {})
    X, _ = _xy()
    tt = _topk([3] * 6, [[0, 9]] * 6, [[5, 0]] * 6)
    caches = {"a.fit": FakeCache(X["a.fit"], tt), "b.fit": FakeCache(X["b.fit"]),
              "c.fit": FakeCache(X["c.fit"]), "ev.test": FakeCache(X["ev.test"])}
    caches.update({f"{s}.test": FakeCache(X["ev.test"]) for s in ("a", "b", "c")})
    spec = type("Spec", (), {"name": "tiny", "sae": type("S", (), {"stats": ["max", "mean"]})})
    return cfg, data, spec, caches


def test_model_feature_sets_and_file(tmp_path):
    cfg, data, spec, caches = _run(tmp_path)
    entries = model_feature_sets(cfg, data, spec, caches, Tok(), tmp_path)
    assert [(e["layer"], e["stat"]) for e in entries] == [(3, "max"), (3, "mean")]
    e = entries[0]
    # a and b are train sources, c a control: its own set, but the invariant sets skip it
    assert e["source_sets"] == {"a": [0, 1, 2], "b": [0, 1, 3], "c": [0, 4, 5]}
    assert e["invariant_sets"]["intersection"] == [0, 1, 2] and e["n_train_sources"] == 2
    lat = {r["latent"]: r for r in e["latents"]}
    assert lat[0]["fires_on"]["a"]["text"] == "Fires on: cat" and lat[0]["fires_on"]["b"] is None
    assert lat[0]["auroc"]["ev"] == 1.0 and "description" not in lat[0]
    path = write_feature_sets(tmp_path, cfg, data, entries)
    doc = json.loads(path.read_text())
    assert path.name == FEATURE_SETS_FILE and doc["kind"] == "afscope_feature_sets"
    assert doc["n"] == 3 and [s["name"] for s in doc["sources"] if s["selects"]] == ["a", "b", "c"]
    assert [s["name"] for s in doc["sources"] if s["train"]] == ["a", "b"]


def test_llm_descriptions_with_scripted_backend(tmp_path):
    cfg, data, spec, caches = _run(tmp_path, feature_sets_llm=True)
    backend = ScriptedBackend(lambda user: "DESCRIPTION: zorblax quux pattern")
    entries = model_feature_sets(cfg, data, spec, {**caches}, Tok(), tmp_path, backend)
    e = entries[0]
    lat = {r["latent"]: r for r in e["latents"]}
    # described on the sources that selected it; a and b (train) also describe the invariant
    # sets {0, 1, 2}: a {0, 1, 2}, b {0, 1, 2, 3}, c {0, 4, 5}, per statistic
    assert len(backend.prompts) == 2 * (3 + 4 + 3)
    assert lat[0]["description"] == {"a": "zorblax quux pattern", "b": "zorblax quux pattern",
                                     "c": "zorblax quux pattern"}
    assert lat[2]["description"] == {"a": "zorblax quux pattern", "b": "zorblax quux pattern"}
    assert set(lat[4]["description"]) == {"c"}
    store = tmp_path / "feature_sets" / "tiny" / "L3.max" / "a" / "descriptions.jsonl"
    assert store.exists()
    # resumed: stored rows are reused, nothing is asked again
    again = ScriptedBackend(lambda user: "DESCRIPTION: other")
    model_feature_sets(cfg, data, spec, caches, Tok(), tmp_path, again)
    assert again.prompts == []


def test_report_section(tmp_path):
    from afscope.report import write_report
    from afscope.report.transfer import TRANSFER_FILE, TRANSFER_PAGE

    cfg, data, spec, caches = _run(tmp_path / "x")
    run = tmp_path / "run"
    run.mkdir()
    (run / TRANSFER_FILE).write_text(json.dumps({
        "kind": "afscope_transfer", "format_version": 1, "title": "tiny transfer", "fpr": 0.05,
        "n_boot": 10, "verdicts": [], "sources": [
            {"name": s, "role": "train", "path": "x", "n_fit": 8, "n_test": 4, "n_pos_test": 2,
             "two_class": True, "counts": {}, "dropped": 0} for s in ("a", "b")],
        "rows": [{"id": "a+b", "kind": "all", "sources": ["a", "b"], "held_out": None}],
        "methods": [{"id": "baseline/tfidf", "family": "baseline"}],
        "cells": [{"method": "baseline/tfidf", "row": "a+b", "test": "a", "in_row": True,
                   "auroc": {"value": 0.9, "lo": 0.8, "hi": 1.0}, "detection_rate": None,
                   "hard_negative": {}}],
        "selection": {"criterion": "mean", "held_out": [], "scores": {}, "recommended": {},
                      "comparisons": []}}))
    index = write_report(run)  # an older run: no feature_sets.json, no section, no crash
    page = (index.parent / TRANSFER_PAGE).read_text(encoding="utf-8")
    assert 'id="feature-sets"' not in page
    entries = model_feature_sets(cfg, data, spec, caches, Tok(), tmp_path)
    write_feature_sets(run, cfg, data, entries)
    index = write_report(run)
    page = (index.parent / TRANSFER_PAGE).read_text(encoding="utf-8")
    assert 'id="feature-sets"' in page and "tiny L3 sae.max" in page
    assert "overlap by 0.30 on average (Jaccard)" in page
    assert "<b>a</b>: cat" in page  # fires-on tokens of the set's own source
    assert '<td class="num">0.50</td>' in page  # Jaccard of a and b
    assert '<td class="num sel">1.00</td>' in page and '<td class="num">2 / 3</td>' in page
    assert (index.parent / "feature_sets_00.png").exists()


def test_llm_flag_builds_the_configured_backend(tmp_path, monkeypatch):
    import afscope.llm

    seen = []

    def fake(cfg):
        seen.append(cfg)
        return ScriptedBackend(lambda user: "DESCRIPTION: zorblax quux pattern")

    monkeypatch.setattr(afscope.llm, "make_backend", fake)
    cfg, data, spec, caches = _run(tmp_path)  # flag off: no backend, no descriptions
    assert "description" not in model_feature_sets(cfg, data, spec, caches, Tok(),
                                                   tmp_path)[0]["latents"][0]
    cfg, data, spec, caches = _run(tmp_path, feature_sets_llm={"backend": "openai",
                                                               "model": "m"})
    e = model_feature_sets(cfg, data, spec, caches, Tok(), tmp_path)[0]
    assert [(c.backend, c.model, c.on_error) for c in seen] == [("openai", "m", "record")]
    assert e["latents"][0]["description"]["a"] == "zorblax quux pattern"
