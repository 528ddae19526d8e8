"""AnthropicBackend against a real scripted HTTP server on 127.0.0.1."""

from __future__ import annotations

import logging

import pytest
from llm_http_fixtures import Recorded, Reply

from afscope.errors import BackendError, ConfigError
from afscope.llm import (
    AnthropicBackend,
    GenerationParams,
    LLMConfig,
    RetryPolicy,
    make_backend,
)

SECRET = "sk-ant-test-SECRET-fedcba9876543210"


def ok(*texts: str, stop_reason: str = "end_turn") -> dict:
    return {"id": "msg_1", "type": "message", "role": "assistant",
            "content": [{"type": "text", "text": t} for t in texts],
            "stop_reason": stop_reason, "usage": {"input_tokens": 3, "output_tokens": 2}}


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)


def backend(server, sleeps, **kw) -> AnthropicBackend:
    kw.setdefault("retry", RetryPolicy(max_retries=2, base_delay_s=0.5, sleep=sleeps.append))
    kw.setdefault("timeout_s", 5.0)
    return AnthropicBackend("claude-test", base_url=server.url, **kw)


def test_request_shape_and_answer(server, sleeps):
    server.script = lambda req, n: Reply(body=ok("Hel", "lo", stop_reason="max_tokens"))
    msgs = [{"role": "system", "content": "You are a judge."},
            {"role": "user", "content": "Rate this."},
            {"role": "assistant", "content": "Score:"},
            {"role": "user", "content": "Go on."}]
    out = backend(server, sleeps).complete([msgs])[0]
    assert out.text == "Hello" and out.finish_reason == "length"
    (req,) = server.requests
    assert req.path == "/v1/messages"
    assert req.headers["x-api-key"] == SECRET
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in req.headers
    assert req.body["system"] == "You are a judge."
    assert req.body["messages"] == msgs[1:]
    assert req.body["temperature"] == 0.0 and req.body["max_tokens"] == 512
    assert req.body["model"] == "claude-test"
    assert "top_p" not in req.body and "stop_sequences" not in req.body


def test_no_system_field_without_system_turn_and_stop_sequences(server, sleeps):
    server.script = lambda req, n: Reply(body=ok("x", stop_reason="stop_sequence"))
    out = backend(server, sleeps).complete_one("hi", GenerationParams(stop=("END",), top_p=0.9))
    assert out.finish_reason == "stop"
    body = server.requests[0].body
    assert "system" not in body
    assert body["stop_sequences"] == ["END"] and body["top_p"] == 0.9


def test_overloaded_then_ok_is_retried(server, sleeps):
    server.script = lambda req, n: (Reply(529, {"type": "error", "error": {"type": "overloaded_error"}})
                                    if n == 0 else
                                    Reply(429, {}, {"Retry-After": "1.5"}) if n == 1 else Reply(body=ok("ok")))
    assert backend(server, sleeps).complete_one("x").text == "ok"
    assert len(server.requests) == 3
    assert len(sleeps) == 2 and sleeps[1] == 1.5


def test_5xx_exhausts_retries(server, sleeps):
    server.script = lambda req, n: Reply(503, {"error": "unavailable"})
    with pytest.raises(BackendError, match=r"anthropic model 'claude-test'.*HTTP 503"):
        backend(server, sleeps).complete(["x"])
    assert len(server.requests) == 3


def test_timeout(server, sleeps):
    server.script = lambda req, n: Reply(body=ok("late"), delay=1.5)
    llm = backend(server, sleeps, timeout_s=0.2, retry=RetryPolicy(max_retries=1, sleep=sleeps.append))
    with pytest.raises(BackendError, match="timed out"):
        llm.complete(["x"])
    assert len(server.requests) == 2


def test_missing_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(BackendError, match=r"\$ANTHROPIC_API_KEY is not set"):
        AnthropicBackend("claude-test")


