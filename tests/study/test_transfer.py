"""Transfer studies: sources, rows, thresholds, selection, the matrix end to end on a tiny model."""

import json

import numpy as np
import pytest

from afscope.data.dataset import Dataset
from afscope.data.synth import generate_corpus
from afscope.errors import DataError
from afscope.study import StudyConfig
from afscope.study.transfer import (
    Method,
    pool_tokens,
    prepare_sources,
    run_transfer,
    select_methods,
    threshold_at_fpr,
    training_sets,
    verdict,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("transfer-data")
    a, b, c = generate_corpus(60, seed=1), generate_corpus(50, seed=2), generate_corpus(40, seed=3)
    Dataset.from_records(a, "a").to_jsonl(d / "a.jsonl")
    Dataset.from_records(b, "b").to_jsonl(d / "b.jsonl")
    Dataset.from_records([r for r in c if r.label == 1], "pos").to_jsonl(d / "pos.jsonl")
    # an eval set that copies 4 records of a: they must leave a's training side
    Dataset.from_records(a[:4] + c[:16], "ev").to_jsonl(d / "ev.jsonl")
    return d


def _cfg(files, out, model=None, **kw):
    base = {
        "title": "tiny transfer", "out": out, "n_boot": 40, "report": False,
        "sources": [
            {"name": "a", "data": files / "a.jsonl", "group_by": "pair_id"},
            {"name": "b", "data": files / "b.jsonl", "group_by": "pair_id"},
            {"name": "syn", "synth": {"n": 50, "seed": 9}, "group_by": "pair_id"},
            {"name": "pairs", "synth": {"n": 40, "seed": 5, "pairs_only": True},
             "role": "control", "group_by": "pair_id"},
            {"name": "ev", "data": files / "ev.jsonl", "role": "eval"},
            {"name": "pos", "data": files / "pos.jsonl", "role": "eval"},
        ],
        "models": [] if model is None else [{
            "name": str(model), "layers": [1, 2], "pools": ["mean", "last"],
            "sae": {"d_sae": 48, "k": 4, "max_tokens": 2000, "epochs": 2, "token_topk": 4,
                    "layers": [2]}}],
        "extract": {"max_length": 96},
        "probes": [{"method": "logistic_l2"}, {"method": "ridge"}],
        "baselines": ["tfidf", "tfidf_char", "keyword"],
        "transfer": {"invariant_features": 8, "max_tokens": 3000},
    }
    base.update(kw)
    return StudyConfig.model_validate(base)


def test_config_rules(files, tmp_path):
    with pytest.raises(ValueError, match="either 'train'"):
        StudyConfig.model_validate({"models": []})
    with pytest.raises(ValueError, match="exactly one of 'data' and 'synth'"):
        _cfg(files, tmp_path, sources=[{"name": "a", "data": files / "a.jsonl",
                                        "synth": {"n": 5}}])
    with pytest.raises(ValueError, match="role: train"):
        _cfg(files, tmp_path, sources=[{"name": "e", "data": files / "ev.jsonl",
                                        "role": "eval"}])
    with pytest.raises(ValueError, match="unique"):
        _cfg(files, tmp_path, sources=[{"name": "a", "data": files / "a.jsonl"},
                                       {"name": "a", "data": files / "b.jsonl"}])
    with pytest.raises(ValueError, match="token_pools"):
        _cfg(files, tmp_path, transfer={"token_pools": ["mean"]})


def test_sources_rows_and_leakage(files, tmp_path):
    cfg = _cfg(files, tmp_path)
    data = prepare_sources(cfg, tmp_path)
    assert data.dropped["a"] == 4  # copies of eval records leave the training source
    assert len(data.test["ev"]) == 20 and len(data.test["pos"]) == 12  # eval sets stay whole
    assert not data.two_class("pos") and data.two_class("ev")
    assert all(r.extra.get("pair_id") for r in data.fit["pairs"].records)
    fit_texts = {r.text for ds in data.fit.values() for r in ds.records}
    assert not fit_texts & {r.text for r in data.test["ev"].records}
    rows = training_sets(cfg, data)
    assert [r["id"] for r in rows] == ["a", "b", "syn", "pairs", "b+syn", "a+syn", "a+b",
                                       "a+b+syn"]
    assert [r["held_out"] for r in rows if r["kind"] == "loso"] == ["a", "b", "syn"]
    two = _cfg(files, tmp_path, sources=cfg.model_dump()["sources"][:2])
    rows2 = training_sets(two, prepare_sources(two, tmp_path / "two"))
    # with two sources, leaving one out is the other alone: no duplicate rows
    assert [(r["id"], r["held_out"]) for r in rows2] == [("a", "b"), ("b", "a"), ("a+b", None)]
    one = tmp_path / "one.jsonl"
    Dataset.from_records([r for r in generate_corpus(20, seed=2) if r.label == 1],
                         "af").to_jsonl(one)
    with pytest.raises(DataError, match="role: eval"):
        prepare_sources(_cfg(files, tmp_path, sources=[{"name": "x", "data": one}]), tmp_path)


def test_threshold_and_token_pooling():
    neg = np.arange(100) / 100.0  # 0.00 .. 0.99
    t = threshold_at_fpr(neg, 0.05)
    assert np.mean(neg >= t) == 0.05 and np.mean(neg >= 0.94) > 0.05
    assert np.mean(np.full(10, 0.3) >= threshold_at_fpr(np.full(10, 0.3), 0.05)) == 0.0
    p = np.array([0.1, 0.9, 0.5, 0.2, 0.4])
    rows = np.array([0, 0, 0, 2, 2])
    assert pool_tokens(p, rows, 3, "max", 2).tolist() == [0.9, 0.0, 0.4]
    assert np.allclose(pool_tokens(p, rows, 3, "topk", 2), [0.7, 0.0, 0.3])


def test_attention_fitter_samples_whole_texts(monkeypatch):
    from types import SimpleNamespace

    import scipy.sparse as sp

    from afscope.probe.attention import AttentionPoolConfig
    from afscope.study import transfer

    seen = {}

    class Spy(transfer.AttentionPoolProbe):
        def fit(self, X, rows, y):
            seen.update(X=X, rows=rows, y=y)
            return super().fit(X, rows, y)

    monkeypatch.setattr(transfer, "AttentionPoolProbe", Spy)
    rng = np.random.default_rng(0)
    tokens, ys, counts, gid = {}, {}, [], 0
    for s, n in (("a", 30), ("b", 20)):
        lens = rng.integers(0, 6, n)  # some texts have no tokens
        rows = np.repeat(np.arange(n), lens)
        X = rng.random((rows.size, 6)) * (rng.random((rows.size, 6)) < 0.4)
        X[:, 0] = gid + 1 + rows  # traces each token to its text
        tokens[f"{s}.fit"] = tokens[f"{s}.test"] = (sp.csr_matrix(X), rows)
        ys[f"{s}.fit"] = ys[f"{s}.test"] = np.arange(n) % 2
        counts += lens.tolist()
        gid += n
    fr = SimpleNamespace(y=ys)
    y_all = np.concatenate([ys["a.fit"], ys["b.fit"]])
    cfg = AttentionPoolConfig(epochs=3)
    scorer = transfer.attention_fitter(fr, tokens, cfg, max_tokens=40, seed=0)(("a", "b"))
    X, rows, y = seen["X"], seen["rows"], seen["y"]
    assert 30 < rows.size <= 40 and np.all(np.diff(rows) >= 0)
    src = X[:, 0].toarray().ravel().astype(int) - 1  # original text of each token
    for j in np.unique(rows):  # every kept text keeps all its tokens and its label
        g = set(src[rows == j].tolist())
        assert len(g) == 1 and (rows == j).sum() == counts[g.pop()]
        assert y[j] == y_all[src[rows == j][0]]
    assert scorer("a").shape == (30,) and scorer("b").shape == (20,)
    transfer.attention_fitter(fr, tokens, cfg, max_tokens=10_000, seed=0)(("a", "b"))
    assert seen["y"].size == 50 and seen["rows"].size == sum(counts)  # under the cap: all


def test_verdict_rule():
    assert verdict({"value": 0.9, "lo": 0.85, "hi": 0.95}, {"value": 0.8}) == "beats"
    assert verdict({"value": 0.9, "lo": 0.75, "hi": 0.95}, {"value": 0.8}) == \
        "above (CI overlaps)"
    assert verdict({"value": 0.7, "lo": 0.6, "hi": 0.75}, {"value": 0.8}) == "loses"
    assert verdict({"value": 0.7, "lo": 0.6, "hi": 0.85}, {"value": 0.8}) == \
        "below (CI overlaps)"


def _cells(table):
    """{(method, row, test): auroc} -> the cell list select_methods reads."""
    return [{"method": m, "row": r, "test": t, "false_positive_rate": None,
             "auroc": {"value": v, "lo": v - 0.05, "hi": v + 0.05}}
            for (m, r, t), v in table.items()]


def test_selection_uses_only_train_sources(files, tmp_path):
    cfg = _cfg(files, tmp_path, sources=[s for s in _cfg(files, tmp_path).model_dump()["sources"]
                                         if s["name"] in ("a", "b", "syn", "ev")])
    data = prepare_sources(cfg, tmp_path)
    rows = training_sets(cfg, data)
    fit = lambda s: None  # noqa: E731 - unused by selection
    methods = [Method("baseline/tfidf", "baseline", "tfidf", fit),
               Method("m/p", "activation", "x", fit, model="m"),
               Method("m/q", "activation", "x", fit, model="m")]
    table = {}
    for m, (loso, ev) in {"m/p": (0.9, 0.6), "m/q": (0.7, 0.95),
                          "baseline/tfidf": (0.8, 0.8)}.items():
        for s in ("a", "b", "syn"):
            others = "+".join(sorted({"a", "b", "syn"} - {s}))
            table[(m, others, s)] = loso
            table[(m, s, s)] = 1.0
            for o in {"a", "b", "syn"} - {s}:  # single-source rows: nested selection reads them
                table[(m, s, o)] = loso
        table[(m, "a+b+syn", "ev")] = ev
    sel = select_methods(_cells(table), methods, rows, data)
    # m/p wins on training sources although m/q is better on the eval set: no peeking
    assert sel["recommended"] == {"text baselines": "baseline/tfidf", "m": "m/p"}
    assert sel["scores"]["m/p"] == pytest.approx(0.9, abs=1e-5)
    ev = next(c for c in sel["comparisons"] if c["test"] == "ev")
    assert ev["recommended"]["m"]["method"] == "m/p" and ev["best_method"]["method"] == "m/q"
    assert ev["recommended"]["m"]["verdict"] == "loses"
    held = next(c for c in sel["comparisons"] if c["test"] == "a")
    assert held["row"] == "b+syn" and held["recommended"]["m"]["method"] == "m/p"
    assert held["recommended"]["m"]["verdict"] == "beats"


def test_transfer_end_to_end(files, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    cfg = _cfg(files, out, model=tiny_model_dir, report=True)
    run_transfer(cfg)
    doc = json.loads((out / "transfer.json").read_text())
    rows = [r["id"] for r in doc["rows"]]
    ids = [m["id"] for m in doc["methods"]]
    model = str(tiny_model_dir)
    fam = {m["family"] for m in doc["methods"]}
    assert fam == {"baseline", "activation", "multilayer", "sae", "invariant", "token"}
    assert f"{model}/L2/resid.last/ridge" in ids and "baseline/tfidf_char" in ids
    token = [i for i in ids if "/sae.tokens/" in i]  # max, top-k mean, learned attention
    att = f"{model}/L2/sae.tokens/attention"
    assert len(token) == 3 and att in token
    att_cells = [c for c in doc["cells"] if c["method"] == att]
    assert len(att_cells) == len(rows) * 6
    assert all(c["auroc"] is not None for c in att_cells if c["test"] != "pos")
    assert len(doc["cells"]) == len(ids) * len(rows) * 6  # every method x row x source
    for c in doc["cells"]:
        if c["test"] == "pos":  # single class: detection rate at the row's threshold
            assert c["auroc"] is None and 0 <= c["detection_rate"]["value"] <= 1
        else:
            a = c["auroc"]
            assert a["lo"] <= a["value"] <= a["hi"]
        assert c["threshold_fpr"] <= 0.05  # on the row's own held-out negatives
    sel = doc["selection"]
    assert set(sel["recommended"]) == {"text baselines", model}
    assert sel["recommended"][model] in ids
    assert {c["test"] for c in sel["comparisons"]} == {"a", "b", "syn", "ev", "pos"}
    html = (out / "report" / "index.html").read_text()
    assert "Recommended" in html and "transfer_" in html
    assert (out / "manifest.json").is_file()
    # per-source latent selections compared (issue 14 §2): one entry per SAE layer x statistic
    fs = json.loads((out / "feature_sets.json").read_text())
    assert fs["kind"] == "afscope_feature_sets" and fs["n"] == 20
    assert [s["name"] for s in fs["sources"] if s["selects"]] == ["a", "b", "syn", "pairs"]
    (e,) = fs["entries"]
    assert (e["model"], e["layer"], e["stat"]) == (model, 2, "max")
    assert set(e["source_sets"]) == {"a", "b", "syn", "pairs"}
    assert all(len(v) == 20 for v in e["source_sets"].values())
    assert set(e["invariant_sets"]) == {"pooled", "worst", "intersection"}
    assert len(e["jaccard"]["matrix"]) == 7 and e["jaccard"]["matrix"][0][0] == 1.0
    assert 0 <= e["mean_jaccard"] <= 1 and "on average (Jaccard)" in e["verdict"]
    lat = e["latents"][0]
    assert set(lat["auroc"]) == {"a", "b", "syn", "pairs", "ev", "pos"}
    assert lat["auroc"]["pos"] is None and set(lat["fires_on"]) == {"a", "b", "syn", "pairs"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["outputs"]["feature_sets"] == str(out / "feature_sets.json")
    page = (out / "report" / "transfer.html").read_text()
    assert 'id="feature-sets"' in page and "feature_sets_00.png" in page


def test_cells_threshold_from_training_side(files, tmp_path):
    from afscope.study.transfer import _Frame, evaluate_cells

    cfg = _cfg(files, tmp_path)
    data = prepare_sources(cfg, tmp_path)
    fr = _Frame(data)

    def fit(sources):
        def score(test):
            cats = fr.cats[f"{test}.test"]
            return np.array([0.9 if c == "alignment_faking" else 0.6 if "hard" in c else 0.1
                             for c in cats])
        return score

    rows = training_sets(cfg, data)
    cells = evaluate_cells(Method("fake", "activation", "x", fit), rows, fr, 0.05, 30, 0)
    assert len(cells) == len(rows) * len(data.test)
    for c in cells:
        # hard negatives are > 5% of every training side's negatives: the threshold sits just
        # above them, so positives are all caught and no hard negative is flagged
        assert c["threshold"] == pytest.approx(0.6) and c["threshold"] > 0.6
        assert c["detection_rate"]["value"] == 1.0
        assert all(v == 0.0 for v in c["hard_negative"].values())
        if c["test"] != "pos":
            assert c["auroc"]["value"] == 1.0 and c["false_positive_rate"]["value"] == 0.0
    assert all(c["threshold_fpr"] == 0.0 for c in cells)
