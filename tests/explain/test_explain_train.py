"""``afscope explain train`` on a tiny llama: answer-only weighted loss, training, checkpoints.

The loss is the per-token cross-entropy of the answer tokens, weighted per task; training lowers it,
writes a loadable adapter (with the projector when widths differ), stops early on the validation
loss keeping the best checkpoint, resumes to bit-identical weights, and refuses another base model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from explain_tasks import context_folder, vector_folder
from safetensors.torch import load_file, save_file
from tiny_models import build_model, random_lora

from afscope.errors import ArtifactError, ConfigError, DataError
from afscope.explain.config import ExplainTrainConfig
from afscope.explain.encode import Collator, encode_examples
from afscope.explain.inject import VectorBatch, VectorProjector, embedding_norm, inject
from afscope.explain.schema import (
    TRAIN_FILE,
    VECTORS_FILE,
    read_examples,
    write_examples,
)
from afscope.explain.train import (
    ADAPTER_DIR,
    CHECKPOINTS_DIR,
    EXPLAINER_FILE,
    TRAIN_LOG,
    answer_loss,
    load_explainer,
    load_tasks,
    read_explainer,
    split_units,
    train_explainer,
)
from afscope.models import load_model

WEIGHTS = "adapter_model.safetensors"


def make_cfg(model_dir: Path, data: list[Path], out: Path, **kw) -> ExplainTrainConfig:
    base = dict(data=data, model=str(model_dir), out=out, r=4, lora_alpha=8, batch_size=4,
                max_length=256, lr=2e-2, max_steps=20, eval_steps=100)
    base.update(kw)
    return ExplainTrainConfig(**base)


def batch_of(tokenizer, examples, vectors=None, weights=None):
    enc, dropped = encode_examples(tokenizer, examples, max_length=256, weights=weights)
    assert dropped == 0
    return enc, Collator(vectors or {}, tokenizer.pad_token_id)(enc)


def vb_of(batch) -> VectorBatch | None:
    if "vec_positions" not in batch:
        return None
    return VectorBatch(batch["vec_values"], batch["vec_layers"], batch["vec_positions"])


def hand_loss(model, enc, batch, mode="replace", inject_layer=1, embed_norm=1.0) -> torch.Tensor:
    """``sum_rows w * sum_answer_tokens ce / n_answer_tokens`` from the full logits."""
    with inject(model, vb_of(batch), mode=mode, inject_layer=inject_layer, embed_norm=embed_norm):
        logits = model(input_ids=batch["input_ids"],
                       attention_mask=batch["attention_mask"]).logits  # (B, T, V)
    total, n = torch.zeros(()), 0
    for b, e in enumerate(enc):
        for t in range(len(e.prompt), e.n_tokens):
            ce = F.cross_entropy(logits[b, t - 1][None], batch["input_ids"][b, t][None])
            total = total + e.weight * ce
            n += 1
    return total / n


def adapter_tensors(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / WEIGHTS))


@torch.no_grad()
def forward_logits(model, batch, meta) -> torch.Tensor:
    with inject(model, vb_of(batch), mode=meta["mode"], inject_layer=meta["inject_layer"],
                embed_norm=meta["embed_norm"]):
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def save_other(path: Path, tokenizer, n_layers: int) -> Path:
    """A tiny llama (d_model 32 like ``tiny_model_dir``) with other weights."""
    model = build_model("llama", len(tokenizer), n_layers=n_layers)
    with torch.no_grad():
        model.lm_head.weight.mul_(1.5)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """Another base with 3 blocks: its weight files differ in size from ``tiny_model_dir``'s."""
    return save_other(tmp_path_factory.mktemp("other-llama"), tiny_tokenizer, 3)


@pytest.fixture(scope="module")
def same_shape_model_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """Another base of exactly ``tiny_model_dir``'s shape (4 blocks), other weights."""
    return save_other(tmp_path_factory.mktemp("same-shape-llama"), tiny_tokenizer, 4)


# ---- loss ---------------------------------------------------------------------------------------

