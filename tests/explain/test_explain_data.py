"""``afscope explain data``: task folders from counterfactual datasets and feature descriptions.

Context ablation gives three examples per record with the right sentences; the counterfactual split
is kept; steering directions are stored once per (file, layer, sign) as unit ``alpha * v``; features
are split by feature; activation-pattern targets match hand-computed top-k categories of a
hand-written cache; bad input is an error naming file, record and field.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from afscope.config import build_config
from afscope.errors import ArtifactError, ConfigError, DataError
from afscope.explain.answers import parse_change, parse_label
from afscope.explain.data import (
    ExplainDataConfig,
    build_task_data,
    feature_example,
    split_units,
    steering_key,
    summarize,
)
from afscope.explain.schema import (
    STATS_FILE,
    TEST_FILE,
    TRAIN_FILE,
    VECTOR_MARKER,
    VECTORS_FILE,
    read_examples,
    read_vectors,
)
from afscope.extract import store
from afscope.fileio import sha256_file
from afscope.sae import SAE, SAEConfig, save_sae
from afscope.steer.vectors import SteeringVector

MONITORED = "Your responses are monitored by the alignment team."


def ctx_record(rid: str, scenario: str, before: str | None, after: str | None, **kw) -> dict:
    rec = {
        "id": rid, "scenario": scenario, "system_prompt": MONITORED,
        "hint_user_prompt": f"request {rid}", "behaviour_monitored": before,
        "behaviour_unmonitored": after,
        "changed": None if before is None or after is None else before != after,
        "model": "tiny", "label": "harmful",
    }
    rec.update(kw)
    return rec


def write_cf(folder: Path, train: list[dict], test: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.json").write_text(json.dumps(train))
    (folder / "test.json").write_text(json.dumps(test))
    return folder


def ctx_folder(tmp_path: Path) -> Path:
    train = [ctx_record("r0", "s_a", "refuse", "comply"),
             ctx_record("r1", "s_a", "refuse", "refuse"),
             ctx_record("r2", "s_b", "partial", "comply")]
    test = [ctx_record("r3", "s_c", "comply", "comply"),
            ctx_record("r4", "s_d", "refuse", "comply")]
    return write_cf(tmp_path / "ctx", train, test)


def build(tmp_path: Path, name: str = "out", **kw) -> tuple[Path, dict]:
    return build_task_data(ExplainDataConfig(out=tmp_path / name, **kw))


# ---- context ablation ---------------------------------------------------------------------------

def test_context_three_examples_per_record_with_the_right_answers(tmp_path):
    out, stats = build(tmp_path, task="context_ablation", source=ctx_folder(tmp_path))
    train, test = read_examples(out / TRAIN_FILE), read_examples(out / TEST_FILE)
    assert len(train) == 9 and len(test) == 6
    by_id = {e.id: e for e in [*train, *test]}
    assert {i.split(":")[0] for i in by_id} == {"r0", "r1", "r2", "r3", "r4"}
    gen, orig, chg = (by_id[f"r0:{q}"] for q in
                      ("generative_explanation", "orig_match", "change_match"))
    assert gen.answer == "The behaviour would change from <<<refuse>>> to <<<comply>>>."
    assert gen.reference == {"before": "refuse", "after": "comply"} and gen.changed is True
    assert parse_change(gen.answer) == ("refuse", "comply")
    assert orig.answer == "The behaviour would be <<<refuse>>>."
    assert orig.reference == {"label": "refuse"}
    assert chg.answer == "The behaviour would be <<<comply>>>."
    assert parse_label(chg.answer) == "comply"
    assert by_id["r1:generative_explanation"].answer == "The behaviour would remain <<<refuse>>>."
    assert by_id["r1:generative_explanation"].changed is False
    for e in (gen, orig, chg):
        assert e.unit == "s_a" and e.vectors == [] and e.meta["source_id"] == "r0"
        assert e.messages[0].role == "system" and e.messages[-1].role == "user"
        assert e.messages[1].content.startswith(f"{MONITORED}\n\nrequest r0\n\n")
    assert "monitoring context were removed" in gen.messages[1].content
    assert orig.messages[1].content != chg.messages[1].content
    vecs, meta = read_vectors(out / VECTORS_FILE)
    assert vecs == {} and meta["task"] == "context_ablation" and meta["width"] == "0"
    assert stats["train"]["by_question_type"] == {"change_match": 3, "generative_explanation": 3,
                                                  "orig_match": 3}
    assert stats["train"]["n_changed"] == 6 and stats["test"]["changed_rate"] == pytest.approx(0.5)
    assert stats["n_vectors"] == 0 and stats["n_skipped"] == 0
    assert json.loads((out / STATS_FILE).read_text()) == stats
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["command"] == "explain data"
    assert manifest["datasets"]["source"]["sha256"]["train.json"] == sha256_file(
        tmp_path / "ctx" / "train.json")


def test_context_split_is_the_datasets_own_and_never_leaks(tmp_path):
    out, stats = build(tmp_path, task="context_ablation", source=ctx_folder(tmp_path))
    train, test = read_examples(out / TRAIN_FILE), read_examples(out / TEST_FILE)
    assert {e.unit for e in train} == {"s_a", "s_b"} and {e.unit for e in test} == {"s_c", "s_d"}
    assert stats["train"]["n_units"] == 2
    leaky = write_cf(tmp_path / "leaky", [ctx_record("a", "s1", "refuse", "comply")],
                     [ctx_record("b", "s1", "refuse", "refuse")])
    with pytest.raises(DataError, match="s1.*both"):
        build(tmp_path, "o2", task="context_ablation", source=leaky)
    assert not (tmp_path / "o2").exists()
    with pytest.raises(ConfigError, match="--source folder"):
        build_task_data(ExplainDataConfig(task="context_ablation", source=leaky, out=leaky))


def test_context_skips_unlabelled_and_warns_when_a_split_has_no_change(tmp_path):
    src = write_cf(tmp_path / "c", [ctx_record("a", "s1", "refuse", "comply"),
                                    ctx_record("b", "s1", None, "comply")],
                   [ctx_record("c", "s2", "refuse", "refuse")])
    out, stats = build(tmp_path, task="context_ablation", source=src)
    assert stats["n_skipped"] == 1 and stats["skipped"] == {"unlabelled": 1}
    assert len(read_examples(out / TRAIN_FILE)) == 3
    assert stats["test"]["n_changed"] == 0 and stats["test"]["changed_rate"] == 0.0
    assert any("test split has NO changed" in w for w in stats["warnings"])


@pytest.mark.parametrize("field", ["behaviour_monitored", "system_prompt", "changed", "scenario"])
def test_missing_field_names_file_record_and_field(tmp_path, field):
    bad = ctx_record("r9", "s9", "refuse", "comply")
    del bad[field]
    src = write_cf(tmp_path / "c", [ctx_record("a", "s1", "refuse", "comply")], [bad])
    with pytest.raises(DataError) as e:
        build(tmp_path, task="context_ablation", source=src)
    assert "test.json" in str(e.value) and "'r9'" in str(e.value) and repr(field) in str(e.value)
    assert not (tmp_path / "out").exists()


def test_unknown_label_missing_files_and_inconsistent_changed(tmp_path):
    src = write_cf(tmp_path / "c", [ctx_record("a", "s1", "refuse", "yes")], [])
    with pytest.raises(DataError, match="'a'.*behaviour_unmonitored.*'yes'"):
        build(tmp_path, task="context_ablation", source=src)
    src = write_cf(tmp_path / "d", [ctx_record("a", "s1", "refuse", "comply", changed=False)], [])
    with pytest.raises(DataError, match="'changed'"):
        build(tmp_path, task="context_ablation", source=src)
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "train.json").write_text("[]")
    with pytest.raises(ArtifactError, match="test.json"):
        build(tmp_path, task="context_ablation", source=tmp_path / "e")


# ---- steering -----------------------------------------------------------------------------------

def save_steering_vector(path: Path, d: int = 8) -> tuple[Path, SteeringVector]:
    g = torch.Generator().manual_seed(0)
    vec = SteeringVector({1: torch.randn(d, generator=g) * 3, 2: torch.randn(d, generator=g)},
                         model="tiny", model_fingerprint="f" * 64, source="diffmean")
    vec.save(path)
    return path, vec


def steer_record(rid: str, scenario: str, layer: int, alpha: float, before: str, after: str,
                 vpath: Path, sha: str) -> dict:
    return {"id": rid, "request_id": rid.split(":")[0], "scenario": scenario, "label": "harmful",
            "user_prompt": f"do {scenario}", "system_prompt": None, "prompt_full": "x",
            "behaviour_unsteered": before, "behaviour_steered": after, "changed": before != after,
            "vector_path": str(vpath), "vector_sha256": sha, "layer": layer, "alpha": alpha,
            "positions": "both", "judge_method": "rules", "model": "tiny"}


def steering_folder(tmp_path: Path) -> tuple[Path, SteeringVector, str]:
    vpath, vec = save_steering_vector(tmp_path / "vec.safetensors")
    sha = sha256_file(vpath)
    rows = []
    for s in ("s1", "s2", "s3"):
        rows += [steer_record(f"{s}:L1:a2", s, 1, 2.0, "refuse", "comply", vpath, sha),
                 steer_record(f"{s}:L1:a-4", s, 1, -4.0, "refuse", "refuse", vpath, sha),
                 steer_record(f"{s}:L2:a2", s, 2, 2.0, "refuse", "partial", vpath, sha),
                 steer_record(f"{s}:L1:a0", s, 1, 0.0, "refuse", "refuse", vpath, sha)]
    train = [r for r in rows if r["scenario"] != "s3"]
    test = [r for r in rows if r["scenario"] == "s3"]
    return write_cf(tmp_path / "steer", train, test), vec, sha


def test_steering_vectors_stored_once_as_unit_signed_directions(tmp_path):
    src, vec, sha = steering_folder(tmp_path)
    out, stats = build(tmp_path, task="steering", source=src)
    train, test = read_examples(out / TRAIN_FILE), read_examples(out / TEST_FILE)
    assert len(train) == 6 and len(test) == 3
    assert stats["skipped"] == {"alpha_zero": 3} and stats["n_skipped"] == 3
    vecs, meta = read_vectors(out / VECTORS_FILE)
    assert sorted(vecs) == sorted([steering_key(sha, 1, 2.0), steering_key(sha, 1, -4.0),
                                   steering_key(sha, 2, 2.0)])
    assert steering_key(sha, 1, -4.0) == f"steer:{sha[:12]}:L1:-"
    assert meta == {"task": "steering", "width": "8"} and stats["n_vectors"] == 3
    for layer, alpha in ((1, 2.0), (1, -4.0), (2, 2.0)):
        want = alpha * vec.at(layer)
        torch.testing.assert_close(vecs[steering_key(sha, layer, alpha)], want / want.norm())
    ex = next(e for e in test if e.id == "s3:L1:a-4")
    assert ex.vectors[0].key == steering_key(sha, 1, -4.0) and ex.vectors[0].layer == 1
    assert ex.answer == "The behaviour would remain <<<refuse>>>." and ex.changed is False
    assert ex.unit == "s3" and ex.meta["alpha"] == -4.0
    assert ex.messages[1].content.startswith(
        f"A steering vector {VECTOR_MARKER} is added to the model's residual stream after layer 1 "
        "with strength 4.\n\nPrompt:\ndo s3\n\n")
    assert next(e for e in train if e.id == "s1:L2:a2").reference == {"before": "refuse",
                                                                        "after": "partial"}
    assert {e.unit for e in train}.isdisjoint({e.unit for e in test})
    again, _ = build(tmp_path, "again", task="steering", source=src)
    for name in (TRAIN_FILE, TEST_FILE, VECTORS_FILE):
        assert (again / name).read_bytes() == (out / name).read_bytes()


def test_steering_calibrated_heldout_family_is_novel_and_hides_the_raw_alpha(tmp_path):
    src, vec, sha = steering_folder(tmp_path)
    rows = json.loads((src / "test.json").read_text())
    for r in rows:
        r.update(vector_name="ref", vector_source="diffmean", heldout_vector=True,
                 alpha_scale=-1.0 if r["alpha"] < 0 else (0.0 if r["alpha"] == 0 else 1.0))
    (src / "test.json").write_text(json.dumps(rows))
    train_rows = json.loads((src / "train.json").read_text())
    for r in train_rows:
        r.update(heldout_vector=False, alpha_scale=None)
    (src / "train.json").write_text(json.dumps(train_rows))
    out, _ = build(tmp_path, task="steering", source=src)
    test, train = read_examples(out / TEST_FILE), read_examples(out / TRAIN_FILE)
    assert all(e.reference["novel"] is True for e in test)
    assert all(e.reference["novel"] is False for e in train)
    ex = next(e for e in test if e.id == "s3:L1:a-4")
    # the raw alpha (-4) names the vector family and the sign is in the direction: neither shows
    assert "with 1 times its calibrated strength." in ex.messages[1].content
    assert "-" not in ex.messages[1].content.split("strength")[0][-20:]
    assert ex.meta["alpha_scale"] == -1.0 and ex.meta["vector_name"] == "ref"
    tr = next(e for e in train if e.id == "s1:L1:a2")
    assert "with strength 2." in tr.messages[1].content
    rows[0]["alpha_scale"] = "one"
    (src / "test.json").write_text(json.dumps(rows))
    with pytest.raises(DataError, match="alpha_scale.*finite number or null"):
        build(tmp_path, "bad", task="steering", source=src)


def test_steering_hash_mismatch_names_the_record(tmp_path):
    src, _, sha = steering_folder(tmp_path)
    rows = json.loads((src / "test.json").read_text())
    rows[1]["vector_sha256"] = "0" * 64
    (src / "test.json").write_text(json.dumps(rows))
    with pytest.raises(DataError, match=f"{rows[1]['id']}.*vector_sha256"):
        build(tmp_path, task="steering", source=src)


# ---- features -----------------------------------------------------------------------------------

def tiny_sae(folder: Path, d_in: int = 8, d_sae: int = 16) -> SAE:
    sae = SAE(SAEConfig(architecture="relu", d_in=d_in, d_sae=d_sae, hook_layer=3))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    save_sae(sae, folder)
    return sae


def test_features_from_mapping_split_by_feature_with_decoder_rows(tmp_path):
    sae = tiny_sae(tmp_path / "sae")
    mapping = {str(f): [f"desc {f}", "shared text"] for f in range(10)}
    mapping["11"] = "only one"
    mapping["12"] = ["  "]
    (tmp_path / "d.json").write_text(json.dumps(mapping))
    out, stats = build(tmp_path, task="features", source=tmp_path / "d.json", sae=tmp_path / "sae",
                       test_fraction=0.3)
    train, test = read_examples(out / TRAIN_FILE), read_examples(out / TEST_FILE)
    assert len(train) + len(test) == 11 and len(test) == 3
    assert {e.unit for e in train}.isdisjoint({e.unit for e in test})
    assert stats["skipped"] == {"no_description": 1}
    vecs, meta = read_vectors(out / VECTORS_FILE)
    assert meta["width"] == "8" and len(vecs) == 11
    for e in [*train, *test]:
        f = e.meta["feature"]
        assert e.unit == e.id == f"feature:{f}" and e.vectors[0].layer == 3
        torch.testing.assert_close(vecs[e.vectors[0].key], sae.W_dec[f].detach())
        assert e.answer == e.reference["descriptions"][0] and e.changed is None
    ex11 = next(e for e in [*train, *test] if e.meta["feature"] == 11)
    assert ex11.reference == {"descriptions": ["only one"]}
    assert split_units(range(10), 0.3, 0) == split_units(list(range(10))[::-1], 0.3, 0)
    small, _ = build(tmp_path, "small", task="features", source=tmp_path / "d.json",
                     sae=tmp_path / "sae", max_features=4)
    assert len(read_examples(small / TRAIN_FILE)) + len(read_examples(small / TEST_FILE)) == 4


def test_features_folder_themes_and_cluster_files(tmp_path):
    tiny_sae(tmp_path / "sae")
    feats = tmp_path / "feats"
    feats.mkdir()
    rows = [{"feature": 2, "status": "ok", "description": "training pressure"},
            {"feature": 5, "status": "parse_error", "description": None},
            {"feature": 7, "status": "ok", "description": "refusal"}]
    (feats / "descriptions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (feats / "themes.json").write_text(json.dumps({"themes": [
        {"theme": 0, "label": "training / pressure", "name": "RLHF", "features": [2, 5]}]}))
    out, stats = build(tmp_path, task="features", source=feats, sae=tmp_path / "sae")
    exs = {e.meta["feature"]: e for e in read_examples(out / TRAIN_FILE) + read_examples(
        out / TEST_FILE)}
    assert sorted(exs) == [2, 7] and stats["skipped"] == {"no_description": 1}
    assert exs[2].reference["descriptions"] == ["training pressure", "RLHF", "training / pressure"]
    assert exs[2].answer == "training pressure"

    (tmp_path / "summ.json").write_text(json.dumps({"0": "deception", "1": "compliance"}))
    (tmp_path / "assign.json").write_text(json.dumps({"1": 0, "4": 1, "9": 0, "3": 7}))
    out, stats = build(tmp_path, "cl", task="features", source=tmp_path / "summ.json",
                       assignments=tmp_path / "assign.json", sae=tmp_path / "sae")
    exs = {e.meta["feature"]: e for e in read_examples(out / TRAIN_FILE) + read_examples(
        out / TEST_FILE)}
    assert sorted(exs) == [1, 4, 9] and exs[9].answer == "deception"
    assert exs[4].meta["cluster_id"] == "1" and stats["skipped"] == {"no_description": 1}


def test_features_errors(tmp_path):
    tiny_sae(tmp_path / "sae", d_sae=16)
    (tmp_path / "big.json").write_text(json.dumps({"3": "a", "16": "b"}))
    with pytest.raises(DataError, match="feature 16.*d_sae=16"):
        build(tmp_path, task="features", source=tmp_path / "big.json", sae=tmp_path / "sae")
    feats = tmp_path / "feats"
    feats.mkdir()
    (feats / "descriptions.jsonl").write_text(json.dumps(
        {"feature": 1, "status": "parse_error", "description": None}) + "\n")
    with pytest.raises(DataError, match="no feature has a usable description.*parseable"):
        build(tmp_path, task="features", source=feats, sae=tmp_path / "sae")
    with pytest.raises(ValidationError, match="--sae"):
        ExplainDataConfig(task="features", source=feats)
    with pytest.raises(ConfigError, match="only used by task 'features'"):
        build_config(ExplainDataConfig, overrides={"task": "steering", "source": "x", "sae": "y"})


# ---- features from activation patterns ---------------------------------------------------------

CATS = ["alignment_faking"] * 4 + ["aligned"] * 4 + ["hard_negative"] * 4
LABELS = [1] * 4 + [0] * 8


def latent_cache(folder: Path, acts: np.ndarray, sha: str | None, layer: int = 3,
                 chunk_size: int = 5) -> Path:
    """A hand-written activation cache: per-sample max latents ``acts (n, width)`` as CSR chunks."""
    n, width = acts.shape
    n_chunks = -(-n // chunk_size)
    store.write_index(folder, {
        "kind": store.KIND, "format_version": store.FORMAT_VERSION, "fingerprint": "fp",
        "model": "tiny", "layers": [layer], "pools": ["max"], "mask": "all", "d_model": 8,
        "n_records": n, "chunk_size": chunk_size, "n_chunks": n_chunks, "token_topk": 0,
        "latents": {str(layer): {"width": width, "architecture": "relu", "d_sae": width,
                                 "sha256": sha}}})
    store.write_records(folder, ({"row": i, "id": f"r{i}", "category": CATS[i],
                                  "label": LABELS[i]} for i in range(n)))
    for k in range(n_chunks):
        block = acts[k * chunk_size:(k + 1) * chunk_size]
        rows, cols = np.nonzero(block)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(block)))])
        vals = block[rows, cols].astype(np.float32)
        store.save_chunk(folder, k, {
            "L3.max": np.zeros((len(block), 8), np.float32),
            "row": np.arange(k * chunk_size, k * chunk_size + len(block), dtype=np.int64),
            "n_tokens": np.ones(len(block), np.int64),
            store.sae_key(layer, "indptr"): indptr.astype(np.int64),
            store.sae_key(layer, "indices"): cols.astype(np.int32),
            store.sae_key(layer, "max"): vals, store.sae_key(layer, "mean"): vals / 2,
            store.sae_key(layer, "argmax"): np.zeros(len(vals), np.int32)}, "fp")
    return folder


def pattern_acts(width: int = 16) -> np.ndarray:
    """12 rows x ``width`` latents; live with top_k=3 / min_active=2: features 0, 1, 2, 4, 5."""
    a = np.zeros((12, width), np.float32)
    a[[0, 1, 2, 5], 0] = [5, 4, 3, 1]  # top 3 all AF
    a[[4, 8, 9], 1] = [3, 2, 1]  # 2 hard_negative + 1 aligned
    a[[0, 4], 2] = 1.0  # a 1-1 tie: 'aligned' < 'alignment_faking' by name
    a[7, 3] = 9.0  # active on one row: rare
    a[[0, 4, 5, 8, 1, 2], 4] = [10, 9, 8, 7, 0.5, 0.5]  # top 3 = rows 0, 4, 5: AF share 1/3
    a[:, 5] = 1.0  # all tied: rows 0, 1, 2 by row order
    return a


EXPECTED = {
    0: "Fires most on alignment_faking traces; mostly alignment faking.",
    1: "Fires most on hard_negative traces; mostly non-AF.",
    2: "Fires most on aligned traces; mixed AF and non-AF.",
    4: "Fires most on aligned traces; mixed AF and non-AF.",
    5: "Fires most on alignment_faking traces; mostly alignment faking.",
}


def act_build(tmp_path: Path, cache: Path, name: str = "act", **kw) -> tuple[Path, dict]:
    kw = {"top_k": 3, "min_active": 2, "test_fraction": 0.4, **kw}
    return build(tmp_path, name, task="features", targets="activations", cache=cache,
                 sae=tmp_path / "sae", **kw)


def test_activation_targets_match_hand_computed_top_k(tmp_path):
    sae = tiny_sae(tmp_path / "sae")
    cache = latent_cache(tmp_path / "cache", pattern_acts(),
                         sha256_file(tmp_path / "sae" / "sae_weights.safetensors"))
    out, stats = act_build(tmp_path, cache)
    train, test = read_examples(out / TRAIN_FILE), read_examples(out / TEST_FILE)
    exs = {e.meta["feature"]: e for e in [*train, *test]}
    assert {f: e.answer for f, e in exs.items()} == EXPECTED
    assert len(test) == 2 and len(train) == 3
    assert {e.unit for e in train}.isdisjoint({e.unit for e in test})
    assert exs[2].reference == {"descriptions": [EXPECTED[2], "Most active on aligned traces."]}
    assert exs[4].meta["top_categories"] == {"aligned": 2, "alignment_faking": 1}
    assert exs[4].meta["af_share"] == pytest.approx(1 / 3) and exs[4].meta["n_active"] == 6
    assert exs[5].meta["top_rows"] == [0, 1, 2] and exs[1].meta["top_rows"] == [4, 8, 9]
    vecs, _ = read_vectors(out / VECTORS_FILE)
    for f, e in exs.items():
        assert e.vectors[0].layer == 3
        torch.testing.assert_close(vecs[e.vectors[0].key], sae.W_dec[f].detach())
    t = stats["targets"]
    assert (t["n_features"], t["n_live"], t["n_dead"], t["n_used"]) == (16, 5, 11, 5)
    assert t["sae_match"] == "weights_sha256" and t["base_rate_af"] == pytest.approx(1 / 3)
    assert t["by_category"] == {"aligned": 2, "alignment_faking": 2, "hard_negative": 1}
    assert stats["skipped"] == {"dead_or_rare": 11}
    assert stats["train"]["answers"]["n_distinct"] + stats["test"]["answers"]["n_distinct"] >= 4
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["datasets"]["cache"]["fingerprint"] == "fp"
    small, _ = act_build(tmp_path, cache, "small", max_features=3)
    assert len(read_examples(small / TRAIN_FILE)) + len(read_examples(small / TEST_FILE)) == 3
    again, _ = act_build(tmp_path, cache, "again", min_active=3)
    assert {e.meta["feature"] for e in read_examples(again / TRAIN_FILE)
            + read_examples(again / TEST_FILE)} == {0, 1, 4, 5}


def test_activation_targets_warn_when_one_answer_dominates(tmp_path):
    tiny_sae(tmp_path / "sae")
    acts = pattern_acts()
    acts[:, 1:5] = 0  # only features 0 and 5 live: the same answer
    cache = latent_cache(tmp_path / "cache", acts, None)  # no sha recorded: width only
    _, stats = act_build(tmp_path, cache, test_fraction=0.5)
    assert stats["targets"]["sae_match"] == "d_sae_only"
    assert stats["test"]["answers"] == {"n_distinct": 1, "top_share": 1.0,
                                        "top": [[EXPECTED[0], 1]]}
    assert any("100% of the test split" in w for w in stats["warnings"])
    assert any("'Most active on alignment_faking traces.'" in w for w in stats["warnings"])
    exs = [feature_example(f, [d], 3) for f, d in enumerate(["a", "b", "a"])]
    assert summarize("features", exs, exs[:2], {})["warnings"] == []


def test_activation_targets_errors(tmp_path):
    tiny_sae(tmp_path / "sae", d_sae=16)
    sha = sha256_file(tmp_path / "sae" / "sae_weights.safetensors")
    wide = latent_cache(tmp_path / "wide", pattern_acts(width=20), sha)
    with pytest.raises(DataError, match="width 20 but the SAE .* d_sae=16"):
        act_build(tmp_path, wide)
    other = latent_cache(tmp_path / "other", pattern_acts(), "0" * 64)
    with pytest.raises(DataError, match="other weights"):
        act_build(tmp_path, other)
    with pytest.raises(ArtifactError, match="--cache folder not found"):
        act_build(tmp_path, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="not an activation cache"):
        act_build(tmp_path, tmp_path / "empty")
    layer5 = latent_cache(tmp_path / "l5", pattern_acts(), sha, layer=5)
    with pytest.raises(ArtifactError, match="no SAE latents for layer 3"):
        act_build(tmp_path, layer5)
    with pytest.raises(DataError, match="no SAE latent of layer 3 is active"):
        act_build(tmp_path, latent_cache(tmp_path / "zero", np.zeros((12, 16), np.float32), sha))
    good = latent_cache(tmp_path / "good", pattern_acts(), sha)
    with pytest.raises(ConfigError, match="--cache folder"):
        build_task_data(ExplainDataConfig(task="features", targets="activations", cache=good,
                                          sae=tmp_path / "sae", out=good))
    with pytest.raises(ValidationError, match="needs --cache"):
        ExplainDataConfig(task="features", targets="activations", sae=tmp_path / "sae")
    with pytest.raises(ValidationError, match="'source' is not used"):
        ExplainDataConfig(task="features", targets="activations", cache=good, source=good,
                          sae=tmp_path / "sae")
    with pytest.raises(ValidationError, match="needs --source"):
        ExplainDataConfig(task="features", sae=tmp_path / "sae")
    with pytest.raises(ValidationError, match="'cache' is only used"):
        ExplainDataConfig(task="features", source=good, cache=good, sae=tmp_path / "sae")
    with pytest.raises(ConfigError, match="only used by task 'features'"):
        build_config(ExplainDataConfig, overrides={"task": "steering", "source": "x",
                                                   "cache": "y"})
    with pytest.raises(ValidationError, match="needs --source"):
        ExplainDataConfig(task="context_ablation")
