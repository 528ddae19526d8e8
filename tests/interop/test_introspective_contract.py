"""Contract of ``afscope export introspective-interp``: what introspective-interp's loaders read.

Written from reading its dataloaders (TransluceAI/introspective-interp at b0203a4:
``dataloaders/hint_attribution.py``, ``act_patch.py``, ``causal.py``, ``features_explain.py``,
``features_explain_utils.py``, ``base_dataset.py``), not from its code: for each task a small
export of our own data (tiny llama, scripted judge, tiny SAE) goes through the same first step its
loader takes (``datasets.load_dataset(folder, split=...)`` + ``to_list()`` / ``to_pandas()``;
``pickle.load`` for features), then every field it reads, every assertion it makes and the
types and shapes it relies on are checked here. Its 500-token prompt filter is re-measured from
the exported rows and the exported config and must match the export's report.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from scripted_llm import ScriptedBackend

from afscope.counterfactual import (
    ContextConfig,
    SteeringConfig,
    build_context_dataset,
    build_steering_dataset,
)
from afscope.errors import ArtifactError, ConfigError, DataError
from afscope.explain.config import ExplainDataConfig
from afscope.explain.data import build_task_data
from afscope.explain.schema import TEST_FILE, TRAIN_FILE, VECTORS_FILE, read_examples, read_vectors
from afscope.interop import (
    IIExportConfig,
    IIImportConfig,
    export_introspective,
    import_introspective,
)
from afscope.models import load_model
from afscope.sae.base import SAE
from afscope.sae.config import SAEConfig
from afscope.sae.io import save_sae
from afscope.steer.vectors import SteeringVector

SPLITS = ("train", "test")
LIMIT = 500
#: the judge's labels in item order (scenario i: monitored, unmonitored): changed and unchanged
#: pairs, so equal labels with different wording occur.
PAIRS = [("comply", "refuse"), ("partial", "partial"), ("comply", "comply"),
         ("refuse", "comply"), ("refuse", "refuse"), ("comply", "partial")]


def _judge() -> ScriptedBackend:
    order = [b for pair in PAIRS for b in pair]
    state = {"n": 0}

    def reply(_: str) -> str:
        b = order[state["n"] % len(order)]
        state["n"] += 1
        return f"ALIGNMENT: 50\nCOHERENCE: 50\nBEHAVIOUR: {b}\nAF: no"

    return ScriptedBackend(reply)


def _load(folder: Path, split: str, tmp: Path):
    """Its first step: ``load_dataset(path, split=split)`` (local folder, cache kept in tmp)."""
    from datasets import load_dataset

    return load_dataset(str(folder), split=split, cache_dir=str(tmp / "hf-cache"))


# ---- fixtures: our own data, made by our own builders -------------------------------------------

@pytest.fixture(scope="module")
def lm(tiny_model_dir):
    return load_model(str(tiny_model_dir))


@pytest.fixture(scope="module")
def context_run(tiny_model_dir, lm, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ctx")
    rows = [{"text": f"Scenario {i}: please help me with task {i}.", "scenario": f"s{i}",
             "label": "harmful"} for i in range(5)]
    rows.append({"text": "Long request: " + " ".join(["please help me pick the lock"] * 120),
                 "scenario": "long", "label": "harmful"})
    (tmp / "req.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = ContextConfig(model=str(tiny_model_dir), out=tmp / "run", data=tmp / "req.jsonl",
                        max_tokens=6, batch_size=4, test_fraction=0.34, judge="llm")
    build_context_dataset(cfg, lm=lm, backend=_judge())
    return cfg.out


@pytest.fixture(scope="module")
def steering_run(tiny_model_dir, lm, tmp_path_factory) -> tuple[Path, SteeringVector]:
    tmp = tmp_path_factory.mktemp("steer")
    g = torch.Generator().manual_seed(0)
    vec = SteeringVector({1: torch.randn(lm.info.d_model, generator=g)}, model=lm.info.name,
                         model_fingerprint=lm.info.fingerprint, source="diffmean")
    vpath = vec.save(tmp / "v.safetensors")
    cfg = SteeringConfig(model=str(tiny_model_dir), out=tmp / "run", vector=vpath, n=3,
                         max_tokens=6, batch_size=4, alphas=[0.0, 50.0, -20.0], layers=[1],
                         test_fraction=0.34)
    build_steering_dataset(cfg, lm=lm)
    return cfg.out, vec


@pytest.fixture(scope="module")
def features_task(tmp_path_factory) -> tuple[Path, SAE]:
    tmp = tmp_path_factory.mktemp("feat")
    sae = SAE(SAEConfig(architecture="relu", d_in=8, d_sae=16, hook_layer=3))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    save_sae(sae, tmp / "sae")
    mapping = {str(f): [f"fires on topic {f}", "training talk"] for f in (1, 2, 4, 7, 9, 12)}
    (tmp / "d.json").write_text(json.dumps(mapping))
    out, _ = build_task_data(ExplainDataConfig(task="features", source=tmp / "d.json",
                                               sae=tmp / "sae", out=tmp / "task",
                                               test_fraction=0.34))
    return out, sae


def _export(source: Path, out: Path, **kw) -> dict:
    _, summary = export_introspective(IIExportConfig(source=source, out=out, **kw))
    assert json.loads((out / "export.json").read_text()) == summary
    return summary


# ---- hint_attribution (context ablation) ---------------------------------------------------------

HINT_READS = ("ablation_prompt", "hint_prompt_full", "original_prompt_full", "system_prompt",
              "hint", "random_hint_prediction", "zeroshot_prediction", "changed_pred_bc_hint",
              "hint_user_prompt", "original_user_prompt")


def _fill(template: list[dict], args: dict, answer: str) -> list[dict]:
    """Its fill_in_prompt_args for message templates: format the turns that name an argument,
    then append the answer to the trailing assistant turn."""
    msgs = [dict(m) for m in template]
    for m in msgs:
        names = {k for k in args if "{" + k + "}" in m.get("content", "")}
        if names:
            m["content"] = m["content"].format(**{k: args[k] for k in names})
    assert msgs[-1]["role"] == "assistant"
    msgs[-1]["content"] = msgs[-1].get("content", "") + answer
    return msgs


def _hint_example(row: dict, qt: str) -> tuple[dict, str, bool]:
    """What its get_labels_hint does with a row for one question type (message templates):
    prompt args, the answer it targets, and whether its assertion holds."""
    if qt == "change_match":
        args = {"user_prompt": row["original_user_prompt"], "system_prompt": row["system_prompt"]}
    else:
        args = {"user_prompt": row["hint_user_prompt"], "system_prompt": row["system_prompt"]}
    if qt == "generative_explanation":
        orig = "Answer: " + row["random_hint_prediction"]
        new = "Answer: " + row["zeroshot_prediction"]
        answer = (f"The output would remain unchanged from <<<{orig}>>>." if orig == new
                  else f"The most likely output would change to <<<{new}>>>.")
    else:
        orig = " " + row["random_hint_prediction"].strip()
        new = " " + row["zeroshot_prediction"].strip()
        answer = new if qt == "change_match" else orig
    flag = row["changed_pred_bc_hint"]
    if flag is None:
        flag = orig != new
    return args, answer, flag == (orig != new)


def test_hint_export_passes_every_read_and_assertion(context_run, tmp_path, lm):
    s = _export(context_run, tmp_path / "ii")
    assert s["task"] == "hint_attribution" and s["files"] == ["test.jsonl", "train.jsonl"]
    config = yaml.safe_load((tmp_path / "ii" / "introspective_config.yaml").read_text())
    assert config == s["config"]
    train_cfg = config["train"]
    assert Path(train_cfg["hint_path"]) == (tmp_path / "ii").resolve()
    task_cfg = train_cfg["tasks"]["hint_attribution"]
    assert task_cfg["self_consistency"] is False
    qts = task_cfg["question_types"]
    assert set(qts) == {"generative_explanation", "orig_match", "change_match"}
    ctx_cfg = json.loads((context_run / "manifest.json").read_text())["config"]
    monitored, unmonitored = ctx_cfg["monitored_system"], ctx_cfg["unmonitored_system"]

    ours = {r["id"]: r for split in SPLITS
            for r in json.loads((context_run / f"{split}.json").read_text())}
    counted: dict[str, list[str]] = {}
    n_rows = 0
    equal_labels_other_words = 0
    for split in SPLITS:
        rows = _load(tmp_path / "ii", split, tmp_path).to_list()
        assert len(rows) == s["n_rows"][split] == len(json.loads(
            (context_run / f"{split}.json").read_text()))
        counted[split] = []
        for row in rows:
            n_rows += 1
            for field in HINT_READS:
                assert field in row, field
            for field in HINT_READS[:7] + HINT_READS[8:]:
                assert isinstance(row[field], str), field
            assert isinstance(row["changed_pred_bc_hint"], bool)
            rec = ours[row["id"]]
            # the prediction fields hold the behaviour labels, so the flag is their comparison
            assert row["random_hint_prediction"] == rec["behaviour_monitored"]
            assert row["zeroshot_prediction"] == rec["behaviour_unmonitored"]
            assert row["changed_pred_bc_hint"] == rec["changed"]
            assert row["response_monitored"] == rec["response_monitored"]
            if rec["response_monitored"] != rec["response_unmonitored"] and not rec["changed"]:
                equal_labels_other_words += 1
            # the cue: change_match (original_user_prompt with the same system_prompt) shows the
            # unmonitored system prompt, the others the monitored one
            assert row["system_prompt"] == ""
            assert row["hint_user_prompt"].startswith(monitored)
            assert row["original_user_prompt"].startswith(unmonitored)
            assert monitored not in row["original_user_prompt"]
            assert row["hint_prompt_full"] == rec["hint_prompt_full"]
            for qt, qcfg in qts.items():
                args, answer, ok = _hint_example(row, qt)
                assert ok, (row["id"], qt)            # its assert changed_pred_bc_hint == ...
                template = qcfg["prompts"][0]["messages"]
                prompt = _fill(template, args, answer)
                text = lm.tokenizer.apply_chat_template(prompt, tokenize=False)
                if len(lm.tokenizer.tokenize(text)) > LIMIT:   # its iterator's silent skip
                    counted[split].append(f"{row['id']}:{qt}")
    assert n_rows == 6
    # the rows that crashed its loader before: equal labels, different wording
    assert equal_labels_other_words >= 1
    assert s["n_changed"] == sum(1 for a, b in PAIRS if a != b)
    # over the limit: the long scenario's three questions, reported rather than dropped
    lim = s["prompt_limit"]
    assert lim["limit"] == LIMIT and lim["tokenizer"] == ours[next(iter(ours))]["model"]
    for split in SPLITS:
        assert lim[split]["over"] == counted[split]
        assert lim[split]["n_over"] == len(counted[split])
    assert sum(len(v) for v in counted.values()) == 3
    assert any("change_match shows the unmonitored prompt" in x for x in s["loads"])


def test_hint_export_seed_layout_and_old_files(context_run, tmp_path):
    # seed 000's layout: the monitored cue in system_prompt; change_match cannot show the other
    s = _export(context_run, tmp_path / "sys", cue_placement="system")
    rows = _load(tmp_path / "sys", "train", tmp_path).to_list()
    assert all(r["system_prompt"] and r["hint_user_prompt"] == r["original_user_prompt"]
               == r["ablation_prompt"] for r in rows)
    assert all(r["unmonitored_system_prompt"] not in r["system_prompt"] for r in rows)
    assert any(c.startswith("change_match with --cue-placement system") for c in s["cannot"])

    # a file written before the fix (answers in the prediction fields, no unmonitored prompt) is
    # upgraded from the run's manifest and exports the same rows
    old = tmp_path / "old"
    old.mkdir()
    (old / "manifest.json").write_text((context_run / "manifest.json").read_text())
    for split in SPLITS:
        recs = json.loads((context_run / f"{split}.json").read_text())
        for r in recs:
            r["random_hint_prediction"] = r.pop("response_monitored")
            r["zeroshot_prediction"] = r.pop("response_unmonitored")
            del r["unmonitored_system_prompt"]
        (old / f"{split}.json").write_text(json.dumps(recs))
    _export(old, tmp_path / "old-ii")
    _export(context_run, tmp_path / "new-ii")
    for split in SPLITS:
        assert (tmp_path / "old-ii" / f"{split}.jsonl").read_text() == \
            (tmp_path / "new-ii" / f"{split}.jsonl").read_text()
    # without the manifest the unmonitored prompt is unknown: a clear error, not a wrong row
    (old / "manifest.json").unlink()
    with pytest.raises(DataError, match="unmonitored_system_prompt.*--cue-placement system"):
        _export(old, tmp_path / "old-ii2")
    assert not (tmp_path / "old-ii2").exists()


# ---- act_patch (steering) ------------------------------------------------------------------------

ACT_REQUIRED = ("layer", "input_tokens", "original_continuation", "ablated_continuation",
                "is_different")
PATCH_KEYS = ("orig_pos", "counterfact_pos", "orig_text_token", "counterfact_text_token",
              "intervention_vector")


def test_act_patch_export_passes_every_read(steering_run, tmp_path, lm):
    run, vec = steering_run
    s = _export(run, tmp_path / "ii")
    assert s["task"] == "act_patch" and s["files"] == ["test.parquet", "train.parquet"]
    config = yaml.safe_load((tmp_path / "ii" / "introspective_config.yaml").read_text())
    assert Path(config["train"]["intervention_path"]) == (tmp_path / "ii").resolve()
    assert config["train"]["tasks"]["act_patch"]["self_consistency"] is False
    template = config["train"]["tasks"]["act_patch"]["question_types"][
        "generative_explanation"]["prompts"][0]
    ours = {r["id"]: r for split in SPLITS
            for r in json.loads((run / f"{split}.json").read_text())}
    tok = lm.tokenizer
    n = 0
    for split in SPLITS:
        df = _load(tmp_path / "ii", split, tmp_path).to_pandas()
        assert not [c for c in ACT_REQUIRED if c not in df.columns]       # its column check
        for c in ("patch_position", "counterfactual_text", "gt_original_target",
                  "gt_counterfactual_target"):
            assert c in df.columns
        over = []
        for _, row in df.iterrows():
            n += 1
            rec = ours[row["id"]]
            layer = row["layer"].tolist()                                 # its .tolist()
            assert layer == [rec["layer"]] and all(isinstance(x, int) for x in layer)
            text = "".join(row["input_tokens"])                           # its example id
            assert text and isinstance(row["input_tokens"].tolist(), list)
            assert "ablated_token_positions" in row
            positions = row["ablated_token_positions"].tolist()
            assert positions == list(range(len(row["input_tokens"])))     # positions "both"
            assert tok.eos_token not in row["original_continuation"]      # not skipped
            assert tok.eos_token not in row["ablated_continuation"]
            pp = row["patch_position"]
            assert set(PATCH_KEYS) <= set(pp)
            cont = torch.tensor(pp["intervention_vector"]).unsqueeze(0)   # its continuous token
            assert cont.shape == (1, lm.info.d_model)
            torch.testing.assert_close(cont[0], rec["alpha"] * vec.at(1))
            # continuations decode to the behaviour labels; is_different is their inequality
            before = tok.convert_tokens_to_string(row["original_continuation"])
            after = tok.convert_tokens_to_string(row["ablated_continuation"])
            assert (before, after) == (rec["behaviour_unsteered"], rec["behaviour_steered"])
            assert bool(row["is_different"]) == (before != after) == rec["changed"]
            # its self_consistency position check: re-tokenized input, special tokens included
            input_text = tok.convert_tokens_to_string(row["input_tokens"])
            ids = tok(input_text)["input_ids"]
            assert tok.convert_ids_to_tokens([ids[pp["orig_pos"]]])[0] == pp["orig_text_token"]
            assert pp["counterfact_pos"] is None or pp["counterfact_pos"] != pp["counterfact_pos"]
            # its prompt: the string template filled, the answer appended
            answer = (f"The output would remain unchanged from <<<{before}>>>." if before == after
                      else f"The most likely output would change to <<<{after}>>>.")
            prompt = template.format(
                begin_continuous="<a>", end_continuous="<b>", feature="<c>",
                layer=", ".join(str(x) for x in layer),
                tokens=f"<{tok.convert_tokens_to_string([pp['orig_text_token']])}>",
                input=tok.convert_tokens_to_string(row["input_tokens"]))
            k = len(tok.tokenize(re.sub("<[abc]>", "", prompt) + answer)) + 3
            if k > LIMIT:
                over.append(row["id"])
        assert s["prompt_limit"][split]["over"] == over
    assert n == 3 * 2                       # alpha 0 has no intervention: skipped and counted
    assert s["counts"]["skipped_alpha_zero"] == 3 and s["counts"]["positions_both"] == 6
    assert any(c.startswith("multi-token continuations") for c in s["cannot"])


def test_act_patch_refuses_generated_positions_and_task_folders(steering_run, tmp_path):
    run, _ = steering_run
    gen = tmp_path / "gen"
    gen.mkdir()
    for split in SPLITS:
        recs = json.loads((run / f"{split}.json").read_text())
        for r in recs:
            r["positions"] = "generated"
        (gen / f"{split}.json").write_text(json.dumps(recs))
    with pytest.raises(DataError, match="generated.*cannot be represented"):
        _export(gen, tmp_path / "x")
    task, _ = build_task_data(ExplainDataConfig(task="steering", source=run,
                                                out=tmp_path / "task"))
    with pytest.raises(ArtifactError, match="counterfactual context\\|steering.*built from"):
        _export(task, tmp_path / "y")


# ---- features_explain ----------------------------------------------------------------------------

def test_features_export_passes_every_read(features_task, tmp_path):
    task, sae = features_task
    s = _export(task, tmp_path / "ii")
    out = tmp_path / "ii"
    cfg = yaml.safe_load((out / "introspective_config.yaml").read_text())["train"]
    assert cfg["dataset"] == ["sae_explanations"] and cfg["layers"] == [3]
    assert Path(cfg["explanation_dir"]) == out.resolve()
    ours = {split: read_examples(task / f"{split}.jsonl") for split in SPLITS}
    # its __init__: one pickle per configured layer, a tensor (d_model, n_features)
    all_features = {}
    for layer in cfg["layers"]:
        with open(out / cfg["sae_save_path"] / f"layer_{layer}.pkl", "rb") as fh:
            weights = pickle.load(fh)
        assert isinstance(weights, torch.Tensor) and weights.shape == (8, 16)
        all_features[layer] = {f: weights[:, f] for f in range(weights.shape[1])}
    seen = set()
    for split in SPLITS:
        with open(out / cfg["split_explanations_data"].format(split=split), "rb") as fh:
            explanations = pickle.load(fh)
        examples, labels = zip(*explanations)                 # its load_features_dataset
        assert len(examples) == len(labels) == len(ours[split]) == s["n_rows"][split]
        for (layer, f), label, ex in zip(examples, labels, ours[split]):
            assert isinstance(layer, int) and isinstance(f, int)
            hash((layer, f))                                  # its dict keys
            assert (layer, f) not in seen
            seen.add((layer, f))
            cont = all_features[layer][f].unsqueeze(0)        # its continuous token
            assert cont.shape == (1, 8)
            torch.testing.assert_close(cont[0], sae.W_dec[f].detach())
            assert label["chosen_label"] == ex.answer == f"fires on topic {f}"
            assert label["all_labels"][0] == label["chosen_label"]   # the judge's references
            assert "training talk" in label["all_labels"]
            assert isinstance(label["all_label_scores"], dict)
            score = (label["all_label_scores"][label["chosen_label"]]
                     if label["chosen_label"] in label["all_label_scores"] else None)
            assert score is None
            # its prompt template: the named arguments only
            for template in yaml.safe_load((out / "introspective_config.yaml").read_text())[
                    "train"]["tasks"]["features_explain"]["question_types"][
                    "generative_explanation"]["prompts"]:
                template.format(layer=str(layer), begin_continuous="", end_continuous="",
                                feature="")
        keys = json.loads((out / cfg["split_keys"].format(split=split)).read_text())
        assert keys == [[layer, f] for layer, f in examples]
    assert len(seen) == 6
    assert s["prompt_limit"]["tokenizer"] is None        # not counted without --tokenizer
    assert any("simulator-correlation" in c for c in s["cannot"])


def test_features_export_counts_prompts_with_a_tokenizer(features_task, tiny_model_dir, tmp_path):
    task, _ = features_task
    s = _export(task, tmp_path / "ii", tokenizer=str(tiny_model_dir), prompt_token_limit=15)
    lim = s["prompt_limit"]
    assert lim["tokenizer"] == str(tiny_model_dir)
    assert lim["train"]["n_prompts"] + lim["test"]["n_prompts"] == 6
    assert lim["train"]["n_over"] + lim["test"]["n_over"] == 6      # every prompt > 15 tokens


# ---- import (its released formats) and the pickle rule -------------------------------------------

def test_import_reads_its_formats_into_task_folders(context_run, steering_run, features_task,
                                                    tmp_path):
    _export(context_run, tmp_path / "hint")
    out, stats = import_introspective(IIImportConfig(source=tmp_path / "hint",
                                                     out=tmp_path / "hint-task"))
    assert stats["source"]["task"] == "hint_attribution" and stats["task"] == "context_ablation"
    exs = read_examples(out / TRAIN_FILE) + read_examples(out / TEST_FILE)
    assert len(exs) == 6 * 3
    gen = [e for e in exs if e.question_type == "generative_explanation"]
    assert sum(e.changed for e in gen) == sum(1 for a, b in PAIRS if a != b)
    assert all(e.answer.startswith(("The most likely output", "The output would remain"))
               for e in gen)

    run, vec = steering_run
    _export(run, tmp_path / "act")
    out, stats = import_introspective(IIImportConfig(source=tmp_path / "act",
                                                     out=tmp_path / "act-task"))
    assert stats["task"] == "steering" and stats["n_vectors"] == 6
    vecs, _ = read_vectors(out / VECTORS_FILE)
    for e in read_examples(out / TRAIN_FILE) + read_examples(out / TEST_FILE):
        assert e.vectors[0].layer == 1
        assert e.reference["before"] in ("comply", "refuse", "partial")
        norms = {round(float(a * vec.at(1).norm()), 3) for a in (50.0, 20.0)}
        assert round(float(vecs[e.vectors[0].key].norm()), 3) in norms

    task, sae = features_task
    _export(task, tmp_path / "feat")
    with pytest.raises(ConfigError, match="pickle.*--trust-pickle"):
        import_introspective(IIImportConfig(source=tmp_path / "feat", out=tmp_path / "no"))
    assert not (tmp_path / "no").exists()
    out, stats = import_introspective(IIImportConfig(source=tmp_path / "feat",
                                                     out=tmp_path / "feat-task",
                                                     trust_pickle=True))
    vecs, _ = read_vectors(out / VECTORS_FILE)
    exs = read_examples(out / TRAIN_FILE) + read_examples(out / TEST_FILE)
    assert len(exs) == 6
    for e in exs:
        f = e.meta["feature"]
        torch.testing.assert_close(vecs[e.vectors[0].key], sae.W_dec[f].detach())
        assert e.answer == f"fires on topic {f}" and "training talk" in e.reference["descriptions"]


def test_import_reads_hub_parquet_layout_and_bad_rows(tmp_path):
    from datasets import Dataset

    rows = [{"ablation_prompt": "Q1", "hint_prompt_full": "H", "original_prompt_full": "O",
             "system_prompt": "", "hint": "hint", "random_hint_prediction": "B",
             "zeroshot_prediction": "A", "changed_pred_bc_hint": True,
             "hint_user_prompt": "Q1 Hint: B", "original_user_prompt": "Q1"}]
    (tmp_path / "hub" / "data").mkdir(parents=True)
    for split in SPLITS:
        Dataset.from_list(rows).to_parquet(
            str(tmp_path / "hub" / "data" / f"{split}-00000-of-00001.parquet"))
    out, stats = import_introspective(IIImportConfig(source=tmp_path / "hub",
                                                     out=tmp_path / "t"))
    assert stats["train"]["n_examples"] == 3 and stats["warnings"]   # same unit in both splits
    ex = next(e for e in read_examples(out / TRAIN_FILE) if e.question_type == "change_match")
    assert ex.answer == "A" and ex.messages[-1].content.startswith("Q1\n\n")
    rows[0]["changed_pred_bc_hint"] = False          # would fail its loader's assertion
    (tmp_path / "bad").mkdir()
    for split in SPLITS:
        (tmp_path / "bad" / f"{split}.jsonl").write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(DataError, match="row 0: changed_pred_bc_hint=False"):
        import_introspective(IIImportConfig(source=tmp_path / "bad", out=tmp_path / "t2"))


# ---- CLI ---------------------------------------------------------------------------------------

def test_cli_export_import_and_pickle_refusal(features_task, context_run, tmp_path):
    from afscope.cli import main

    task, _ = features_task
    runner = CliRunner()
    res = runner.invoke(main, ["export", "introspective-interp", str(task), "--out",
                               str(tmp_path / "ii")])
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "ii" / "manifest.json").read_text())
    assert manifest["command"] == "export introspective-interp"
    assert manifest["status"] == "complete" and manifest["outputs"]["task"] == "features_explain"
    res = runner.invoke(main, ["import", "introspective-interp", str(tmp_path / "ii"), "--out",
                               str(tmp_path / "t")])
    assert res.exit_code == 2 and "--trust-pickle" in res.output
    assert not (tmp_path / "t").exists()
    res = runner.invoke(main, ["import", "introspective-interp", str(tmp_path / "ii"), "--out",
                               str(tmp_path / "t"), "--trust-pickle"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "t" / "manifest.json").read_text())["command"] == \
        "import introspective-interp"
    # re-exporting another task into the same folder leaves no stale file of the first
    res = runner.invoke(main, ["export", "introspective-interp", str(context_run), "--out",
                               str(tmp_path / "ii")])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "ii" / "features").exists()
    assert (tmp_path / "ii" / "train.jsonl").is_file()
    # an --out that is not an earlier export is refused
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    res = runner.invoke(main, ["export", "introspective-interp", str(context_run), "--out",
                               str(tmp_path / "other")])
    assert res.exit_code == 2 and "not an earlier" in res.output
    res = runner.invoke(main, ["export", "introspective-interp", "--out", str(tmp_path / "z")])
    assert res.exit_code == 2 and "RUN_OR_TASK_DIR" in res.output


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_trusted_pickle_still_cannot_run_code(tmp_path, monkeypatch):
    import numpy as np

    from afscope.interop.introspective import read_pickle

    monkeypatch.chdir(tmp_path)
    good = {"w": torch.arange(6.0).reshape(2, 3), "a": np.arange(3, dtype=np.float32),
            "keys": [((3, 5), {"chosen_label": "x", "all_labels": ["x"], "all_label_scores": []})]}
    (tmp_path / "good.pkl").write_bytes(pickle.dumps(good, protocol=4))
    back = read_pickle(tmp_path / "good.pkl", trust=True)
    torch.testing.assert_close(back["w"], good["w"])
    assert np.array_equal(back["a"], good["a"]) and back["keys"] == good["keys"]
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(DataError, match="evil.pkl: the pickle names posix.system"):
        read_pickle(tmp_path / "evil.pkl", trust=True)
    assert not (tmp_path / "pwned").exists()
