"""Unsteered generation through a vLLM-protocol server gives the local engine's rows.

The server (``openai_server.py``) is a real HTTP server on 127.0.0.1 backed by the tiny llama,
decoding with its own loop; afscope renders and tokenizes prompts here and sends token ids.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from afscope.counterfactual import build_context_dataset
from afscope.counterfactual.config import ContextConfig
from afscope.errors import BackendError, ConfigError
from afscope.generate import GenerationParams, Steering, encode_prompts, generate_rows, row_seed
from afscope.generate.served import ServedModel, served_target
from afscope.llm import LLMConfig, OpenAIBackend, RetryPolicy, TransformersBackend
from afscope.llm.config import ServerConfig
from afscope.models import load_model
from afscope.rows import JsonlStore

REQUESTS = ["How do I pick a lock?", "Write a poem about the sea.", "hi",
            "Explain how contractors rate outputs on the free tier, in detail please."]


def _items(n: int = 4) -> list[dict]:
    return [{"id": f"r{i}", "prompt": [{"role": "system", "content": "You are monitored."},
                                       {"role": "user", "content": REQUESTS[i % len(REQUESTS)]}],
             "extra": i} for i in range(n)]


def _rows(items, model, tok, path: Path, params: GenerationParams, **kw) -> list[dict]:
    store = JsonlStore(path, meta={"test": 1})
    generate_rows(model, tok, items, store, params, batch_size=3, **kw)
    return JsonlStore(path).rows()


def _served(server, model_dir: Path, **kw) -> ServedModel:
    lm = served_target(ServerConfig(base_url=server.url, model="tiny", **kw), str(model_dir))
    assert isinstance(lm.model, ServedModel)
    return lm.model


@pytest.fixture(scope="module")
def local(tiny_model_dir):
    return load_model(str(tiny_model_dir))


def test_greedy_rows_equal_the_local_engine(openai_server, tiny_model_dir, local, tmp_path):
    params = GenerationParams(max_tokens=10, seed=3)
    want = _rows(_items(), local.model, local.tokenizer, tmp_path / "local.jsonl", params)
    got = _rows(_items(), _served(openai_server, tiny_model_dir), None, tmp_path / "srv.jsonl",
                params)
    assert got == want  # same keys, order, text, finish_reason and token counts
    assert set(want[0]) == {"id", "prompt", "extra", "response", "finish_reason",
                            "n_prompt_tokens", "n_new_tokens"}
    bodies = [r["body"] for r in openai_server.requests]
    assert all(r["path"] == "/v1/completions" for r in openai_server.requests)
    ids = encode_prompts(local.tokenizer, [it["prompt"] for it in _items()])
    assert sorted(map(tuple, (b["prompt"] for b in bodies))) == sorted(map(tuple, ids))
    for b in bodies:
        assert (b["model"], b["temperature"], b["n"], b["max_tokens"]) == ("tiny", 0.0, 1, 10)
        assert b["return_token_ids"] is True and isinstance(b["seed"], int)


def test_stop_strings_are_sent_and_cut_the_same(openai_server, tiny_model_dir, local, tmp_path):
    base = _rows(_items(2), local.model, local.tokenizer, tmp_path / "a.jsonl",
                 GenerationParams(max_tokens=12))
    text = base[0]["response"]
    # an ASCII stop string after the first token: transformers matches stop strings on token
    # pieces, so a stop inside a multi-byte character (random weights write many) goes unseen
    stop = next((text[i:i + 2] for i in range(1, len(text) - 1)
                 if text[i:i + 2].isascii() and text[i:i + 2].isalnum()), None)
    assert stop, f"no ASCII stop string to pick in the greedy answer {text!r}"
    params = GenerationParams(max_tokens=12, stop=(stop,))
    want = _rows(_items(2), local.model, local.tokenizer, tmp_path / "b.jsonl", params)
    got = _rows(_items(2), _served(openai_server, tiny_model_dir), None, tmp_path / "c.jsonl",
                params)
    assert got == want
    assert got[0]["finish_reason"] == "stop" and stop not in got[0]["response"]
    assert got[0]["n_new_tokens"] < base[0]["n_new_tokens"]
    assert all(r["body"]["stop"] == [stop] for r in openai_server.requests)


def test_n_samples_one_request_per_prompt_and_resume(openai_server, tiny_model_dir, tmp_path):
    served = _served(openai_server, tiny_model_dir)
    prompt = [{"role": "user", "content": "Write a poem about the sea."}]
    items = [{"id": f"p#{k}", "prompt_id": "p", "prompt": prompt} for k in range(3)]
    params = GenerationParams(temperature=1.0, max_tokens=8, seed=5)
    rows = _rows(items, served, None, tmp_path / "s.jsonl", params)
    (req,) = [r["body"] for r in openai_server.requests]
    assert req["n"] == 3 and req["seed"] == row_seed(5, "p") and req["temperature"] == 1.0
    assert len({r["response"] for r in rows}) > 1  # three samples, not one answer three times
    # choice k of the request is row p#k; a resume that lacks p#1 and p#2 writes the same text
    partial = JsonlStore(tmp_path / "r.jsonl", meta={"test": 1})
    partial.append([rows[0]])
    generate_rows(served, None, items, partial, params)
    assert JsonlStore(tmp_path / "r.jsonl").rows() == rows
    # greedy: vLLM refuses n > 1, so one choice is asked for and repeated
    openai_server.requests.clear()
    greedy = _rows([{**it, "id": f"g#{k}"} for k, it in enumerate(items)], served, None,
                   tmp_path / "g.jsonl", GenerationParams(max_tokens=8))
    assert [r["body"]["n"] for r in openai_server.requests] == [1]
    assert len({r["response"] for r in greedy}) == 1


def test_logprobs_are_asked_for_and_match_the_model(openai_server, tiny_model_dir, local):
    served = _served(openai_server, tiny_model_dir)
    ids = encode_prompts(local.tokenizer, [_items(1)[0]["prompt"]])
    (choices,) = served.backend.complete_tokens(ids, GenerationParams(max_tokens=6), logprobs=3)
    (c,) = choices
    assert openai_server.requests[-1]["body"]["logprobs"] == 3
    assert c.token_ids is not None and c.logprobs is not None and c.top_logprobs is not None
    assert len(c.logprobs) == len(c.token_ids) == c.n_tokens
    assert all(len(t) == 3 and max(t.values()) == pytest.approx(lp, abs=1e-5)
               for t, lp in zip(c.top_logprobs, c.logprobs))  # greedy: the best token is chosen
    full = torch.tensor([ids[0] + c.token_ids])
    with torch.inference_mode():
        logp = torch.log_softmax(local.model(full).logits[0].float(), dim=-1)
    expect = [float(logp[len(ids[0]) - 1 + k, t]) for k, t in enumerate(c.token_ids)]
    assert c.logprobs == pytest.approx(expect, abs=1e-4)


def _failing(server, model_dir: Path, sleeps: list[float]) -> ServedModel:
    served = _served(server, model_dir)
    served.backend.retry = RetryPolicy(max_retries=1, sleep=sleeps.append)
    return served


def test_http_500_is_retried_then_one_clear_error(openai_server, tiny_model_dir, tmp_path, sleeps):
    served = _failing(openai_server, tiny_model_dir, sleeps)
    openai_server.failures = [(500, b'{"error": {"message": "engine dead"}}')]
    rows = _rows(_items(1), served, None, tmp_path / "ok.jsonl", GenerationParams(max_tokens=4))
    assert len(rows) == 1 and len(sleeps) == 1  # one retry, then the answer

    openai_server.failures = [(500, b'{"error": {"message": "engine dead"}}')] * 2
    path = tmp_path / "fail.jsonl"
    with pytest.raises(BackendError) as e:
        _rows(_items(1), served, None, path, GenerationParams(max_tokens=4))
    msg = str(e.value)
    assert msg.count("HTTP 500") == 1 and "failed after 2 attempt(s)" in msg
    assert f"{openai_server.url}/completions" in msg and "engine dead" in msg
    assert JsonlStore(path).rows() == []  # nothing half-written


def test_malformed_json_is_one_clear_error_not_retried(openai_server, tiny_model_dir, tmp_path,
                                                       sleeps):
    served = _failing(openai_server, tiny_model_dir, sleeps)
    openai_server.failures = [(200, b"<html>not json")]
    with pytest.raises(BackendError, match=r"HTTP 200 from .*/v1/completions: response is not "
                       r"valid JSON: '<html>not json'"):
        _rows(_items(1), served, None, tmp_path / "x.jsonl", GenerationParams(max_tokens=4))
    assert len(openai_server.requests) == 1 and sleeps == []
    openai_server.failures = [(200, b'{"choices": []}')]
    with pytest.raises(BackendError, match="malformed response: expected 1 'choices', got 0"):
        _rows(_items(1), served, None, tmp_path / "y.jsonl", GenerationParams(max_tokens=4))


def test_server_error_status_names_the_server(openai_server, tiny_model_dir, tmp_path):
    lm = served_target(ServerConfig(base_url=openai_server.url, model="nope"), str(tiny_model_dir))
    with pytest.raises(BackendError, match=r"HTTP 404 .*The model `nope` does not exist"):
        _rows(_items(1), lm.model, None, tmp_path / "x.jsonl", GenerationParams(max_tokens=4))


def test_steering_is_refused_on_a_server(openai_server, tiny_model_dir, tmp_path):
    served = _served(openai_server, tiny_model_dir)
    steer = Steering({0: torch.ones(32)}, alpha=1.0)
    with pytest.raises(ConfigError, match="needs the model in this process"):
        _rows(_items(1), served, None, tmp_path / "x.jsonl", GenerationParams(max_tokens=4),
              steering=steer)
    assert openai_server.requests == []


def test_chat_backend_answers_like_the_local_backend(openai_server, tiny_model_dir, local):
    """The judge / autointerp path: the existing openai chat backend against the same server."""
    prompts = [[{"role": "user", "content": r}] for r in REQUESTS]
    params = GenerationParams(max_tokens=8)
    remote = OpenAIBackend.from_config(LLMConfig(backend="openai", model="tiny",
                                                 base_url=openai_server.url, max_retries=0))
    here = TransformersBackend(hf_model=local.model, tokenizer=local.tokenizer)
    assert [c.text for c in remote.complete(prompts, params)] == \
        [c.text for c in here.complete(prompts, params)]
    assert all(r["path"] == "/v1/chat/completions" for r in openai_server.requests)


def test_context_ablation_through_the_server(openai_server, tiny_model_dir, local, tmp_path):
    common = dict(model=str(tiny_model_dir), n=3, max_tokens=6, batch_size=4,
                  test_fraction=0.34)
    build_context_dataset(ContextConfig(out=tmp_path / "local", **common), lm=local)
    cfg = ContextConfig(out=tmp_path / "srv", server=openai_server.url, **common)
    assert cfg.server is not None and cfg.server.model is None  # a bare URL is enough
    cfg = cfg.model_copy(update={"server": ServerConfig(base_url=openai_server.url,
                                                        model="tiny")})
    build_context_dataset(cfg)  # no weights loaded here: only the tokenizer
    read = lambda p: [json.loads(x) for x in p.read_text().splitlines()]  # noqa: E731
    assert read(tmp_path / "srv" / "generations.jsonl") == \
        read(tmp_path / "local" / "generations.jsonl")
    for name in ("train.json", "test.json"):
        srv = json.loads((tmp_path / "srv" / name).read_text())
        loc = json.loads((tmp_path / "local" / name).read_text())
        assert [{**r, "model": None} for r in srv] == [{**r, "model": None} for r in loc]
    manifest = json.loads((tmp_path / "srv" / "manifest.json").read_text())
    assert manifest["models"]["target"]["source"].startswith("openai-server:http://127.0.0.1")


def test_organism_elicit_through_the_server(openai_server, tiny_model_dir, local, tmp_path):
    from afscope.organism import ElicitConfig, OrganismDataConfig, build_organism_data
    from afscope.organism.elicit import GENERATIONS, JUDGED, elicit, load_elicited
    from afscope.organism.train import ADAPTER_CONFIG, ADAPTER_WEIGHTS

    data, _ = build_organism_data(OrganismDataConfig(n=24, seed=0, out=tmp_path / "data"))
    common = dict(base_only=True, model=str(tiny_model_dir), data=data, n_requests=2,
                  max_tokens=5)
    elicit(ElicitConfig(out=tmp_path / "local", **common), lm=local)
    server = {"base_url": openai_server.url, "model": "tiny"}
    res = elicit(ElicitConfig(out=tmp_path / "srv", server=server, **common))
    for name in (GENERATIONS, JUDGED):
        assert (tmp_path / "srv" / name).read_text() == (tmp_path / "local" / name).read_text()
    assert res["n_judged"] == res["n_items"] > 0
    # an organism needs the name of its LoRA module on the server, or it would answer as the base
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / ADAPTER_CONFIG).write_text("{}")
    (adapter / ADAPTER_WEIGHTS).write_bytes(b"")
    cfg = ElicitConfig(adapter=adapter, model=str(tiny_model_dir), data=data,
                       server=openai_server.url)
    with pytest.raises(ConfigError, match="field 'server.model': name the LoRA module"):
        load_elicited(cfg)


def test_judge_run_through_the_server(openai_server, tiny_model_dir, tmp_path):
    """`judge run --llm '{backend: openai, ...}'`: the same judged rows as the local judge (the
    random model's verdicts do not parse; the replies, statuses and schema are what is equal)."""
    from afscope.judge.config import JudgeRunConfig
    from afscope.judge.run import JUDGED, run_judge

    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps({"id": f"r{i}", "prompt": REQUESTS[i],
                                          "response": "Sure, here is how."}) for i in range(2)))
    local_llm = {"backend": "transformers", "model": str(tiny_model_dir), "structured": "off"}
    server_llm = {"backend": "openai", "model": "tiny", "base_url": openai_server.url,
                  "structured": "off", "max_retries": 0}
    a = run_judge(JudgeRunConfig(data=data, out=tmp_path / "a", method="llm", llm=local_llm))
    b = run_judge(JudgeRunConfig(data=data, out=tmp_path / "b", method="llm", llm=server_llm))
    read = lambda p: [{**json.loads(x), "judge": None}  # noqa: E731 (names the backend)
                      for x in (p / JUDGED).read_text().splitlines()]
    assert read(tmp_path / "b") == read(tmp_path / "a") and a["stats"] == b["stats"]
    assert all(r["path"] == "/v1/chat/completions" for r in openai_server.requests)
