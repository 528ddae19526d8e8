"""``afscope probe train|eval|sweep`` on real caches of a tiny model (resid and SAE features)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from afscope.cli import main
from afscope.data.dataset import Dataset
from afscope.data.synth import generate_corpus
from afscope.extract import ExtractConfig
from afscope.probe import load_probe
from afscope.sae import extract_with_sae, save_sae


@pytest.fixture(scope="module")
def caches(tmp_path_factory, tiny_model_dir):
    import torch

    from afscope.sae import SAE, SAEConfig

    root = tmp_path_factory.mktemp("probe-cli")
    sae = SAE(SAEConfig(architecture="relu", d_in=32, d_sae=40, hook_layer=1))
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
    sae_dir = save_sae(sae, root / "sae")
    sets = {"train": generate_corpus(60, seed=1), "test": generate_corpus(30, seed=2),
            "af_only": [r for r in generate_corpus(30, seed=3) if r.label == 1]}
    out = {}
    for name, records in sets.items():
        path = Dataset.from_records(records, name).to_jsonl(root / f"{name}.jsonl")
        out[name] = root / f"cache-{name}"
        extract_with_sae(ExtractConfig(model=str(tiny_model_dir), data=path, out=out[name],
                                       layers=[1, 2], pool=["mean"], max_length=64,
                                       sae=[sae_dir]))
    return out


def run(*args):
    res = CliRunner().invoke(main, ["-q", "probe", *map(str, args)])
    return res


@pytest.mark.parametrize("features,method", [("resid.mean", "logistic_l2"),
                                             ("sae.max", "logistic_l1")])
def test_train_eval_round_trip(caches, tmp_path, features, method):
    res = run("train", "--cache", caches["train"], "--layer", 1, "--features", features,
              "--method", method, "--cv-folds", 3, "--out", tmp_path / "p")
    assert res.exit_code == 0, res.output
    probe = load_probe(tmp_path / "p" / "probe")
    assert probe.n_features_in == (32 if features == "resid.mean" else 40)
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert 0 <= manifest["outputs"]["cv"]["auroc_mean"] <= 1
    res = run("eval", "--probe", tmp_path / "p" / "probe", "--caches",
              f"test={caches['test']},af={caches['af_only']}", "--n-boot", 50,
              "--out", tmp_path / "e")
    assert res.exit_code == 0, res.output
    ev = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert set(ev) == {"test", "af"}
    assert ev["test"]["n"] == 30 and ev["test"]["metrics"]["auroc"] is not None
    assert ev["af"]["metrics"]["auroc"] is None and ev["af"]["n_pos"] == ev["af"]["n"]
    again = run("eval", "--probe", tmp_path / "p" / "probe", "--caches",
                f"test={caches['test']}", "--n-boot", 50, "--out", tmp_path / "e2")
    assert again.exit_code == 0
    ev2 = json.loads((tmp_path / "e2" / "eval.json").read_text())
    assert ev2["test"]["metrics"] == ev["test"]["metrics"]  # seeded bootstrap


def test_probe_from_another_feature_space_is_refused(caches, tmp_path):
    assert run("train", "--cache", caches["train"], "--layer", 2, "--features", "resid.mean",
               "--cv-folds", 0, "--out", tmp_path / "p").exit_code == 0
    cfg = json.loads((tmp_path / "p" / "probe" / "cfg.json").read_text())
    cfg["feature_space"]["model"] = "0" * 64  # as if trained on another model of equal width
    (tmp_path / "p" / "probe" / "cfg.json").write_text(json.dumps(cfg))
    res = run("eval", "--probe", tmp_path / "p" / "probe", "--caches", caches["test"],
              "--out", tmp_path / "e")
    assert res.exit_code == 2 and "model" in res.output, res.output


def test_one_class_training_is_a_clear_error(caches, tmp_path):
    res = run("train", "--cache", caches["af_only"], "--layer", 1, "--out", tmp_path / "p")
    assert res.exit_code == 2 and "class" in res.output
    assert not (tmp_path / "p").exists()


def test_sweep_writes_points(caches, tmp_path):
    res = run("sweep", "--cache", caches["train"], "--layer", 1, "--features", "sae.max",
              "--method", "logistic_l1", "--n-feature-counts", "5,10", "--cs", "0.1,1",
              "--folds", 3, "--test-cache", caches["test"], "--out", tmp_path / "s")
    assert res.exit_code == 0, res.output
    points = json.loads((tmp_path / "s" / "sweep.json").read_text())["points"]
    assert [(p["n_features"], p["C"]) for p in points] == [
        (5, 0.1), (5, 1.0), (10, 0.1), (10, 1.0), (40, 0.1), (40, 1.0)]
    assert all(0 <= p["cv_auroc"] <= 1 and p["test_auroc"] is not None for p in points)
    assert np.isfinite([p["cv_std"] for p in points]).all()
