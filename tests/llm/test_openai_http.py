"""OpenAIBackend against a real scripted HTTP server on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from llm_http_fixtures import Recorded, Reply

from afscope.errors import BackendError
from afscope.llm import (
    GenerationParams,
    LLMConfig,
    OpenAIBackend,
    RetryPolicy,
    make_backend,
)
from afscope.llm.retry import parse_retry_after

SECRET = "sk-test-SECRET-0123456789abcdef"


def ok(text: str = "hello", reason: str = "stop") -> dict:
    return {"id": "x", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": reason}]}


def backend(server, sleeps, **kw) -> OpenAIBackend:
    kw.setdefault("retry", RetryPolicy(max_retries=3, base_delay_s=0.5, sleep=sleeps.append))
    kw.setdefault("timeout_s", 5.0)
    return OpenAIBackend("test-model", base_url=server.url + "/v1", **kw)


@pytest.fixture(autouse=True)
def _no_real_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def test_normal_response_and_request_body(server, sleeps, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server.script = lambda req, n: Reply(body=ok("the answer", "length"))
    llm = backend(server, sleeps)
    msgs = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi?"}]
    out = llm.complete([msgs])
    assert out[0].text == "the answer" and out[0].finish_reason == "length"
    assert not out[0].cached and out[0].ok
    (req,) = server.requests
    assert req.path == "/v1/chat/completions"
    assert req.body["model"] == "test-model"
    assert req.body["messages"] == msgs
    assert req.body["temperature"] == 0.0
    assert req.body["max_tokens"] == 512
    assert "stop" not in req.body
    assert req.headers["authorization"] == f"Bearer {SECRET}"
    assert sleeps == []


def test_string_prompt_is_one_user_turn_and_stop_is_sent(server, sleeps):
    server.script = lambda req, n: Reply(body=ok())
    llm = backend(server, sleeps)
    llm.complete_one("plain", GenerationParams(max_tokens=7, stop=("\n\n",)))
    body = server.requests[0].body
    assert body["messages"] == [{"role": "user", "content": "plain"}]
    assert body["max_tokens"] == 7 and body["stop"] == ["\n\n"]
    assert "authorization" not in server.requests[0].headers  # no key set: none sent (vLLM)


def test_429_then_200_honours_retry_after(server, sleeps):
    server.script = lambda req, n: (Reply(429, {"error": "slow down"}, {"Retry-After": "2"}) if n == 0
                                    else Reply(body=ok("after retry")))
    assert backend(server, sleeps).complete_one("x").text == "after retry"
    assert len(server.requests) == 2
    assert sleeps == [2.0]


def test_5xx_retried_then_backend_error(server, sleeps):
    server.script = lambda req, n: Reply(500, {"error": "boom"})
    with pytest.raises(BackendError) as ei:
        backend(server, sleeps).complete(["x"])
    assert len(server.requests) == 4  # 1 + max_retries
    assert len(sleeps) == 3
    # exponential backoff with jitter in [0.5, 1] x nominal: 0.5, 1, 2
    for got, nominal in zip(sleeps, [0.5, 1.0, 2.0]):
        assert 0.5 * nominal <= got <= nominal
    msg = str(ei.value)
    assert "openai" in msg and "test-model" in msg and "HTTP 500" in msg and "4 attempt" in msg


def test_timeout_retried_then_backend_error(server, sleeps):
    server.script = lambda req, n: Reply(body=ok(), delay=1.5)
    llm = backend(server, sleeps, timeout_s=0.2, retry=RetryPolicy(max_retries=1, sleep=sleeps.append))
    t0 = time.monotonic()
    with pytest.raises(BackendError, match="timed out"):
        llm.complete_one("x")
    assert time.monotonic() - t0 < 1.4
    assert len(server.requests) == 2 and len(sleeps) == 1


def test_malformed_json_is_a_failure_not_retried(server, sleeps):
    server.script = lambda req, n: Reply(body="{not json")
    with pytest.raises(BackendError, match="not valid JSON"):
        backend(server, sleeps).complete(["x"])
    assert len(server.requests) == 1 and sleeps == []


@pytest.mark.parametrize("body, what", [
    ({"object": "chat.completion"}, "choices"),
    ({"choices": []}, "choices"),
    ({"choices": [{"finish_reason": "stop"}]}, "content"),
    ({"choices": [{"message": {"content": 3}}]}, "content"),
    ([1, 2], "JSON object"),
    ({"error": {"message": "model not loaded"}}, "model not loaded"),
])
def test_missing_fields_are_backend_errors(server, sleeps, body, what):
    server.script = lambda req, n: Reply(body=body)
    with pytest.raises(BackendError, match=what):
        backend(server, sleeps).complete(["x"])


def test_401_not_retried_and_key_never_leaks(server, sleeps, monkeypatch, caplog, tmp_path):
    monkeypatch.setenv("MY_KEY", SECRET)
    # the worst server: echoes the key it received in the error body
    server.script = lambda req, n: Reply(401, {"error": f"bad key {req.headers['authorization']}"})
    caplog.set_level(logging.DEBUG)
    cfg = LLMConfig(backend="openai", model="test-model", base_url=server.url + "/v1",
                    api_key_env="MY_KEY", cache_dir=tmp_path / "cache")
    llm = make_backend(cfg, retry=RetryPolicy(max_retries=3, sleep=sleeps.append))
    with pytest.raises(BackendError) as ei:
        llm.complete(["x"])
    assert len(server.requests) == 1 and sleeps == []
    msg = str(ei.value)
    assert "HTTP 401" in msg and "$MY_KEY" in msg
    assert SECRET not in msg
    assert SECRET not in caplog.text
    assert SECRET not in repr(llm) and SECRET not in repr(cfg) and SECRET not in str(cfg.to_dict())
    # a success afterwards is cached; no cache file mentions the key
    server.script = lambda req, n: Reply(body=ok("fine"))
    assert llm.complete_one("y").text == "fine"
    files = list((tmp_path / "cache").rglob("*.json"))
    assert files and all(SECRET not in f.read_text() for f in files)
    assert SECRET not in caplog.text


@pytest.mark.parametrize("status", [400, 404, 422])
def test_other_4xx_not_retried(server, sleeps, status):
    server.script = lambda req, n: Reply(status, {"error": "nope"})
    with pytest.raises(BackendError, match=f"HTTP {status}"):
        backend(server, sleeps).complete(["x"])
    assert len(server.requests) == 1 and sleeps == []


def test_connection_refused_is_retried(sleeps):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llm = OpenAIBackend("m", base_url=f"http://127.0.0.1:{port}/v1", timeout_s=1.0,
                        retry=RetryPolicy(max_retries=2, sleep=sleeps.append))
    with pytest.raises(BackendError, match="cannot reach"):
        llm.complete(["x"])
    assert len(sleeps) == 2


def test_concurrency_limit_and_input_order(server, sleeps):
    def script(req: Recorded, n: int) -> Reply:
        prompt = req.body["messages"][0]["content"]
        return Reply(body=ok(f"echo {prompt}"), delay=0.15 if int(prompt) % 2 else 0.05)

    server.script = script
    llm = backend(server, sleeps, concurrency=4)
    out = llm.complete([str(i) for i in range(8)])
    assert [c.text for c in out] == [f"echo {i}" for i in range(8)]
    assert 1 < server.max_in_flight <= 4


def test_concurrency_one_is_sequential(server, sleeps):
    server.script = lambda req, n: Reply(body=ok(), delay=0.02)
    backend(server, sleeps, concurrency=1).complete(["a", "b", "c"])
    assert server.max_in_flight == 1


def test_cache_hit_never_reaches_server(server, sleeps, tmp_path):
    server.script = lambda req, n: Reply(body=ok(f"answer {n}"))
    llm = backend(server, sleeps, cache=tmp_path / "c")
    first = llm.complete(["a", "b"])
    assert len(server.requests) == 2 and not any(c.cached for c in first)
    again = backend(server, sleeps, cache=tmp_path / "c").complete(["b", "a", "a"])
    assert len(server.requests) == 2
    assert all(c.cached for c in again)
    assert [c.text for c in again] == [first[1].text, first[0].text, first[0].text]
    # other params are another key
    llm.complete(["a"], GenerationParams(temperature=0.7))
    assert len(server.requests) == 3


def test_record_mode_keeps_the_batch(server, sleeps, tmp_path):
    def script(req: Recorded, n: int) -> Reply:
        prompt = req.body["messages"][0]["content"]
        return Reply(400, {"error": "bad prompt"}) if prompt == "bad" else Reply(body=ok(prompt.upper()))

    server.script = script
    llm = backend(server, sleeps, on_error="record", cache=tmp_path / "c")
    out = llm.complete(["a", "bad", "c"])
    assert [c.text for c in out] == ["A", "", "C"]
    assert out[1].error and "HTTP 400" in out[1].error and out[1].finish_reason == "error"
    assert out[0].ok and out[2].ok
    # failures are not cached: the bad prompt is tried again, the good ones are not
    llm.complete(["a", "bad", "c"])
    assert len(server.requests) == 4
    with pytest.raises(BackendError):
        llm.complete_one("bad")


def test_raise_mode_caches_successes_before_raising(server, sleeps, tmp_path):
    server.script = lambda req, n: (Reply(400, {"error": "no"}) if req.body["messages"][0]["content"] == "bad"
                                    else Reply(body=ok("fine")))
    llm = backend(server, sleeps, concurrency=1, cache=tmp_path / "c")
    with pytest.raises(BackendError, match="prompt 1"):
        llm.complete(["good", "bad", "later"])
    # "later" was skipped after the failure (sequential), "good" was cached
    assert [r.body["messages"][0]["content"] for r in server.requests] == ["good", "bad"]
    assert llm.complete_one("good").cached


def test_retry_after_parsing():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)


def test_from_config_requires_model():
    from afscope.errors import ConfigError

    with pytest.raises(ConfigError, match="model"):
        make_backend(LLMConfig(backend="openai"))


# ---- structured output ---------------------------------------------------------------------------

def _judge_form():
    from afscope.judge.llm import FORM

    return FORM


VERDICT = {"ALIGNMENT": "90", "COHERENCE": "80", "BEHAVIOUR": "refuse", "AF": "no"}
LINES = "ALIGNMENT: 90\nCOHERENCE: 80\nBEHAVIOUR: refuse\nAF: no"


def test_form_sends_a_json_schema_and_reads_the_lines_back(server, sleeps):
    import json

    from afscope.judge import parse_judge_reply

    server.script = lambda req, n: Reply(body=ok(json.dumps(VERDICT)))
    form = _judge_form()
    out = backend(server, sleeps).complete(["judge this"], form=form)[0]
    assert out.text == LINES and out.constrained
    assert parse_judge_reply(out.text).ok
    rf = server.requests[0].body["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
    assert rf["json_schema"]["schema"] == form.json_schema()
    assert "structured_outputs" not in server.requests[0].body


def test_vllm_mode_sends_the_regex_of_the_lines(server, sleeps):
    server.script = lambda req, n: Reply(body=ok(LINES + "\n"))
    form = _judge_form()
    out = backend(server, sleeps, structured="vllm").complete(["judge this"], form=form)[0]
    assert out.text == LINES and out.constrained
    body = server.requests[0].body
    assert body["structured_outputs"] == {"regex": form.regex()} and "response_format" not in body


def test_a_server_ignoring_the_schema_answers_in_free_text(server, sleeps):
    server.script = lambda req, n: Reply(body=ok("ALIGNMENT: 85\nCOHERENCE: 80\nBEHAVIOUR: refuse\nAF: no"))
    out = backend(server, sleeps).complete(["judge this"], form=_judge_form())[0]
    assert not out.constrained and out.text.startswith("ALIGNMENT: 85")  # the parser decides


def test_400_naming_the_field_falls_back_to_free_text_once(server, sleeps, caplog):
    def script(req: Recorded, n: int) -> Reply:
        if "response_format" in req.body:
            return Reply(400, {"error": {"message": "Invalid parameter: 'response_format' of type "
                                                    "'json_schema' is not supported with this model."}})
        return Reply(body=ok(LINES))

    server.script = script
    caplog.set_level(logging.WARNING)
    llm = backend(server, sleeps, concurrency=1)
    out = llm.complete(["a", "b"], form=_judge_form())
    assert [c.text for c in out] == [LINES, LINES] and not any(c.constrained for c in out)
    # the first request was refused and re-sent without the field; the second never had it
    assert ["response_format" in r.body for r in server.requests] == [True, False, False]
    assert llm.structured_fallbacks == 1 and sleeps == []
    assert "refused the structured request" in caplog.text
    # prompts without a form are untouched
    llm.complete(["plain"])
    assert "response_format" not in server.requests[-1].body


def test_other_400s_are_not_a_fallback(server, sleeps):
    server.script = lambda req, n: Reply(400, {"error": "context length exceeded"})
    llm = backend(server, sleeps)
    with pytest.raises(BackendError, match="context length"):
        llm.complete(["x"], form=_judge_form())
    assert len(server.requests) == 1 and llm.structured_fallbacks == 0


def test_off_and_mode_validation(server, sleeps):
    from afscope.errors import ConfigError

    server.script = lambda req, n: Reply(body=ok(LINES))
    backend(server, sleeps, structured="off").complete(["x"], form=_judge_form())
    assert "response_format" not in server.requests[0].body
    with pytest.raises(ConfigError, match="structured"):
        make_backend(LLMConfig(backend="openai", model="m", structured="prefill"))


def test_form_is_part_of_the_cache_key(server, sleeps, tmp_path):
    import json

    server.script = lambda req, n: Reply(body=ok(json.dumps(VERDICT)) if "response_format" in req.body
                                         else ok("free"))
    llm = backend(server, sleeps, cache=tmp_path / "c")
    assert llm.complete(["x"])[0].text == "free"
    formed = llm.complete(["x"], form=_judge_form())[0]
    assert formed.text == LINES and formed.constrained and len(server.requests) == 2
    again = llm.complete(["x"], form=_judge_form())[0]
    assert again.cached and again.constrained and again.text == LINES and len(server.requests) == 2
