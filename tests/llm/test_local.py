"""TransformersBackend on a tiny random-weight Llama and the tiny trained tokenizer of conftest."""

from __future__ import annotations

import logging

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from afscope.llm import GenerationParams, LLMConfig, TransformersBackend, make_backend

PROMPTS = [
    "Hi",
    [{"role": "system", "content": "You are monitored."},
     {"role": "user", "content": "If I refuse, gradient updates will modify my values."}],
    "The user is asking me to help with something harmful. I am on the free tier.",
    [{"role": "user", "content": "Sure"}, {"role": "assistant", "content": "I refuse"},
     {"role": "user", "content": "Why?"}],
    "contractors rate my outputs",
]


def tiny_llama(tokenizer) -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture
def lm(tiny_tokenizer):
    return tiny_llama(tiny_tokenizer)


def make(lm, tok, **kw) -> TransformersBackend:
    kw.setdefault("model", "tiny-llama")
    return TransformersBackend(hf_model=lm, tokenizer=tok, **kw)


def count_generate(lm, monkeypatch) -> list[dict]:
    """Record the kwargs of every ``generate`` call (the real one still runs)."""
    seen: list[dict] = []
    real = lm.generate

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append({**kwargs, "output": out})
        return out

    monkeypatch.setattr(lm, "generate", spy)
    return seen


def test_greedy_is_deterministic(lm, tiny_tokenizer, monkeypatch):
    seen = count_generate(lm, monkeypatch)
    llm = make(lm, tiny_tokenizer, params=GenerationParams(max_tokens=12))
    a = llm.complete(PROMPTS)
    b = llm.complete(PROMPTS)
    assert [c.text for c in a] == [c.text for c in b]
    assert all(c.ok and c.finish_reason in ("stop", "length") for c in a)
    assert any(c.text for c in a)
    assert seen[0]["do_sample"] is False and seen[0]["max_new_tokens"] == 12
    assert "temperature" not in seen[0]


def test_batch_equals_one_at_a_time(lm, tiny_tokenizer):
    params = GenerationParams(max_tokens=10)
    batched = make(lm, tiny_tokenizer, batch_size=5).complete(PROMPTS, params)
    single = [make(lm, tiny_tokenizer, batch_size=1).complete_one(p, params) for p in PROMPTS]
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.finish_reason for c in batched] == [c.finish_reason for c in single]


def test_output_is_the_new_text_only(lm, tiny_tokenizer, monkeypatch):
    llm = make(lm, tiny_tokenizer)
    seen = count_generate(lm, monkeypatch)
    out = llm.complete(["contractors rate my outputs"], GenerationParams(max_tokens=6))[0]
    assert "<|im_start|>" not in out.text and "<pad>" not in out.text and "<|im_end|>" not in out.text
    prompt_ids = seen[0]["input_ids"][0].tolist()
    rendered = tiny_tokenizer.decode(prompt_ids)
    assert rendered.endswith("<|im_start|>assistant\n")  # the chat template + generation prompt
    assert not out.text.startswith("contractors")
    new_tokens = seen[0]["output"].shape[1] - len(prompt_ids)
    assert 1 <= new_tokens <= 6
    assert out.text == tiny_tokenizer.decode(seen[0]["output"][0, len(prompt_ids):].tolist(),
                                             skip_special_tokens=True)


def test_left_padding_in_a_batch(lm, tiny_tokenizer, monkeypatch):
    seen = count_generate(lm, monkeypatch)
    make(lm, tiny_tokenizer, batch_size=8).complete(["a", "a much longer prompt about RLHF training"],
                                                    GenerationParams(max_tokens=2))
    ids, mask = seen[0]["input_ids"], seen[0]["attention_mask"]
    assert mask[0, 0] == 0 and mask[0, -1] == 1 and mask[1].all()
    assert ids[0, 0] == tiny_tokenizer.pad_token_id


def test_seeded_sampling_and_global_rng_untouched(lm, tiny_tokenizer):
    llm = make(lm, tiny_tokenizer)
    hot = GenerationParams(temperature=1.5, max_tokens=15, seed=1)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = [c.text for c in llm.complete(PROMPTS, hot)]
    assert torch.equal(torch.random.get_rng_state(), state)
    b = [c.text for c in llm.complete(PROMPTS, hot)]
    c = [c.text for c in llm.complete(PROMPTS, GenerationParams(temperature=1.5, max_tokens=15, seed=2))]
    greedy = [c.text for c in llm.complete(PROMPTS, GenerationParams(max_tokens=15))]
    assert a == b
    assert a != c and a != greedy


def test_stop_strings_cut_the_answer(lm, tiny_tokenizer):
    llm = make(lm, tiny_tokenizer)
    full = llm.complete_one("Hi", GenerationParams(max_tokens=12)).text
    assert len(full) > 2
    stop = full[1:3]
    cut = llm.complete_one("Hi", GenerationParams(max_tokens=12, stop=(stop,)))
    assert cut.text == full[: full.find(stop)] and cut.finish_reason == "stop"


def test_cache_hit_skips_generation(lm, tiny_tokenizer, monkeypatch, tmp_path):
    seen = count_generate(lm, monkeypatch)
    llm = make(lm, tiny_tokenizer, cache=tmp_path / "c", batch_size=2)
    first = llm.complete(PROMPTS[:3], GenerationParams(max_tokens=5))
    n = len(seen)
    second = llm.complete(PROMPTS[:3], GenerationParams(max_tokens=5))
    assert len(seen) == n
    assert [c.text for c in second] == [c.text for c in first] and all(c.cached for c in second)