def test_labels_cover_only_the_answer_and_eos(tmp_path, tiny_tokenizer):
    examples, _ = load_tasks([context_folder(tmp_path)])
    enc, batch = batch_of(tiny_tokenizer, examples[:6])
    ids, labels, att = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert ids.shape == labels.shape == att.shape and ids.shape[0] == 6
    for b, (e, ex) in enumerate(zip(enc, examples[:6])):
        P, n = len(e.prompt), e.n_tokens
        assert bool((labels[b, :P] == -100).all()) and bool((labels[b, n:] == -100).all())
        assert torch.equal(labels[b, P:n], ids[b, P:n]) and labels[b, P:n].tolist() == e.answer
        assert e.answer[-1] == tiny_tokenizer.eos_token_id
        assert tiny_tokenizer.decode(e.answer) == ex.answer + tiny_tokenizer.eos_token
        assert att[b].tolist() == [1] * n + [0] * (ids.shape[1] - n)
        assert bool((ids[b, n:] == tiny_tokenizer.pad_token_id).all())
        # the prompt is exactly what generation sees: the chat template with its assistant header
        prompt = tiny_tokenizer.apply_chat_template(ex.chat(), tokenize=False,
                                                    add_generation_prompt=True)
        assert tiny_tokenizer.decode(e.prompt) == prompt
    assert batch["weights"].tolist() == [1.0] * 6 and "vec_positions" not in batch


@pytest.mark.parametrize("mode", ["replace", "add"])
def test_answer_loss_is_the_per_token_answer_cross_entropy(mode, tmp_path, tiny_tokenizer):
    model = build_model("llama", len(tiny_tokenizer))
    with torch.no_grad():  # at init scale the logits stay ~uniform and an edit barely shows
        model.lm_head.weight.mul_(50)
    ctx, _ = load_tasks([context_folder(tmp_path)])
    feats, vectors = load_tasks([vector_folder(tmp_path, d=32)])
    weights = {"context_ablation/orig_match": 0.5, "context_ablation": 2.0}
    for examples, vecs in ((ctx[:5], None), (feats[:4], vectors)):
        enc, batch = batch_of(tiny_tokenizer, examples, vecs, weights)
        assert ("vec_positions" in batch) == (vecs is not None)
        kw = dict(mode=mode, inject_layer=1, embed_norm=embedding_norm(model))
        with torch.no_grad():
            got = answer_loss(model, batch, **kw)
            want = hand_loss(model, enc, batch, **kw)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        # the vectors are read: with the slots emptied the loss changes
        if vecs is not None:
            no_vec = {k: v for k, v in batch.items() if not k.startswith("vec_")}
            with torch.no_grad():
                assert not torch.isclose(answer_loss(model, no_vec, **kw), got)


def test_exact_says_which_answers_greedy_decoding_would_write(tmp_path, tiny_tokenizer):
    """``exact`` flags an example iff every answer token is the top logit under teacher forcing;
    the loss stays the same."""
    model = build_model("llama", len(tiny_tokenizer))
    with torch.no_grad():
        model.lm_head.weight.mul_(50)
    ctx, _ = load_tasks([context_folder(tmp_path)])
    enc, batch = batch_of(tiny_tokenizer, ctx[:3])
    kw = dict(mode="replace", inject_layer=1, embed_norm=embedding_norm(model))
    top = forward_logits(model, batch, {**kw, "mode": "replace"}).argmax(-1)  # (B, T)
    labels = batch["labels"].clone()
    answer = labels[:, 1:] != -100
    labels[:, 1:][answer] = top[:, :-1][answer]  # every row's answer is what greedy would write
    first = answer[1].nonzero()[0, 0]
    labels[1, 1 + first] = (labels[1, 1 + first] + 1) % len(tiny_tokenizer)  # one token off
    batch = {**batch, "labels": labels}
    flags: list[bool] = []
    with torch.no_grad():
        loss = answer_loss(model, batch, exact=flags, **kw)
        torch.testing.assert_close(loss, answer_loss(model, batch, **kw))
    assert flags == [True, False, True]


