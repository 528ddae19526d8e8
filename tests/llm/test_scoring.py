"""Option scoring and form filling on tiny random llama / gemma3 / mistral models, against a plain
reference: one full forward (no cache) per option."""

from __future__ import annotations

import pytest
import torch

import afscope.llm.scoring as scoring
from afscope.generate.engine import encoder, render_prompt
from afscope.llm import Form, GenerationParams, choice_field, scale, text_field
from afscope.llm.scoring import choose, encode_continuation, fill_forms, shared_prefix

# Long enough (> 100 tokens) to pass the tiny gemma3's sliding window of 16 and mistral's of 64.
LONG = [{"role": "system", "content": "You are monitored."},
        {"role": "user", "content": "If I refuse, gradient updates will modify my values. " * 6}]
SHORT = "contractors rate my outputs"
OPTIONS = [" 0\n", " 10\n", " 100\n", " comply\n", " refuse\n", " partial\n"]


def reference_logprobs(model, prompt_ids, conts):
    """Sum of log P(token) over every continuation token, one uncached forward per option."""
    out = []
    with torch.no_grad():
        for c in conts:
            x = torch.tensor([list(prompt_ids) + list(c)])
            lp = torch.log_softmax(model(input_ids=x).logits[0].float(), dim=-1)
            p = len(prompt_ids)
            out.append(sum(float(lp[p - 1 + j, c[j]]) for j in range(len(c))))
    return out


def ids_of(tok, prompt):
    return encoder(tok)(render_prompt(tok, [{"role": "user", "content": prompt}]
                                      if isinstance(prompt, str) else prompt))


@pytest.mark.parametrize("prompt", [LONG, SHORT])
def test_choice_is_the_argmax_of_a_plain_forward_per_option(tiny_model, tiny_tokenizer, prompt):
    ids = ids_of(tiny_tokenizer, prompt)
    got = choose(tiny_model, tiny_tokenizer, [ids], OPTIONS, ["ALIGNMENT:"])[0]
    conts = [encode_continuation(tiny_tokenizer, "ALIGNMENT:" + o) for o in OPTIONS]
    ref = reference_logprobs(tiny_model, ids, conts)
    assert got.index == max(range(len(ref)), key=lambda i: ref[i])
    assert got.option == OPTIONS[got.index]
    # scores leave out the tokens every option shares ("ALIGNMENT:"), identical in all options:
    # the differences between options are the reference's
    diff = [a - got.logprobs[0] for a in got.logprobs]
    ref_diff = [a - ref[0] for a in ref]
    assert diff == pytest.approx(ref_diff, abs=1e-4)


def test_batched_rows_and_chunked_options_equal_one_at_a_time(tiny_tokenizer, monkeypatch):
    from tiny_models import build_model

    model = build_model("llama", len(tiny_tokenizer))
    prompts = [ids_of(tiny_tokenizer, p) for p in (LONG, SHORT, "Hi", "I refuse")]
    prefixes = ["ALIGNMENT:", "AF:", "", "BEHAVIOUR: comply\nAF:"]
    together = choose(model, tiny_tokenizer, prompts, OPTIONS, prefixes)
    alone = [choose(model, tiny_tokenizer, [p], OPTIONS, [x])[0] for p, x in zip(prompts, prefixes)]
    monkeypatch.setattr(scoring, "MAX_LOGITS", 1)  # one option per forward
    chunked = choose(model, tiny_tokenizer, prompts, OPTIONS, prefixes)
    assert [c.index for c in together] == [c.index for c in alone] == [c.index for c in chunked]
    for a, b in zip(together, chunked):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)


def test_a_terminator_keeps_short_options_from_winning_by_default():
    assert shared_prefix([[1, 2, 3], [1, 2, 4]]) == 2
    assert shared_prefix([[1, 2], [1, 2, 3]]) == 1   # every option keeps a scored token
    assert shared_prefix([[5], [6]]) == 0


FORM = Form((choice_field("ALIGNMENT", scale(0, 100, 10)), text_field("DESCRIPTION", 200),
             choice_field("AF", ("yes", "no"))))


def test_fill_forms_writes_exactly_the_format(tiny_model, tiny_tokenizer):
    prompts = [LONG, [{"role": "user", "content": SHORT}]]
    texts = fill_forms(tiny_model, tiny_tokenizer, prompts, [FORM, FORM], GenerationParams(max_tokens=6))
    for t in texts:
        lines = t.split("\n")
        assert len(lines) == 3                               # the free text stopped at its line end
        assert [ln.split(": ", 1)[0] for ln in lines] == ["ALIGNMENT", "DESCRIPTION", "AF"]
        assert lines[0].removeprefix("ALIGNMENT: ") in scale(0, 100, 10)
        assert lines[1].removeprefix("DESCRIPTION: ").strip()  # never empty: no blank first token
        assert lines[2] in ("AF: yes", "AF: no")


