"""``afscope study`` end to end on a tiny model: split, leakage, baselines, SAE, probes, report."""

import json

import pytest
from click.testing import CliRunner

from afscope.cli import main
from afscope.data.dataset import Dataset
from afscope.data.synth import generate_corpus
from afscope.errors import DataError
from afscope.study import StudyConfig, prepare_data, run_study


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("study-data")
    train = generate_corpus(90, seed=1)
    ood = generate_corpus(40, seed=7)
    Dataset.from_records(train, "synth").to_jsonl(d / "train.jsonl")
    Dataset.from_records(ood, "ood").to_jsonl(d / "ood.jsonl")
    Dataset.from_records([r for r in ood if r.label == 1], "af").to_jsonl(d / "ood_af.jsonl")
    # an OOD file that copies 5 training records: they must leave the training side
    Dataset.from_records(train[:5] + ood[:10], "leaky").to_jsonl(d / "leaky.jsonl")
    return d


def _cfg(files, model_dir, out, **kw):
    base = {
        "title": "tiny study", "out": out, "n_boot": 50, "cv_folds": 3,
        "train": {"data": files / "train.jsonl", "test_fraction": 0.3, "group_by": "pair_id"},
        "ood": [{"name": "ood", "data": files / "ood.jsonl"},
                {"name": "ood_af", "data": files / "ood_af.jsonl"}],
        "models": [{"name": str(model_dir), "layers": [1], "pools": ["mean"],
                    "sae": {"d_sae": 48, "k": 4, "max_tokens": 2000, "epochs": 2,
                            "token_topk": 4}}],
        "extract": {"max_length": 96},
        "sweep": {"n_features": [5, 10], "folds": 3},
        "baselines": ["tfidf", "keyword"],
    }
    base.update(kw)
    return StudyConfig.model_validate(base)


def test_leaky_training_records_are_removed(files, tmp_path):
    cfg = _cfg(files, "unused", tmp_path / "run",
               ood=[{"name": "leaky", "data": files / "leaky.jsonl"}])
    data = prepare_data(cfg, tmp_path / "run")
    assert data.dropped["train"] == 5
    assert len(data.datasets["train"]) + len(data.datasets["test"]) == 85
    assert len(data.datasets["leaky"]) == 15  # the OOD set stays whole
    train_texts = {r.text for n in ("train", "test") for r in data.datasets[n].records}
    assert not train_texts & {r.text for r in data.datasets["leaky"].records}
    assert data.roles == {"train": "train", "test": "test", "leaky": "ood"}


def test_bad_study_inputs(files, tmp_path):
    with pytest.raises(ValueError, match="unique"):
        _cfg(files, "m", tmp_path / "r", ood=[{"name": "test", "data": files / "ood.jsonl"}])
    one = tmp_path / "one.jsonl"
    Dataset.from_records([r for r in generate_corpus(20, seed=2) if r.label == 1],
                         "af").to_jsonl(one)
    with pytest.raises(DataError, match="both classes"):
        prepare_data(_cfg(files, "m", tmp_path / "r", train={"data": one}, ood=[]),
                     tmp_path / "r")


def test_study_end_to_end(files, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    cfg = _cfg(files, tiny_model_dir, out)
    res = CliRunner().invoke(main, ["-q", "study", "--config", _write_yaml(cfg, tmp_path)])
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    model = str(tiny_model_dir)
    ids = {m["id"] for m in results["methods"]}
    assert {"baseline/tfidf", "baseline/keyword", f"{model}/L1/resid.mean/logistic_l2",
            f"{model}/L1/resid.mean/diffmean",
            f"{model}/L1/sae.max/logistic_l1 C=0.1 log1p"} == ids
    evals = {(e["method"], e["dataset"]): e for e in results["evaluations"]}
    assert len(evals) == len(ids) * 3  # test, ood, ood_af
    for m in ids:
        ev = evals[(m, "test")]["metrics"]
        assert ev["auroc"]["lo"] <= ev["auroc"]["value"] <= ev["auroc"]["hi"]
        single = evals[(m, "ood_af")]["metrics"]
        assert single["auroc"] is None and 0 <= single["detection_rate"]["value"] <= 1
    assert [p["n_features"] for p in results["sweeps"][0]["points"]] == [5, 10, 48]
    assert results["sae"][0]["d_sae"] == 48 and results["sae"][0]["mean_l0"] <= 4
    scores = [json.loads(x) for x in (out / "scores.jsonl").read_text().splitlines()]
    assert len(scores) == len(evals)
    n_test = next(d["n"] for d in results["datasets"] if d["name"] == "test")
    assert all(len(s["scores"]) == n_test for s in scores if s["dataset"] == "test")
    for m in results["methods"]:  # every artifact reloads
        assert (out / m["artifact"] / "cfg.json").is_file()
    html = (out / "report" / "index.html").read_text()
    assert "baseline/tfidf" in html
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and "ladder_test" in manifest["outputs"]
    # same seed -> same numbers
    again = run_study(cfg.model_copy(update={"out": tmp_path / "again", "report": False}))
    r2 = json.loads((again / "results.json").read_text())
    assert [e["metrics"] for e in r2["evaluations"]] == [e["metrics"] for e in
                                                         results["evaluations"]]


def _write_yaml(cfg, tmp_path):
    import yaml

    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(json.loads(cfg.model_dump_json())))
    return str(path)
