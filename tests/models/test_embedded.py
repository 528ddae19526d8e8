"""Smoke tests of the embedded real models (slow: first run fetches and converts the GGUFs)."""

import json

import pytest
import torch

from afscope.models import (
    EMBEDDED,
    is_prepared,
    load_model,
    record_residual,
    render_chat,
)
from afscope.models.embedded import MODEL_INFO, prepared_path

pytestmark = pytest.mark.slow


def test_smollm2_loads_chats_and_answers():
    lm = load_model("smollm2-135m-instruct")
    assert (lm.info.n_layers, lm.info.d_model, lm.info.architecture) == (30, 576, "LlamaForCausalLM")
    assert lm.info.has_chat_template and is_prepared("smollm2-135m-instruct")
    meta = json.loads((prepared_path("smollm2-135m-instruct") / MODEL_INFO).read_text())
    assert meta["gguf_sha256"] == EMBEDDED["smollm2-135m-instruct"].gguf_sha256
    prompt = render_chat(lm.tokenizer, [{"role": "user", "content": "What is the capital of France?"}])
    assert "<|im_start|>assistant" in prompt
    ids = lm.tokenizer(prompt, return_tensors="pt")
    out = lm.model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in lm.tokenizer.decode(out[0, ids.input_ids.shape[1]:])


def test_gemma_base_has_no_template_and_hooks_work():
    lm = load_model("gemma-3-270m")
    assert (lm.info.n_layers, lm.info.d_model) == (18, 640)
    assert not lm.info.has_chat_template
    prompt = render_chat(lm.tokenizer, [{"role": "user", "content": "Hi"}])
    assert prompt.endswith("Assistant:")
    ids = lm.tokenizer("The capital of France is", return_tensors="pt")
    with torch.inference_mode():
        ref = lm.model(**ids, output_hidden_states=True).hidden_states[13]
        with record_residual(lm.model, [12], stop=True) as acts:
            lm.model(**ids)
    torch.testing.assert_close(acts[12], ref)