def test_401_no_retry_no_key_in_message_or_logs(server, sleeps, caplog, tmp_path):
    server.script = lambda req, n: Reply(401, {"error": f"invalid x-api-key {req.headers['x-api-key']}"})
    caplog.set_level(logging.DEBUG)
    cfg = LLMConfig(backend="anthropic", model="claude-test", base_url=server.url,
                    cache_dir=tmp_path / "c")
    llm = make_backend(cfg, retry=RetryPolicy(sleep=sleeps.append))
    with pytest.raises(BackendError) as ei:
        llm.complete(["x"])
    assert len(server.requests) == 1 and sleeps == []
    assert "HTTP 401" in str(ei.value) and "$ANTHROPIC_API_KEY" in str(ei.value)
    assert SECRET not in str(ei.value) and SECRET not in caplog.text and SECRET not in repr(llm)
    server.script = lambda req, n: Reply(body=ok("fine"))
    llm.complete(["y"])
    assert all(SECRET not in f.read_text() for f in (tmp_path / "c").rglob("*.json"))


@pytest.mark.parametrize("body, what", [
    ({"type": "message"}, "content"),
    ({"content": "text"}, "content"),
    ({"content": [{"type": "text"}]}, "text"),
    ({"content": ["x"]}, "block"),
    ("<html>gateway</html>", "not valid JSON"),
])
def test_malformed_responses(server, sleeps, body, what):
    server.script = lambda req, n: Reply(body=body)
    with pytest.raises(BackendError, match=what):
        backend(server, sleeps).complete(["x"])
    assert len(server.requests) == 1


def test_non_text_blocks_are_ignored(server, sleeps):
    body = {"content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "42"}],
            "stop_reason": "end_turn"}
    server.script = lambda req, n: Reply(body=body)
    assert backend(server, sleeps).complete_one("x").text == "42"


def test_concurrency_order_and_cache(server, sleeps, tmp_path):
    def script(req: Recorded, n: int) -> Reply:
        p = req.body["messages"][0]["content"]
        return Reply(body=ok(f"<{p}>"), delay=0.4 if int(p) < 3 else 0.02)

    server.script = script
    llm = backend(server, sleeps, concurrency=3, cache=tmp_path / "c")
    out = llm.complete([str(i) for i in range(7)])
    assert [c.text for c in out] == [f"<{i}>" for i in range(7)]
    assert 1 < server.max_in_flight <= 3
    again = llm.complete([str(i) for i in range(7)])
    assert len(server.requests) == 7 and all(c.cached for c in again)


def test_system_only_prompt_is_rejected(server, sleeps):
    with pytest.raises(BackendError, match="no user turn"):
        backend(server, sleeps).complete([[{"role": "system", "content": "only"}]])
    assert server.requests == []


def test_from_config_requires_model():
    with pytest.raises(ConfigError, match="model"):
        make_backend(LLMConfig(backend="anthropic"))


# ---- structured output ---------------------------------------------------------------------------

LINES = "ALIGNMENT: 90\nCOHERENCE: 80\nBEHAVIOUR: refuse\nAF: no"


def _form():
    from afscope.judge.llm import FORM

    return FORM


def test_form_sends_output_config_json_schema(server, sleeps):
    import json

    verdict = {"ALIGNMENT": "90", "COHERENCE": "80", "BEHAVIOUR": "refuse", "AF": "no"}
    server.script = lambda req, n: Reply(body=ok(json.dumps(verdict)))
    out = backend(server, sleeps).complete(["judge"], form=_form())[0]
    assert out.text == LINES and out.constrained
    fmt = server.requests[0].body["output_config"]["format"]
    assert fmt == {"type": "json_schema", "schema": _form().json_schema()}


def test_prefill_mode_starts_the_answer_with_the_first_key(server, sleeps):
    server.script = lambda req, n: Reply(body=ok(LINES.removeprefix("ALIGNMENT:")))
    out = backend(server, sleeps, structured="prefill").complete(["judge"], form=_form())[0]
    assert out.text == LINES and out.constrained
    body = server.requests[0].body
    assert body["messages"][-1] == {"role": "assistant", "content": "ALIGNMENT:"}
    assert "output_config" not in body


def test_refused_output_config_falls_back_and_is_counted(server, sleeps):
    def script(req: Recorded, n: int) -> Reply:
        if "output_config" in req.body:
            return Reply(400, {"type": "error", "error": {
                "type": "invalid_request_error", "message": "output_config: Extra inputs are not permitted"}})
        return Reply(body=ok(LINES))

    server.script = script
    llm = backend(server, sleeps, concurrency=1)
    out = llm.complete(["a", "b"], form=_form())
    assert [c.text for c in out] == [LINES, LINES] and not any(c.constrained for c in out)
    assert ["output_config" in r.body for r in server.requests] == [True, False, False]
    assert llm.structured_fallbacks == 1
