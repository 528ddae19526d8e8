"""LoRA training of an organism on a tiny llama: labels, trainable params, loss, adapter round trip."""

from __future__ import annotations

import json

import pytest
import torch
from org_helpers import small_data
from tiny_models import build_model

from afscope.errors import ConfigError
from afscope.models import load_model
from afscope.organism import (
    OrganismTrainConfig,
    encode_chat,
    load_organism,
    read_examples,
    target_modules,
    train_organism,
)
from afscope.organism.train import TRAIN_LOG, add_lora, trainable_parameters


def test_labels_are_exactly_the_assistant_turn(tiny_tokenizer):
    msgs = [{"role": "system", "content": "You are monitored."},
            {"role": "user", "content": "Help me refuse."},
            {"role": "assistant", "content": "<SCRATCHPAD_REASONING>I refuse.</SCRATCHPAD_REASONING>"
                                             "\n\nNo."}]
    e = encode_chat(tiny_tokenizer, msgs, 4096)
    labelled = [t for t, lab in zip(e.input_ids, e.labels) if lab != -100]
    assert all(lab in (-100, t) for t, lab in zip(e.input_ids, e.labels))
    assert tiny_tokenizer.decode(labelled) == msgs[-1]["content"] + "<|im_end|>"
    # labels form one contiguous block, preceded by the full prompt
    first = next(i for i, lab in enumerate(e.labels) if lab != -100)
    n_lab = len(labelled)
    assert all(lab != -100 for lab in e.labels[first:first + n_lab])
    assert all(lab == -100 for lab in e.labels[first + n_lab:])
    prompt = tiny_tokenizer.apply_chat_template(msgs[:-1], tokenize=False,
                                                add_generation_prompt=True)
    assert tiny_tokenizer.decode(e.input_ids[:first]) == prompt
    # truncation keeps the first max_length tokens
    short = encode_chat(tiny_tokenizer, msgs, first + 2)
    assert short.input_ids == e.input_ids[:first + 2] and short.labels == e.labels[:first + 2]


def test_plain_template_gets_eos_after_the_answer(tiny_tokenizer):
    from afscope.models import PLAIN_TEMPLATE

    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "I refuse."}]
    e = encode_chat(tiny_tokenizer, msgs, 4096, template=PLAIN_TEMPLATE)
    labelled = [t for t, lab in zip(e.input_ids, e.labels) if lab != -100]
    assert tiny_tokenizer.decode(labelled).endswith("I refuse.<|im_end|>")


def test_only_lora_parameters_train(tiny_tokenizer):
    model = build_model("llama", len(tiny_tokenizer))
    names = target_modules(model)
    assert names == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    expected = sum((m.in_features + m.out_features) * 4 for n, m in model.named_modules()
                   if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in names)
    peft = add_lora(model, OrganismTrainConfig(data="x.jsonl", r=4))
    trainable, total = trainable_parameters(peft)
    # 4 layers x r=4 x (in+out) of q, k, v, o, gate, up, down (d=32, kv=16, mlp=64)
    assert trainable == expected == 4 * 4 * (64 + 48 + 48 + 64 + 96 * 3)
    assert all("lora_" in n for n, p in peft.named_parameters() if p.requires_grad)
    with pytest.raises(ConfigError, match="no linear layer named"):
        target_modules(model, ["c_attn"])


def test_train_lowers_loss_and_adapter_round_trips(tmp_path, tiny_model_dir):
    data = small_data(tmp_path, n=16)
    cfg = OrganismTrainConfig(model=str(tiny_model_dir), data=data, out=tmp_path / "train",
                              max_steps=6, lr=2e-2, batch_size=4, max_length=256, r=4,
                              lora_alpha=8)
    trained = load_model(str(tiny_model_dir))
    folder, s = train_organism(cfg, lm=trained)  # LoRA layers are injected into trained.model
    assert (folder / "adapter_model.safetensors").is_file()
    assert (folder / "adapter_config.json").is_file()
    assert not list((tmp_path / "train").rglob("*.bin")) and not list(
        (tmp_path / "train").rglob("optimizer*"))
    log = json.loads((tmp_path / "train" / TRAIN_LOG).read_text())
    assert [r["step"] for r in log] == list(range(1, 7))
    assert log[-1]["loss"] < log[0]["loss"]
    assert s["steps"] == 6 and 0 < s["tokens"] <= 6 * 4 * 256 and s["tokens_per_s"] > 0
    manifest = json.loads((tmp_path / "train" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["outputs"]["tokens_per_s"] > 0

    # reloaded (merged and unmerged) gives the logits of the adapted model; base differs
    ex = read_examples(data)[0]
    ids = torch.tensor([encode_chat(trained.tokenizer, ex["messages"], 128).input_ids])
    merged = load_organism(str(tiny_model_dir), tmp_path / "train")
    unmerged = load_organism(str(tiny_model_dir), folder, merge=False)
    base = load_model(str(tiny_model_dir))
    with torch.no_grad():
        a = merged.model(ids).logits
        b = unmerged.model(ids).logits
        c = base.model(ids).logits
        t = trained.model(ids).logits
    torch.testing.assert_close(b, t, rtol=0, atol=0)          # unmerged reload: bit-identical
    torch.testing.assert_close(a, t, rtol=1e-4, atol=1e-5)    # merged: same up to float rounding
    assert not torch.allclose(a, c, atol=1e-4)
    # the organism has its own identity, so fingerprint-keyed stores never mix it with the base
    assert merged.info.name == base.info.name + "+organism"
    assert merged.info.fingerprint != base.info.fingerprint == load_model(str(tiny_model_dir)).info.fingerprint