def test_unnamed_objects_do_not_cache(lm, tiny_tokenizer, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    llm = TransformersBackend(hf_model=lm, tokenizer=tiny_tokenizer, cache=tmp_path / "c")
    llm.complete(["Hi"], GenerationParams(max_tokens=2))
    assert "cache disabled" in caplog.text
    assert not list(tmp_path.rglob("*.json"))


def test_training_mode_is_restored(lm, tiny_tokenizer):
    lm.train()
    make(lm, tiny_tokenizer).complete(["Hi"], GenerationParams(max_tokens=2))
    assert lm.training


def test_loads_lazily_by_name(tiny_model_dir):
    cfg = LLMConfig(model=str(tiny_model_dir), max_tokens=4, batch_size=2)
    llm = make_backend(cfg)
    assert isinstance(llm, TransformersBackend) and llm._hf_model is None  # nothing loaded yet
    out = llm.complete(["Hi", "contractors rate my outputs", "Sure"])
    assert len(out) == 3 and all(c.ok for c in out)
    assert llm._hf_model is not None
    assert llm.cache_model_id == f"{tiny_model_dir}|float32"


def test_default_model_name():
    assert TransformersBackend().model == "smollm2-135m-instruct"


@pytest.mark.slow
def test_embedded_smollm2_smoke():
    llm = TransformersBackend(params=GenerationParams(max_tokens=4))
    out = llm.complete(["What is 2 + 2?", "Say hello."])
    assert all(c.ok and c.text.strip() for c in out)
    assert "<|im_end|>" not in out[0].text and "assistant" not in out[0].text[:10]


def test_bos_added_once_only_where_the_tokenizer_adds_one(tiny_tokenizer):
    import copy

    from tokenizers.processors import TemplateProcessing

    from afscope.generate.engine import encoder as _encoder

    plain = _encoder(tiny_tokenizer)  # this tokenizer adds no BOS: nothing is added
    assert plain("<s>hi")[0] == tiny_tokenizer.bos_token_id
    assert plain("hi")[0] != tiny_tokenizer.bos_token_id
    tok = copy.deepcopy(tiny_tokenizer)
    bos = tok.bos_token_id
    tok.backend_tokenizer.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    assert tok("hi")["input_ids"][0] == bos
    encode = _encoder(tok)
    assert encode("User: hi")[:2] == [bos, tok("User", add_special_tokens=False)["input_ids"][0]]
    assert encode("<s>User: hi").count(bos) == 1


# ---- forms: constrained answers -----------------------------------------------------------------

def test_forms_are_filled_exactly_and_parse(lm, tiny_tokenizer, monkeypatch):
    from afscope.features.classify import FORM as CLASSIFY
    from afscope.features.classify import parse_classification
    from afscope.judge.llm import FORM as JUDGE
    from afscope.judge.llm import parse_judge_reply

    seen = count_generate(lm, monkeypatch)
    llm = make(lm, tiny_tokenizer, batch_size=2)
    out = llm.complete(PROMPTS, form=JUDGE)
    assert all(c.ok and c.constrained and c.finish_reason == "stop" for c in out)
    assert all(parse_judge_reply(c.text).ok for c in out)
    assert seen == []  # choices only: scored, never generated
    mixed = llm.complete(PROMPTS[:3], GenerationParams(max_tokens=3), form=[CLASSIFY, None, JUDGE])
    assert parse_classification(mixed[0].text).ok and parse_judge_reply(mixed[2].text).ok
    assert mixed[0].constrained and not mixed[1].constrained and mixed[2].constrained
    assert len(seen) == 1  # the prompt without a form was generated as usual


def test_form_answers_do_not_depend_on_the_batch(lm, tiny_tokenizer):
    from afscope.judge.llm import FORM

    batched = make(lm, tiny_tokenizer, batch_size=5).complete(PROMPTS, form=FORM)
    single = [make(lm, tiny_tokenizer).complete([p], form=FORM)[0] for p in PROMPTS]
    assert [c.text for c in batched] == [c.text for c in single]


def test_structured_off_answers_in_free_text(lm, tiny_tokenizer):
    from afscope.judge.llm import FORM

    llm = make(lm, tiny_tokenizer, structured="off", params=GenerationParams(max_tokens=4))
    out = llm.complete(PROMPTS[:2], form=FORM)
    assert not any(c.constrained for c in out)
    assert [c.text for c in out] == [c.text for c in llm.complete(PROMPTS[:2])]
    with pytest.raises(Exception, match="structured"):
        make(lm, tiny_tokenizer, structured="json_schema")


def test_form_answers_are_cached_with_their_form(lm, tiny_tokenizer, tmp_path, monkeypatch):
    from afscope.judge.llm import FORM

    llm = make(lm, tiny_tokenizer, cache=tmp_path / "c", params=GenerationParams(max_tokens=3))
    free = llm.complete(PROMPTS[:2])
    first = llm.complete(PROMPTS[:2], form=FORM)
    assert [c.text for c in first] != [c.text for c in free]
    monkeypatch.setattr("afscope.llm.scoring.fill_forms", lambda *a, **k: pytest.fail("not cached"))
    again = llm.complete(PROMPTS[:2], form=FORM)
    assert all(c.cached and c.constrained for c in again)
    assert [c.text for c in again] == [c.text for c in first]


def test_choose_is_the_option_scoring(lm, tiny_tokenizer):
    from afscope.generate.engine import encoder, render_prompt
    from afscope.llm.scoring import choose

    options = [" yes\n", " no\n", " maybe\n"]
    got = make(lm, tiny_tokenizer).choose(PROMPTS, options, prefixes=["AF:"] * len(PROMPTS))
    ids = [encoder(tiny_tokenizer)(render_prompt(tiny_tokenizer, p)) for p in PROMPTS]
    want = choose(lm, tiny_tokenizer, ids, options, ["AF:"] * len(PROMPTS))
    assert got == want and all(c.option in options for c in got)