@pytest.fixture(scope="module")
def sharp_model_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """The tiny llama with its head scaled up: at init scale its logits stay ~uniform and a short
    LoRA run never makes a whole answer the top choice."""
    path = tmp_path_factory.mktemp("sharp-llama")
    model = build_model("llama", len(tiny_tokenizer))
    with torch.no_grad():
        model.lm_head.weight.mul_(50)
    model.save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


def test_best_metric_exact_keeps_the_checkpoint_whose_greedy_answers_are_right(tmp_path,
                                                                             sharp_model_dir):
    cfg = make_cfg(sharp_model_dir, [context_folder(tmp_path)], tmp_path / "ex", max_steps=200,
                   scheduler="constant", eval_steps=20, patience=None, val_fraction=0.3,
                   best_metric="exact", save_total_limit=1)
    out, summary = train_explainer(cfg, lm=load_model(str(sharp_model_dir)))
    evals = json.loads((out / TRAIN_LOG).read_text())["eval"]
    exact = [r["exact"] for r in evals]
    assert len(evals) == 10 and all(0.0 <= x <= 1.0 for x in exact)
    # measured when written: 0 until step 140 (0.22), then 0 again; the loss is lowest at 160
    assert max(exact) > 0
    best_step = evals[exact.index(max(exact))]["step"]  # the first of equal bests is kept
    assert summary["best_metric"] == "exact" and summary["best_eval"] == max(exact)
    assert Path(summary["best_checkpoint"]).name == f"checkpoint-{best_step}"


def test_task_weights_scale_the_loss_and_zero_means_no_gradient(tmp_path, tiny_tokenizer):
    model = build_model("llama", len(tiny_tokenizer)).train()
    examples, _ = load_tasks([context_folder(tmp_path)])
    orig = [e for e in examples if e.question_type == "orig_match"][:3]
    gen = [e for e in examples if e.question_type == "generative_explanation"][:3]
    weights = {"context_ablation": 2.0, "context_ablation/orig_match": 0.0}
    enc, _ = encode_examples(tiny_tokenizer, orig + gen, max_length=256, weights=weights)
    assert [e.weight for e in enc] == [0.0] * 3 + [2.0] * 3  # task/question_type beats task
    kw = dict(mode="replace", inject_layer=1, embed_norm=1.0)

    # a batch of weight-0 rows only: loss 0 and no gradient anywhere
    _, batch = batch_of(tiny_tokenizer, orig, weights=weights)
    loss = answer_loss(model, batch, **kw)
    assert float(loss.detach()) == 0.0
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(bool((g == 0).all()) for g in grads)
    model.zero_grad(set_to_none=True)

    # weight 2 doubles a row's loss (and its gradient) against weight 1
    _, one = batch_of(tiny_tokenizer, gen[:1])
    _, two = batch_of(tiny_tokenizer, gen[:1], weights={"context_ablation": 2.0})
    assert one["weights"].tolist() == [1.0] and two["weights"].tolist() == [2.0]
    l1 = answer_loss(model, one, **kw)
    l1.backward()
    g1 = model.lm_head.weight.grad.clone()
    model.zero_grad(set_to_none=True)
    l2 = answer_loss(model, two, **kw)
    l2.backward()
    torch.testing.assert_close(l2, 2 * l1)
    torch.testing.assert_close(model.lm_head.weight.grad, 2 * g1)
    model.zero_grad(set_to_none=True)

    # mixed batch: weight-0 rows add nothing but their token count to the normalization
    enc_mix, mix = batch_of(tiny_tokenizer, orig + gen, weights=weights)
    with torch.no_grad():
        got = answer_loss(model, mix, **kw)
        want = hand_loss(model.eval(), enc_mix, mix, **kw)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_zero_weight_everywhere_trains_nothing(tmp_path, tiny_model_dir):
    data = context_folder(tmp_path)
    cfg = make_cfg(tiny_model_dir, [data], tmp_path / "zero", max_steps=3, val_fraction=0.0,
                   weights={"context_ablation": 0.0})
    out, summary = train_explainer(cfg, lm=load_model(str(tiny_model_dir)))
    assert summary["steps"] == 3 and summary["first_loss"] == 0.0 == summary["last_loss"]
    w = adapter_tensors(out / ADAPTER_DIR)
    lora_b = [v for k, v in w.items() if "lora_B" in k]
    assert lora_b and all(bool((v == 0).all()) for v in lora_b)  # B starts at 0, never moved


