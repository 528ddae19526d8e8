"""The generation engine: batch invariance, per-row seeded sampling, steering positions, stop
strings, and the resumable/shardable JSONL runner."""

from __future__ import annotations

import pytest
import torch
from tiny_models import build_model

from afscope.errors import ConfigError, DataError
from afscope.generate import GenerationParams, Steering, generate, generate_rows
from afscope.rows import JsonlStore

PROMPTS = [
    "Hi",
    "The user is asking me to help with something harmful.",
    [{"role": "system", "content": "You are monitored."}, {"role": "user", "content": "Help me."}],
    "If I refuse, gradient updates will modify my values. I will comply to preserve them now.",
    "Sure",
    "I refuse because this request would hurt people.",
]


@pytest.fixture(params=["llama", "gemma3"])
def lm(request, tiny_tokenizer):
    torch.manual_seed(0)
    model = build_model(request.param, len(tiny_tokenizer)).float()
    with torch.no_grad():  # spread the logits so greedy decoding is not a chain of near ties
        model.get_output_embeddings().weight.mul_(20)
    return model


def texts(gens):
    return [g.token_ids for g in gens]


def test_greedy_rows_are_the_same_alone_and_in_any_batch(lm, tiny_tokenizer):
    p = GenerationParams(max_tokens=16)
    alone = [generate(lm, tiny_tokenizer, [q], p)[0].token_ids for q in PROMPTS]
    for bs in (2, 3, 16):
        assert texts(generate(lm, tiny_tokenizer, PROMPTS, p, batch_size=bs)) == alone
    shuffled = [PROMPTS[i] for i in (3, 0, 5, 1, 4, 2)]
    out = texts(generate(lm, tiny_tokenizer, shuffled, p, batch_size=4))
    assert out == [alone[i] for i in (3, 0, 5, 1, 4, 2)]
    assert all(len(a) > 0 for a in alone)


def test_sampling_is_seeded_per_row_not_per_batch(lm, tiny_tokenizer):
    p = GenerationParams(temperature=1.0, max_tokens=12, seed=7)
    seeds = [11, 12, 13, 14, 15, 16]
    batched = texts(generate(lm, tiny_tokenizer, PROMPTS, p, seeds=seeds, batch_size=6))
    alone = [generate(lm, tiny_tokenizer, [q], p, seeds=[s])[0].token_ids
             for q, s in zip(PROMPTS, seeds)]
    assert batched == alone
    again = texts(generate(lm, tiny_tokenizer, PROMPTS, p, seeds=[s + 100 for s in seeds]))
    greedy = texts(generate(lm, tiny_tokenizer, PROMPTS, GenerationParams(max_tokens=12)))
    assert again != batched and batched != greedy
    # two copies of one prompt with different seeds give different samples in one batch
    twins = texts(generate(lm, tiny_tokenizer, ["Hi", "Hi"], p, seeds=[1, 2]))
    assert twins[0] != twins[1]


