"""run_autointerp end to end, and the ``afscope features`` CLI on a real tiny SAE cache."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from feat_helpers import oracle_reply
from scripted_llm import ScriptedBackend

from afscope.errors import ArtifactError
from afscope.features import AutointerpConfig, load_inputs, run_autointerp, tfidf_embed
from afscope.llm import base as llm_base
from afscope.llm import register_backend

RESULT_KEYS = {"model", "layer", "feature", "selectivity", "auroc", "description", "relevance",
               "category", "detection_bal_acc", "faithfulness", "describer", "theme", "examples"}


def test_run_autointerp_end_to_end_and_resume(toy, tmp_path):
    X, y, texts, ids, cats = toy
    cfg = AutointerpConfig(n_top=3, n_zero=3, n_score_pos=4, n_score_neg=4, n_boot=50,
                           distance_threshold=0.9, batch_size=2)
    llm = ScriptedBackend(oracle_reply)
    stats: dict = {}
    rows = run_autointerp(X, y, texts, ids, cats, llm, tmp_path, cfg, model="toy", layer=3,
                          embed=tfidf_embed, stats=stats)
    assert [r["feature"] for r in rows] == [0, 5]          # selectivity >= 0.3, active >= 5
    assert all(set(r) == RESULT_KEYS for r in rows)
    r0 = rows[0]
    assert r0["model"] == "toy" and r0["layer"] == 3 and r0["selectivity"] == 1.0
    assert r0["relevance"] == 9 and r0["category"] == "known" and r0["detection_bal_acc"] == 1.0
    assert r0["theme"] and len(r0["examples"]) == 3 and r0["examples"][0]["label"] == 1
    assert stats["describe"]["done"] == 2 and stats["classify"]["parse_failures"] == 0
    selected = json.loads((tmp_path / "selected.json").read_text())
    assert selected["features"] == [0, 5] and selected["counts"]["known"] == 2
    for name in ("candidates.json", "descriptions.jsonl", "classifications.jsonl", "scores.jsonl",
                 "themes.json", "features.json"):
        assert (tmp_path / name).exists()
    # a rerun asks the LLM nothing and returns the same rows
    again = ScriptedBackend(oracle_reply)
    assert run_autointerp(X, y, texts, ids, cats, again, tmp_path, cfg, model="toy", layer=3,
                          embed=tfidf_embed) == rows
    assert again.prompts == []


def test_unrelated_descriptions_are_not_selected(toy, tmp_path):
    X, y, texts, ids, cats = toy
    llm = ScriptedBackend(lambda u: ("DESCRIPTION: Formatting of lists." if "starting with DESCRIPTION" in u
                                     else "RELEVANCE: 2\nCATEGORY: unrelated\nCONFIDENCE: 5"))
    cfg = AutointerpConfig(score=False, cluster=False)
    rows = run_autointerp(X, y, texts, ids, cats, llm, tmp_path, cfg)
    assert rows and all(r["category"] == "unrelated" and r["detection_bal_acc"] is None for r in rows)
    assert json.loads((tmp_path / "selected.json").read_text())["features"] == []


# ---- CLI on a real cache ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sae_cache(tmp_path_factory, tiny_model_dir):
    from afscope.data.dataset import Dataset
    from afscope.data.synth import generate_corpus
    from afscope.extract import ExtractConfig
    from afscope.sae import SAE, SAEConfig, extract_with_sae, save_sae

    root = tmp_path_factory.mktemp("feat-cache")
    data = root / "synth.jsonl"
    Dataset.from_records(generate_corpus(24, seed=5), "synth").to_jsonl(data)
    torch.manual_seed(0)
    sae = SAE(SAEConfig(architecture="topk", d_in=32, d_sae=48, k=6, hook_layer=1))
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape))
    sae_dir = save_sae(sae, root / "sae")
    extract_with_sae(ExtractConfig(model=str(tiny_model_dir), data=data, out=root / "cache",
                                   layers=[1], pool=["max"], chunk_size=8, batch_tokens=512,
                                   max_length=64, sae=[sae_dir], token_topk=4))
    other = root / "other.jsonl"
    Dataset.from_records(generate_corpus(24, seed=6), "other").to_jsonl(other)
    return root / "cache", data, other


@pytest.fixture
def scripted_backend_name():
    name = "features-scripted"

    @register_backend(name)
    class _Scripted(ScriptedBackend):
        @classmethod
        def from_config(cls, cfg, **overrides):
            return cls(oracle_reply, **overrides)

    try:
        yield name
    finally:
        llm_base._REGISTRY.pop(name, None)


def test_cli_steps_on_a_real_cache(sae_cache, scripted_backend_name, tmp_path):
    from afscope.cli import main

    cache, data, _ = sae_cache
    out = tmp_path / "run"
    common = ["--cache", str(cache), "--layer", "1", "--data", str(data), "--out", str(out)]
    llm = ["--llm", f"{{backend: {scripted_backend_name}}}"]
    runner = CliRunner()
    steps = [
        ["select", *common, "--min-selectivity", "-1", "--top", "4", "--min-active", "2"],
        ["describe", *common, *llm, "--n-top", "2", "--n-zero", "2", "--simulate"],
        ["classify", "--out", str(out), *llm],
        ["score", *common, *llm, "--n-score-pos", "1", "--n-score-neg", "1", "--n-boot", "10"],
        ["cluster", "--out", str(out), "--embedder", "tfidf"],
    ]
    for args in steps:
        res = runner.invoke(main, ["features", *args])
        assert res.exit_code == 0, (args[0], res.output)
    cand = json.loads((out / "candidates.json").read_text())["features"]
    assert len(cand) == 4
    desc = [json.loads(x) for x in (out / "descriptions.jsonl").read_text().splitlines()]
    assert [d["feature"] for d in desc] == [c["feature"] for c in cand]
    assert all(d["status"] == "ok" and len(d["top"]) == 2 for d in desc)
    feats = json.loads((out / "features.json").read_text())["features"]
    assert len(feats) == 4 and all(f["theme"] for f in feats)
    # free-text descriptions are scored by embedding AUROC on token contexts of the cache
    faith = json.loads((out / "faithfulness.json").read_text())
    assert faith["summary"]["n_described"] == 4
    assert {v["scorer"] for v in faith["features"].values()} <= {"embedding"}
    assert {f["feature"]: f["faithfulness"] for f in feats if str(f["feature"]) in
            faith["features"]} == {int(k): v["auroc"] for k, v in faith["features"].items()}
    assert all(f["describer"] for f in feats)
    # the simulator answers for every feature with activating and non-activating contexts
    # (this random SAE's top latents fire on nearly every token; the explain describe test has
    # features with both)
    path = out / "simulations.jsonl"
    sims = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    both = {k for k, v in faith["features"].items() if v["n_pos"] and v["n_neg"]}
    assert {str(r["feature"]) for r in sims} == both
    assert faith["summary"]["simulation_stats"]["done"] == len(both)
    for step in ("select", "describe", "classify", "score", "cluster"):
        m = json.loads((out / f"manifest.{step}.json").read_text())
        assert m["status"] == "complete" and m["command"] == f"features {step}"
    # resume: describing again asks nothing
    res = runner.invoke(main, ["features", "describe", *common, *llm, "--n-top", "2", "--n-zero", "2"])
    assert res.exit_code == 0 and "skipped 4" in res.output
    # the whole pipeline in one command
    one = tmp_path / "one"
    res = runner.invoke(main, ["features", "run", *common[:-1], str(one), *llm, "--top", "3",
                               "--min-selectivity", "-1", "--min-active", "2", "--no-score",
                               "--embedder", "tfidf"])
    assert res.exit_code == 0, res.output
    rows = json.loads((one / "features.json").read_text())["features"]
    assert len(rows) == 3 and all(r["layer"] == 1 for r in rows)
    assert (one / "faithfulness.json").is_file()
    # token windows come from the per-token top-k store (a latent outside a token's top-4 is absent)
    assert any(e["tokens"] for r in rows for e in r["examples"])


def test_other_dataset_is_refused_naming_both(sae_cache):
    cache, _, other = sae_cache
    with pytest.raises(ArtifactError, match="other.jsonl.*differs.*cache"):
        load_inputs(cache, 1, "max", other)


def test_inputs_have_texts_of_the_cached_rows(sae_cache):
    cache, data, _ = sae_cache
    inp = load_inputs(cache, 1, "max", data)
    assert inp.X.shape == (24, 48) and len(inp.texts) == 24 and inp.token_topk is not None
    records = [json.loads(x) for x in data.read_text().splitlines()]
    assert inp.ids == [r["id"] for r in records] if "id" in records[0] else len(inp.ids) == 24
    assert inp.texts == [r["text"] for r in records]
    assert inp.y.tolist() == [int(c == "alignment_faking") for c in inp.categories]
