"""ClaudeCLIBackend against a fake ``claude`` executable written by the test (a real subprocess)."""

from __future__ import annotations

import json
import logging
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from afscope.errors import BackendError
from afscope.llm import (
    ClaudeCLIBackend,
    GenerationParams,
    LLMConfig,
    RetryPolicy,
    make_backend,
)

FAKE = textwrap.dedent("""\
    #!{python}
    import json, os, sys, time
    from pathlib import Path
    log = Path(os.environ["FAKE_CLAUDE_DIR"])
    prompt = sys.stdin.read()
    n = len(list(log.glob("call-*.json")))
    (log / f"call-{{n}}-{{os.getpid()}}.json").write_text(json.dumps({{"argv": sys.argv[1:], "stdin": prompt}}))
    mode = os.environ.get("FAKE_CLAUDE_MODE", "ok")
    if mode == "sleep":
        time.sleep(30)
    if mode == "garbage":
        print("this is not json"); sys.exit(0)
    if mode == "fail_once" and n == 0:
        print("API overloaded", file=sys.stderr); sys.exit(1)
    if mode == "fail":
        print("boom", file=sys.stderr); sys.exit(2)
    if mode == "is_error":
        print(json.dumps({{"type": "result", "subtype": "error_during_execution", "is_error": True,
                          "result": "Credit balance is too low"}})); sys.exit(0)
    if mode == "slow":
        time.sleep(0.2)
    print(json.dumps({{"type": "result", "subtype": "success", "is_error": False,
                      "result": "ECHO:" + prompt, "session_id": "s", "total_cost_usd": 0.0}}))
""")


@pytest.fixture
def fake_claude(tmp_path, monkeypatch) -> Path:
    calls = tmp_path / "calls"
    calls.mkdir()
    script = tmp_path / "fake-claude"
    script.write_text(FAKE.format(python=sys.executable))
    script.chmod(0o755)
    monkeypatch.setenv("FAKE_CLAUDE_DIR", str(calls))
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "ok")
    return script


def calls(fake: Path) -> list[dict]:
    files = sorted((fake.parent / "calls").glob("call-*.json"))
    return [json.loads(f.read_text()) for f in files]


def backend(fake: Path, sleeps: list[float], **kw) -> ClaudeCLIBackend:
    kw.setdefault("retry", RetryPolicy(max_retries=2, sleep=sleeps.append))
    kw.setdefault("timeout_s", 10.0)
    return ClaudeCLIBackend(kw.pop("model", "claude-opus-test"), binary=str(fake), **kw)


def test_prompt_on_stdin_flags_on_argv(fake_claude, sleeps):
    msgs = [{"role": "system", "content": "You describe SAE features."},
            {"role": "user", "content": "What differs?"}]
    out = backend(fake_claude, sleeps).complete([msgs])[0]
    assert out.text == "ECHO:What differs?" and out.finish_reason == "stop"
    (call,) = calls(fake_claude)
    assert call["stdin"] == "What differs?"
    argv = call["argv"]
    assert argv[:3] == ["-p", "--output-format", "json"]
    assert argv[argv.index("--model") + 1] == "claude-opus-test"
    assert argv[argv.index("--system-prompt") + 1] == "You describe SAE features."
    assert "What differs?" not in argv


def test_multi_turn_is_rendered_and_stop_applied(fake_claude, sleeps):
    msgs = [{"role": "user", "content": "A"}, {"role": "assistant", "content": "B"},
            {"role": "user", "content": "C STOP tail"}]
    llm = backend(fake_claude, sleeps, model=None)
    out = llm.complete_one(msgs, GenerationParams(stop=(" STOP",)))
    assert out.text == "ECHO:[user]\nA\n\n[assistant]\nB\n\n[user]\nC"
    argv = calls(fake_claude)[0]["argv"]
    assert "--model" not in argv and "--system-prompt" not in argv


def test_missing_binary_is_clear_and_not_retried(tmp_path, sleeps):
    llm = ClaudeCLIBackend("m", binary=str(tmp_path / "no-such-claude"),
                           retry=RetryPolicy(sleep=sleeps.append))
    with pytest.raises(BackendError, match="claude CLI not found"):
        llm.complete(["x"])
    assert sleeps == []


def test_timeout_kills_and_retries(fake_claude, sleeps, monkeypatch):
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "sleep")
    llm = backend(fake_claude, sleeps, timeout_s=0.5, retry=RetryPolicy(max_retries=1, sleep=sleeps.append))
    t0 = time.monotonic()
    with pytest.raises(BackendError, match="timed out"):
        llm.complete(["x"])
    assert time.monotonic() - t0 < 5
    assert len(sleeps) == 1
    # the fake processes were killed, not left sleeping for 30 s
    for f in (fake_claude.parent / "calls").glob("call-*.json"):
        pid = int(f.stem.split("-")[2])
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_non_json_output(fake_claude, sleeps, monkeypatch):
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "garbage")
    with pytest.raises(BackendError, match="not JSON"):
        backend(fake_claude, sleeps).complete(["x"])
    assert sleeps == []


def test_nonzero_exit_is_retried(fake_claude, sleeps, monkeypatch):
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "fail_once")
    assert backend(fake_claude, sleeps).complete_one("hi").text == "ECHO:hi"
    assert len(sleeps) == 1 and len(calls(fake_claude)) == 2


def test_persistent_failure_names_status_and_stderr(fake_claude, sleeps, monkeypatch):
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "fail")
    with pytest.raises(BackendError, match=r"claude-cli.*status 2: boom"):
        backend(fake_claude, sleeps).complete(["x"])
    assert len(calls(fake_claude)) == 3


def test_is_error_result(fake_claude, sleeps, monkeypatch):
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "is_error")
    with pytest.raises(BackendError, match="Credit balance"):
        backend(fake_claude, sleeps).complete(["x"])


def test_concurrent_subprocesses_keep_order(fake_claude, sleeps, monkeypatch):
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "slow")
    llm = backend(fake_claude, sleeps, concurrency=4)
    t0 = time.monotonic()
    out = llm.complete([f"p{i}" for i in range(8)])
    assert [c.text for c in out] == [f"ECHO:p{i}" for i in range(8)]
    assert time.monotonic() - t0 < 8 * 0.2 + 3  # parallel, not 8 sequential sleeps + startups


def test_cache_only_with_a_named_model(fake_claude, sleeps, tmp_path, caplog):
    named = backend(fake_claude, sleeps, cache=tmp_path / "c")
    named.complete(["q"])
    assert named.complete_one("q").cached
    assert len(calls(fake_claude)) == 1
    caplog.set_level(logging.WARNING)
    unnamed = backend(fake_claude, sleeps, model=None, cache=tmp_path / "c")
    assert not unnamed.complete_one("q").cached
    assert "cache disabled" in caplog.text


def test_from_config(fake_claude):
    cfg = LLMConfig(backend="claude-cli", cli_binary=str(fake_claude), model="opus",
                    cli_extra_args=["--max-turns", "1"], concurrency=2)
    llm = make_backend(cfg)
    assert isinstance(llm, ClaudeCLIBackend) and llm.concurrency == 2
    llm.complete_one("z")
    argv = calls(fake_claude)[0]["argv"]
    assert argv[-2:] == ["--max-turns", "1"]