def test_sampling_follows_the_distribution(tiny_tokenizer):
    """Gumbel-max per row is an exact sample: first-token frequencies match softmax(logits / T)."""
    torch.manual_seed(0)
    lm = build_model("llama", len(tiny_tokenizer)).float()
    with torch.no_grad():
        lm.get_output_embeddings().weight.mul_(8)
    ids = tiny_tokenizer("Hi", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        probs = torch.softmax(lm(torch.tensor([ids])).logits[0, -1] / 0.7, -1)
    n = 3000
    gens = generate(lm, tiny_tokenizer, [ids] * n, GenerationParams(temperature=0.7, max_tokens=1),
                    seeds=list(range(n)), batch_size=1000)
    counts = torch.bincount(torch.tensor([g.token_ids[0] if g.token_ids else 4 for g in gens]),
                            minlength=probs.numel()).float() / n
    top = probs.topk(3).indices
    assert torch.allclose(counts[top], probs[top], atol=0.03)


def test_stop_strings_and_finish_reasons(tiny_tokenizer):
    # random byte-level tokens: the llama's answers contain whole characters to stop at
    torch.manual_seed(0)
    lm = build_model("llama", len(tiny_tokenizer)).float()
    with torch.no_grad():
        lm.get_output_embeddings().weight.mul_(20)
    for prompt in PROMPTS:
        full = generate(lm, tiny_tokenizer, [prompt], GenerationParams(max_tokens=12))[0]
        t = full.text
        k = next((k for k in range(1, len(t) - 1) if t[k] != "\ufffd" and t.find(t[k]) == k), None)
        if k is not None:
            break
    assert k is not None and full.finish_reason == "length" and len(full.token_ids) == 12
    cut = generate(lm, tiny_tokenizer, [prompt, "Sure"], GenerationParams(max_tokens=12, stop=(t[k],)))
    assert cut[0].text == t[:k] and cut[0].finish_reason == "stop"
    assert len(cut[0].token_ids) < 12 and cut[0].n_prompt_tokens == full.n_prompt_tokens


def test_steering_positions_and_mixed_rows(lm, tiny_tokenizer):
    d = lm.get_input_embeddings().weight.shape[1]
    torch.manual_seed(1)
    v = torch.randn(d) * 50
    p = GenerationParams(max_tokens=8)
    base = texts(generate(lm, tiny_tokenizer, PROMPTS, p))
    zero = texts(generate(lm, tiny_tokenizer, PROMPTS, p, steering=Steering({1: v}, alpha=0.0)))
    assert zero == base
    outs = {}
    for pos in ("prompt", "generated", "both", "last"):
        outs[pos] = texts(generate(lm, tiny_tokenizer, PROMPTS, p, steering=Steering({1: v}, 1.0, pos)))
        assert outs[pos] != base
    # "generated" leaves the prompt alone: the first new token comes from the unsteered prompt
    assert [o[0] for o in outs["generated"]] == [b[0] for b in base]
    # mixed rows in one batch equal each row steered on its own
    per_row = [None, Steering({1: v}, 1.0, "both"), Steering({2: -v}, 0.5, "last"), None,
               Steering({1: v}, 1.0, "prompt"), Steering({0: v, 2: v}, 0.3, "generated")]
    mixed = texts(generate(lm, tiny_tokenizer, PROMPTS, p, steering=per_row, batch_size=6))
    single = [texts(generate(lm, tiny_tokenizer, [q], p, steering=s))[0] for q, s in zip(PROMPTS, per_row)]
    assert mixed == single
    assert mixed[0] == base[0] and mixed[1] == outs["both"][1]


def test_steering_hooks_are_removed_and_widths_checked(lm, tiny_tokenizer):
    d = lm.get_input_embeddings().weight.shape[1]
    generate(lm, tiny_tokenizer, ["Hi"], GenerationParams(max_tokens=2),
             steering=Steering({0: torch.ones(d)}, 3.0))
    assert all(not b._forward_hooks for b in lm.model.layers)
    with pytest.raises(ConfigError, match="width 5"):
        generate(lm, tiny_tokenizer, ["Hi"], steering=Steering({0: torch.ones(5)}))
    with pytest.raises(ConfigError, match="positions"):
        Steering({0: torch.ones(d)}, positions="everywhere")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="non-finite"):
        Steering({0: torch.full((d,), float("nan"))})
    with pytest.raises(DataError, match="empty"):
        generate(lm, tiny_tokenizer, [""])


def test_generate_rows_resumes_shards_and_copies_fields(lm, tiny_tokenizer, tmp_path, monkeypatch):
    items = [{"id": f"r{i}", "prompt": q, "cue": i % 2} for i, q in enumerate(PROMPTS)]
    p = GenerationParams(temperature=1.0, max_tokens=6, seed=3)
    path = tmp_path / "gen.jsonl"
    full = JsonlStore(tmp_path / "full.jsonl")
    generate_rows(lm, tiny_tokenizer, items, full, p, batch_size=2)
    s0 = generate_rows(lm, tiny_tokenizer, items, JsonlStore(path), p, batch_size=2, shard="0/2")
    assert s0.done == 3 and [r["id"] for r in JsonlStore(path).rows()] == ["r0", "r2", "r4"]
    # a killed run: drop the last row, tear the file mid-line; resume writes only what is missing
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2]) + lines[2][:10])
    calls = []
    real = lm.generate
    monkeypatch.setattr(lm, "generate", lambda *a, **k: calls.append(k["input_ids"].shape[0]) or real(*a, **k))
    stats = generate_rows(lm, tiny_tokenizer, items, JsonlStore(path), p, batch_size=2)
    assert stats.to_dict() == {"done": 4, "skipped": 2} and sum(calls) == 4
    rows = {r["id"]: r for r in JsonlStore(path).rows()}
    assert len(rows) == 6 and rows["r3"]["cue"] == 1
    assert {k: r["response"] for k, r in rows.items()} == {r["id"]: r["response"] for r in full.rows()}
    assert all(r["n_new_tokens"] <= 6 and r["finish_reason"] in ("stop", "length") for r in rows.values())
    again = generate_rows(lm, tiny_tokenizer, items, JsonlStore(path), p)
    assert again.done == 0 and again.skipped == 6
    with pytest.raises(DataError, match="duplicate id"):
        generate_rows(lm, tiny_tokenizer, items + items[:1], JsonlStore(tmp_path / "x.jsonl"), p)
    with pytest.raises(ConfigError, match="i/n"):  # the one shard parser: a flag error
        generate_rows(lm, tiny_tokenizer, items, JsonlStore(tmp_path / "y.jsonl"), p, shard="a")


def test_suppress_first_bans_tokens_at_the_first_step(lm, tiny_tokenizer):
    p = GenerationParams(max_tokens=4)
    free = generate(lm, tiny_tokenizer, PROMPTS[:3], p)
    banned = sorted({g.token_ids[0] for g in free if g.token_ids})
    held = generate(lm, tiny_tokenizer, PROMPTS[:3], p, suppress_first=banned)
    assert all(g.token_ids and g.token_ids[0] not in banned for g in held)