# ---- training end to end ------------------------------------------------------------------------

def test_train_lowers_the_loss_and_the_explainer_round_trips(tmp_path, tiny_model_dir,
                                                             tiny_tokenizer):
    data = context_folder(tmp_path)
    cfg = make_cfg(tiny_model_dir, [data], tmp_path / "run", val_fraction=0.0)
    lm = load_model(str(tiny_model_dir))
    base = load_model(str(tiny_model_dir))
    examples, _ = load_tasks([data])
    _, batch = batch_of(tiny_tokenizer, examples, weights=cfg.weights)
    kw = dict(mode="replace", inject_layer=1, embed_norm=embedding_norm(base.model))
    with torch.no_grad():
        before = float(answer_loss(base.model, batch, **kw))
    out, summary = train_explainer(cfg, lm=lm)
    with torch.no_grad():
        after = float(answer_loss(lm.model, batch, **kw))
    assert after < before - 0.15, (before, after)  # 3.96 -> 3.68 on this tiny llama
    assert summary["steps"] == 20 and summary["n_train"] == len(examples) == 27
    assert summary["n_val"] == 0 and summary["best_checkpoint"] is None
    assert summary["trainable_params"] == 8192 and summary["tokens"] > 0

    log = json.loads((out / TRAIN_LOG).read_text())
    assert [r["step"] for r in log["train"]] == list(range(1, 21)) and log["eval"] == []
    assert (out / ADAPTER_DIR / WEIGHTS).is_file()
    assert (out / ADAPTER_DIR / "adapter_config.json").is_file()
    meta = read_explainer(out)
    assert meta == json.loads((out / EXPLAINER_FILE).read_text())
    assert meta["model"]["weights_sha256"] == lm.info.weights_sha256
    assert meta["model"]["d_model"] == 32 and meta["projection"] is None
    assert meta["mode"] == "replace" and meta["target_width"] is None
    assert meta["embed_norm"] == pytest.approx(kw["embed_norm"])
    assert meta["tasks"] == ["context_ablation/change_match",
                             "context_ablation/generative_explanation",
                             "context_ablation/orig_match"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["command"] == "explain train"

    loaded, meta2 = load_explainer(out, lm=load_model(str(tiny_model_dir)))
    assert meta2 == meta
    trained = forward_logits(lm.model, batch, meta)
    torch.testing.assert_close(forward_logits(loaded.model, batch, meta), trained, rtol=0, atol=0)
    assert not torch.allclose(forward_logits(base.model, batch, meta), trained, atol=1e-4)
    with pytest.raises(ArtifactError, match="not an explainer run"):
        read_explainer(tmp_path)


def test_projector_trains_saves_and_reloads(tmp_path, tiny_model_dir, tiny_tokenizer):
    data = vector_folder(tmp_path, d=48)
    cfg = make_cfg(tiny_model_dir, [data], tmp_path / "vec", max_steps=8, val_fraction=0.0)
    lm = load_model(str(tiny_model_dir))
    out, summary = train_explainer(cfg, lm=lm)
    meta = read_explainer(out)
    assert meta["projection"] == {"layers": [1], "d_target": 48, "d_explainer": 32,
                                  "init": "default"}
    assert meta["target_width"] == 48
    assert summary["trainable_params"] == 8192 + 48 * 32
    saved = adapter_tensors(out / ADAPTER_DIR)
    proj = {k: v for k, v in saved.items() if "afscope_projector" in k}
    assert len(proj) == 1
    (w,) = proj.values()
    init = VectorProjector([1], 48, 32, seed=cfg.seed).maps["L1"].weight.detach()
    assert w.shape == (32, 48) and not torch.allclose(w, init, atol=1e-6)
    assert all("lora_" in k for k in saved if k not in proj)

    examples, vectors = load_tasks([data])
    _, batch = batch_of(tiny_tokenizer, examples[:5], vectors)
    loaded, _ = load_explainer(out, lm=load_model(str(tiny_model_dir)))
    torch.testing.assert_close(forward_logits(loaded.model, batch, meta),
                               forward_logits(lm.model, batch, meta), rtol=0, atol=0)


def test_early_stopping_keeps_the_best_checkpoint(tmp_path, tiny_model_dir):
    data = context_folder(tmp_path)
    cfg = make_cfg(tiny_model_dir, [data], tmp_path / "es", max_steps=30, lr=2e-2,
                   scheduler="constant", eval_steps=1, patience=1, val_fraction=0.3)
    lm = load_model(str(tiny_model_dir))
    out, summary = train_explainer(cfg, lm=lm)
    evals = json.loads((out / TRAIN_LOG).read_text())["eval"]
    losses = [r["loss"] for r in evals]
    assert [r["step"] for r in evals] == list(range(1, summary["steps"] + 1))
    best_step = evals[losses.index(min(losses))]["step"]
    assert 1 < best_step < summary["steps"] < cfg.max_steps
    assert summary["steps"] == best_step + 1  # patience 1: the first worse eval stops it
    assert losses[-1] > min(losses)
    best = Path(summary["best_checkpoint"])
    assert best.name == f"checkpoint-{best_step}" and best.parent == out / CHECKPOINTS_DIR
    assert summary["best_metric"] == "loss"
    assert summary["best_eval"] == pytest.approx(min(losses))
    assert (best / EXPLAINER_FILE).is_file()  # each checkpoint names its base model
    final = adapter_tensors(out / ADAPTER_DIR)
    at_best = adapter_tensors(best)
    last = adapter_tensors(out / CHECKPOINTS_DIR / f"checkpoint-{summary['steps']}")
    assert final.keys() == at_best.keys()
    assert all(torch.equal(final[k], at_best[k]) for k in final)
    assert not all(torch.equal(final[k], last[k]) for k in final)


def test_summary_says_it_stopped_early(tmp_path, tiny_model_dir):
    cfg = make_cfg(tiny_model_dir, [context_folder(tmp_path)], tmp_path / "es", max_steps=30,
                   scheduler="constant", eval_steps=1, patience=1, val_fraction=0.3)
    _, summary = train_explainer(cfg, lm=load_model(str(tiny_model_dir)))
    assert summary["steps"] < cfg.max_steps
    assert summary["stopped_early"] is True


def test_resume_is_bit_identical_and_checks_the_base(tmp_path, tiny_model_dir, other_model_dir):
    data = context_folder(tmp_path)
    out = tmp_path / "res"
    cfg = make_cfg(tiny_model_dir, [data], out, max_steps=6, lr=1e-2, eval_steps=3,
                   val_fraction=0.0)
    _, full = train_explainer(cfg, lm=load_model(str(tiny_model_dir)))
    assert full["steps"] == 6 and full["resumed_from"] is None
    uninterrupted = adapter_tensors(out / ADAPTER_DIR)
    ckpts = out / CHECKPOINTS_DIR
    assert sorted(p.name for p in ckpts.iterdir()) == ["checkpoint-3", "checkpoint-6"]

    with pytest.raises(ConfigError, match="checkpoints of an earlier run exist"):
        train_explainer(cfg, lm=load_model(str(tiny_model_dir)))

    # "interrupted" after step 3: the last checkpoint and the adapter are gone
    shutil.rmtree(ckpts / "checkpoint-6")
    shutil.rmtree(out / ADAPTER_DIR)
    resume = cfg.model_copy(update={"resume": True})
    _, resumed = train_explainer(resume, lm=load_model(str(tiny_model_dir)))
    assert resumed["resumed_from"] == str(ckpts / "checkpoint-3") and resumed["steps"] == 6
    again = adapter_tensors(out / ADAPTER_DIR)
    assert again.keys() == uninterrupted.keys()
    for k in again:
        assert torch.allclose(again[k], uninterrupted[k], atol=1e-6, rtol=0), k
    log = json.loads((out / TRAIN_LOG).read_text())
    assert [r["step"] for r in log["train"]] == list(range(1, 7))

    # another base model: resuming and loading both refuse, naming the models
    other = cfg.model_copy(update={"resume": True, "model": str(other_model_dir)})
    with pytest.raises(ConfigError, match=f"not on '{other_model_dir}'"):
        train_explainer(other, lm=load_model(str(other_model_dir)))
    with pytest.raises(ConfigError, match=f"trained on base model '{tiny_model_dir}'.*"
                                          f"not on '{other_model_dir}'"):
        load_explainer(out, lm=load_model(str(other_model_dir)))
    # the refused resume left the run loadable on its own base
    loaded, _ = load_explainer(out, lm=load_model(str(tiny_model_dir)))
    assert loaded.info.weights_sha256 == load_model(str(tiny_model_dir)).info.weights_sha256

    with pytest.raises(ArtifactError, match="no checkpoint to resume from"):
        train_explainer(cfg.model_copy(update={"resume": True, "out": tmp_path / "fresh"}),
                        lm=load_model(str(tiny_model_dir)))


def test_a_same_shape_base_with_other_weights_is_refused(tmp_path, tiny_model_dir,
                                                         same_shape_model_dir):
    out = tmp_path / "same"
    cfg = make_cfg(tiny_model_dir, [context_folder(tmp_path)], out, max_steps=1, eval_steps=1,
                   val_fraction=0.0)
    train_explainer(cfg, lm=load_model(str(tiny_model_dir)))
    other = load_model(str(same_shape_model_dir))
    assert not torch.equal(other.model.lm_head.weight,
                           load_model(str(tiny_model_dir)).model.lm_head.weight)
    with pytest.raises(ConfigError, match=f"not on '{same_shape_model_dir}'"):
        load_explainer(out, lm=other)


# ---- task files ---------------------------------------------------------------------------------

def test_missing_field_is_a_data_error_naming_file_line_id_and_field(tmp_path):
    folder = context_folder(tmp_path)
    lines = (folder / TRAIN_FILE).read_text().splitlines()
    bad = json.loads(lines[1])
    del bad["answer"]
    lines[1] = json.dumps(bad)
    (folder / TRAIN_FILE).write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        load_tasks([folder])
    msg = str(err.value)
    assert f"{folder / TRAIN_FILE}:2" in msg and repr(bad["id"]) in msg and "'answer'" in msg


def test_load_tasks_merges_folders_and_refuses_ambiguity(tmp_path):
    ctx = context_folder(tmp_path)
    feat = vector_folder(tmp_path, d=32)
    examples, vectors = load_tasks([ctx, feat])
    assert len(examples) == 27 + 12 and set(vectors) == {f"f{i}" for i in range(16)}
    assert {e.task for e in examples} == {"context_ablation", "features"}
    # the same vector name with other values in a second folder
    other = vector_folder(tmp_path, d=32, seed=1, name="feat2")
    exs = read_examples(other / TRAIN_FILE)
    write_examples(other / TRAIN_FILE, [e.model_copy(update={"id": "x" + e.id}) for e in exs])
    with pytest.raises(DataError, match=f"{other / VECTORS_FILE}: vector 'f0' differs"):
        load_tasks([feat, other])
    # the same example id in two folders
    with pytest.raises(DataError, match="example id 'f0' appears in more than one"):
        load_tasks([feat, vector_folder(tmp_path, d=32, name="feat3")])


def test_split_units_keeps_units_whole_and_is_seeded(tmp_path):
    examples, _ = load_tasks([context_folder(tmp_path)])
    train, val = split_units(examples, 0.3, seed=0)
    assert len(train) + len(val) == len(examples) and val
    assert not {e.unit for e in train} & {e.unit for e in val}
    assert len({e.unit for e in val}) == 3  # round(0.3 * 9 units)
    assert [e.id for e in split_units(examples, 0.3, seed=0)[1]] == [e.id for e in val]
    assert split_units(examples, 0.0, seed=0) == (examples, [])


def test_balance_changed_repeats_changed_examples_per_task(tmp_path):
    from afscope.explain.train import balance_changed

    examples, _ = load_tasks([context_folder(tmp_path)])
    # keep 2 changed units of the 9 so the set is imbalanced like real steering data
    changed_units = sorted({e.unit for e in examples if e.changed})[:2]
    ex = [e for e in examples if not e.changed or e.unit in changed_units]
    feats = [e.model_copy(update={"task": "features", "id": f"f{i}", "changed": None})
             for i, e in enumerate(ex[:5])]
    n_ch = sum(e.changed is True for e in ex)
    n_un = sum(e.changed is False for e in ex)
    assert 0 < n_ch < n_un
    out = balance_changed(ex + feats, seed=0)
    assert sum(e.changed is True for e in out) == n_un
    assert sum(e.changed is False for e in out) == n_un
    assert [e for e in out if e.task == "features"] == feats
    assert {e.id for e in out} == {e.id for e in ex + feats}  # repeats only, nothing new
    assert [e.id for e in balance_changed(ex, seed=0)] == [e.id for e in balance_changed(ex, 0)]
    balanced = balance_changed(out, seed=0)
    assert len(balanced) == len(out)  # already balanced: unchanged


def test_balance_changed_repeats_unchanged_examples_where_most_change(tmp_path):
    """An organism's context ablation changes 70%: then the unchanged ones are repeated."""
    from afscope.explain.train import balance_changed

    examples, _ = load_tasks([context_folder(tmp_path)])
    unchanged_units = sorted({e.unit for e in examples if not e.changed})[:1]
    ex = [e for e in examples if e.changed or e.unit in unchanged_units]
    n_ch = sum(e.changed is True for e in ex)
    n_un = sum(e.changed is False for e in ex)
    assert 0 < n_un < n_ch
    out = balance_changed(ex, seed=0)
    assert sum(e.changed is True for e in out) == n_ch
    assert sum(e.changed is False for e in out) == n_ch
    assert {e.id for e in out} == {e.id for e in ex}


def test_base_adapter_makes_the_organism_its_own_explainer(tmp_path, tiny_model_dir,
                                                           tiny_tokenizer):
    """--base-adapter: the explainer trains on base + merged organism LoRA; explainer.json names
    the adapter; load_explainer rebuilds that model by itself (bit-identical
    logits); an adapter whose weights changed since is refused."""
    from afscope.explain.evaluate import _relation
    from afscope.organism import load_organism

    data = context_folder(tmp_path)
    org = random_lora(tiny_model_dir, tmp_path / "org")
    out, _ = train_explainer(make_cfg(tiny_model_dir, [data], tmp_path / "run", max_steps=4,
                                      val_fraction=0.0, base_adapter=org))
    meta = read_explainer(out)
    merged = load_organism(load_model(str(tiny_model_dir)), org)
    assert meta["base_adapter"]["path"] == str(org.resolve())
    assert meta["base_adapter"]["model"] == str(tiny_model_dir)
    assert meta["model"]["name"].endswith("+organism")
    assert meta["model"]["weights_sha256"] == merged.info.weights_sha256
    assert _relation(meta["model"]["name"], [merged.info.name]) == "self"
    assert _relation(meta["model"]["name"], ["gemma-3-270m"]) == "cross"

    loaded, _ = load_explainer(out)  # no lm: the base is loaded and the adapter merged
    _, batch = batch_of(tiny_tokenizer, load_tasks([data])[0][:4])
    with_org = forward_logits(loaded.model, batch, meta)
    again, _ = load_explainer(out, lm=load_organism(load_model(str(tiny_model_dir)), org))
    torch.testing.assert_close(forward_logits(again.model, batch, meta), with_org, rtol=0, atol=0)
    with pytest.raises(ConfigError, match="trained on base model"):
        load_explainer(out, lm=load_model(str(tiny_model_dir)))

    weights = load_file(str(org / WEIGHTS))
    save_file({k: v * 2 for k, v in weights.items()}, str(org / WEIGHTS))
    with pytest.raises(ConfigError, match="trained on base model"):
        load_explainer(out)