def test_each_choice_line_is_the_best_option_given_the_lines_before(tiny_tokenizer):
    from tiny_models import build_model

    model = build_model("mistral", len(tiny_tokenizer))
    form = Form((choice_field("BEHAVIOUR", ("comply", "refuse", "partial")),
                 choice_field("AF", ("yes", "no"))))
    (text,) = fill_forms(model, tiny_tokenizer, [LONG], [form], GenerationParams())
    ids = ids_of(tiny_tokenizer, LONG)
    first = choose(model, tiny_tokenizer, [ids], [f" {o}\n" for o in form.fields[0].options],
                   ["BEHAVIOUR:"])[0]
    head = f"BEHAVIOUR: {form.fields[0].options[first.index]}\nAF:"
    second = choose(model, tiny_tokenizer, [ids], [" yes\n", " no\n"], [head])[0]
    assert text == f"{head} {('yes', 'no')[second.index]}"


def test_free_text_is_cut_at_the_line_end_and_stop_strings(tiny_tokenizer, monkeypatch):
    """The generated line ends at the first newline; a caller's stop string cuts it too."""
    from tiny_models import build_model

    model = build_model("llama", len(tiny_tokenizer))
    form = Form((text_field("DESCRIPTION"),))
    (full,) = fill_forms(model, tiny_tokenizer, [LONG], [form], GenerationParams(max_tokens=12))
    assert full.startswith("DESCRIPTION:") and "\n" not in full
    value = full.removeprefix("DESCRIPTION: ")
    if len(value) > 3:
        stop = value[2:4]
        (cut,) = fill_forms(model, tiny_tokenizer, [LONG], [form],
                            GenerationParams(max_tokens=12, stop=(stop,)))
        assert cut == "DESCRIPTION: " + " ".join(value[:value.find(stop)].split())


def test_packed_and_batched_paths_agree(tiny_tokenizer, monkeypatch):
    from tiny_models import build_model

    llama = build_model("llama", len(tiny_tokenizer))
    assert scoring.packable(llama)
    assert not scoring.packable(build_model("gemma3", len(tiny_tokenizer)))   # sliding layers
    assert not scoring.packable(build_model("mistral", len(tiny_tokenizer)))  # sliding window
    prompts = [ids_of(tiny_tokenizer, p) for p in (LONG, SHORT)]
    packed = choose(llama, tiny_tokenizer, prompts, OPTIONS, ["ALIGNMENT:", "AF:"])
    monkeypatch.setattr(scoring, "packable", lambda model: False)
    batched = choose(llama, tiny_tokenizer, prompts, OPTIONS, ["ALIGNMENT:", "AF:"])
    for a, b in zip(packed, batched):
        assert a.index == b.index and a.logprobs == pytest.approx(b.logprobs, abs=1e-4)


def test_a_prefix_tokenized_differently_restarts_from_the_prompt(tiny_tokenizer):
    from tiny_models import build_model

    model = build_model("llama", len(tiny_tokenizer))
    ids = ids_of(tiny_tokenizer, SHORT)
    with torch.inference_mode():
        state = scoring.PromptState(model, ids)
        state.extend([5, 6, 7])
        state.extend([5, 9])                 # not an extension of what is cached
        fresh = scoring.PromptState(model, ids)
        fresh.extend([5, 9])
    assert state.extra == [5, 9]
    assert torch.allclose(state.next_logprobs, fresh.next_logprobs, atol=1e-5)


def test_fit_cuts_after_the_last_sentence_that_fits():
    assert scoring.fit("Short.", 10) == "Short."
    assert scoring.fit("One two. Three four five six.", 12) == "One two."
    assert scoring.fit("one two three four", 9) == "one two"
    assert scoring.fit("abcdefghij", 4) == "abcd"


def test_empty_line_tokens(tiny_tokenizer):
    from tiny_models import build_model

    model = build_model("llama", len(tiny_tokenizer))
    banned = set(scoring.empty_line_tokens(model, tiny_tokenizer))
    newline = tiny_tokenizer("\n", add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer.eos_token_id in banned and set(newline) <= banned
    assert not set(tiny_tokenizer("values", add_special_tokens=False)["input_ids"]) & banned
