"""``afscope features describe --explainer``: SAE features described by a trained explainer."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from afscope.cli import main
from afscope.explain.config import ExplainDataConfig, ExplainEvalConfig, ExplainTrainConfig
from afscope.explain.data import build_task_data
from afscope.explain.schema import TEST_FILE, read_examples


@pytest.fixture(scope="module")
def explainer(token_cache, tiny_model_dir, tmp_path_factory):
    """A tiny explainer trained on the token cache's fires_on features (60 steps at lr 1e-2: it
    then answers in the trained form, so every row parses), and its task."""
    from afscope.explain.train import train_explainer

    root = tmp_path_factory.mktemp("describe")
    data, _ = build_task_data(ExplainDataConfig(
        task="features", targets="tokens", cache=token_cache / "cache", sae=token_cache / "sae",
        out=root / "tok", test_fraction=0.5, min_active=3, question_types=["fires_on"]))
    tr, _ = train_explainer(ExplainTrainConfig(data=[data], model=str(tiny_model_dir),
                                               out=root / "tr", max_steps=60, lr=1e-2,
                                               val_fraction=0.0))
    return tr, data


def _partly_active(token_cache) -> list[int]:
    """Latents active on some tokens of the cache but not all (this random SAE's test features
    fire on every token, so they have no non-activating context to score against)."""
    import numpy as np

    from afscope.extract.store import ActivationCache

    tt = ActivationCache(token_cache / "cache").token_topk(1)
    on = np.zeros(tt.indices.max() + 1)
    np.add.at(on, tt.indices[tt.values > 0], 1)
    return [int(f) for f in np.flatnonzero((on > 0) & (on < len(tt.row)))]


def _describe(token_cache, out, *extra):
    cache = token_cache / "cache"
    return CliRunner().invoke(main, [
        "features", "describe", "--cache", str(cache), "--layer", "1", "--data",
        str(token_cache / "synth.jsonl"), "--out", str(out), *extra], catch_exceptions=False)


def test_explainer_describes_like_its_eval_and_scores_faithfulness(explainer, token_cache,
                                                                   tmp_path):
    from afscope.explain.evaluate import evaluate_explainers
    from afscope.features.pipeline import collect_features

    tr, data = explainer
    test = read_examples(data / TEST_FILE)
    feats = sorted({e.meta["feature"] for e in test} | set(_partly_active(token_cache)))
    out = tmp_path / "feat"
    (out).mkdir()
    (out / "candidates.json").write_text(json.dumps({"features": [
        {"feature": f, "selectivity": 0.5, "auroc": 0.7} for f in feats]}))
    res = _describe(token_cache, out, "--explainer", str(tr), "--sae",
                    str(token_cache / "sae"), "--batch-size", "3")
    assert res.exit_code == 0, res.output
    assert f"done {len(feats)}" in res.output and "faithfulness" in res.output
    rows = [json.loads(x) for x in (out / "descriptions.jsonl").read_text().splitlines()]
    assert sorted(r["feature"] for r in rows) == feats
    for r in rows:
        assert r["backend"].startswith("explainer:") and r["top"]
        assert r["status"] == "ok" and r["tokens"] and r["description"].startswith("Fires on: ")
    # the explainer answers exactly what `explain eval` generates for the same feature
    _, m = evaluate_explainers(ExplainEvalConfig(explainers=[tr], out=tmp_path / "ev",
                                                 max_tokens=48, n_boot=10, conditions=["trained"],
                                                 embed_similarity=False, batch_size=3))
    preds = [json.loads(x) for x in next((tmp_path / "ev" / "predictions").rglob(
        "trained.jsonl")).read_text().splitlines()]
    by_feature = {int(p["id"].split(":")[1]): p["prediction"] for p in preds}
    assert by_feature and {r["feature"]: r["answer"] for r in rows
                           if r["feature"] in by_feature} == by_feature
    from scripted_llm import ScriptedBackend

    _, sim = evaluate_explainers(ExplainEvalConfig(explainers=[tr], out=tmp_path / "sim",
                                                   max_tokens=48, n_boot=10, simulate=True,
                                                   conditions=["trained"],
                                                   embed_similarity=False, batch_size=3),
                                 backend=ScriptedBackend(lambda u: "1: 5"))
    # the simulation column exists; these test features fire on every token, so nothing to score
    assert sim["table"][0]["metrics"]["subsets"]["all"]["simulation"] is None
    faith = json.loads((out / "faithfulness.json").read_text())
    assert faith["summary"]["n_scored"] > 0
    assert set(faith["features"]) <= {str(f) for f in feats}
    for v in faith["features"].values():
        assert v["scorer"] == "tokens" and (v["auroc"] is None or 0.0 <= v["auroc"] <= 1.0)
    assert faith["summary"]["n_described"] == sum(r["status"] == "ok" for r in rows)
    table = collect_features(out)
    assert all(t["describer"].startswith("explainer:") for t in table)
    assert {t["feature"]: t["faithfulness"] for t in table} == {
        int(f): v["auroc"] for f, v in faith["features"].items()} | {
        t["feature"]: None for t in table if str(t["feature"]) not in faith["features"]}
    # resumable: a rerun describes nothing new; another describer is refused, not mixed in
    again = _describe(token_cache, out, "--explainer", str(tr), "--sae", str(token_cache / "sae"))
    assert again.exit_code == 0 and f"skipped {len(feats)}" in again.output
    from afscope.errors import ArtifactError
    from afscope.features.config import DescribeParams
    from afscope.features.describe import describe_store

    with pytest.raises(ArtifactError, match="differs in: describer"):
        describe_store(out, DescribeParams(), 0)  # the LLM describer's store


def test_explainer_descriptions_are_simulated(explainer, token_cache, tmp_path):
    """`--simulate`: the LLM simulator scores each explainer description on unseen contexts."""
    import re

    from scripted_llm import ScriptedBackend

    from afscope.llm import base as llm_base
    from afscope.llm import register_backend

    def reply(user: str) -> str:  # 9 where the last token is a named one, else 1
        named = set(re.findall(r'"([^"]*)"', user.split("</description>")[0]))
        return "\n".join(f"{i}: {9 if t in named else 1}"
                         for i, t in re.findall(r"Text (\d+), last token '([^']*)'", user))

    @register_backend("describe-scripted")
    class _Scripted(ScriptedBackend):
        @classmethod
        def from_config(cls, cfg, **overrides):
            return cls(reply, **overrides)

    tr, _ = explainer
    feats = _partly_active(token_cache)
    try:
        res = _describe(token_cache, tmp_path / "s", "--features", ",".join(map(str, feats)),
                        "--explainer", str(tr), "--sae", str(token_cache / "sae"), "--simulate",
                        "--llm", "{backend: describe-scripted}")
    finally:
        llm_base._REGISTRY.pop("describe-scripted", None)
    assert res.exit_code == 0, res.output
    faith = json.loads((tmp_path / "s" / "faithfulness.json").read_text())
    sims = [json.loads(x) for x in (tmp_path / "s" / "simulations.jsonl").read_text().splitlines()]
    assert sims and all(r["status"] == "ok" for r in sims)
    for r in sims:
        v = faith["features"][str(r["feature"])]
        assert v["simulation"] == r["correlation"]
        # this simulator predicts exactly "a named token": its correlation has the AUROC's sign
        if v["auroc"] is not None and r["correlation"] is not None:
            assert (r["correlation"] > 0) == (v["auroc"] > 0.5)
    assert faith["summary"]["simulation"]["n"] == sum(r["correlation"] is not None for r in sims)


def test_explainer_refuses_a_question_it_never_learned(explainer, token_cache, tmp_path):
    tr, data = explainer
    f = read_examples(data / TEST_FILE)[0].meta["feature"]
    res = _describe(token_cache, tmp_path / "q", "--features", str(f), "--explainer", str(tr),
                    "--sae", str(token_cache / "sae"), "--question", "feature_description")
    assert res.exit_code == 2
    assert "features/fires_on" in res.output and "features/feature_description" in res.output
    assert not (tmp_path / "q" / "descriptions.jsonl").exists()


def test_explainer_needs_the_sae(token_cache, tmp_path):
    res = _describe(token_cache, tmp_path / "n", "--explainer", str(tmp_path))
    assert res.exit_code == 2 and "--sae" in res.output


def test_check_explainer_refuses_another_layer_width_or_target(tmp_path):
    from afscope.errors import DataError
    from afscope.explain.describe import check_explainer

    meta = {"tasks": ["features/fires_on"], "target_width": 32,
            "projection": {"layers": [1], "lens": {"target": "m"}}}
    check_explainer(meta, "fires_on", 1, 32, "m+organism", tmp_path)
    with pytest.raises(DataError, match="layers \\[1\\]"):
        check_explainer(meta, "fires_on", 2, 32, "m", tmp_path)
    with pytest.raises(DataError, match="32-d"):
        check_explainer(meta, "fires_on", 1, 64, "m", tmp_path)
    with pytest.raises(DataError, match="lens was fit on 'm'"):
        check_explainer(meta, "fires_on", 1, 32, "other", tmp_path)
