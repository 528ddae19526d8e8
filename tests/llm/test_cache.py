"""ResponseCache on disk, and the cache behaviour of LLMBackend.complete (with an in-process backend)."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from afscope.errors import BackendError
from afscope.llm import (
    Completion,
    GenerationParams,
    LLMBackend,
    ResponseCache,
    cache_key,
)

MSGS = [{"role": "user", "content": "hi"}]
P = GenerationParams().to_dict()


class Echo(LLMBackend):
    """Answers with the last user turn upper-cased; counts prompts it was asked to generate."""

    name = "echo"

    def __init__(self, model="echo-1", **kw):
        super().__init__(model, **kw)
        self.generated: list[str] = []

    @classmethod
    def from_config(cls, cfg, **overrides):  # pragma: no cover (not registered)
        raise NotImplementedError

    def _generate(self, convos, params):
        out = []
        for c in convos:
            text = c[-1]["content"]
            self.generated.append(text)
            out.append(Completion("", "error", error="refused") if text == "fail" else Completion(text.upper(), "stop"))
        return out


def entry(text: str) -> dict:
    return {"completion": {"text": text, "finish_reason": "stop"}}


def test_put_get_roundtrip(tmp_path):
    cache = ResponseCache(tmp_path)
    key = cache_key("openai", "m", MSGS, P)
    assert cache.get(key) is None and cache.misses == 1
    cache.put(key, entry("hello"))
    got = cache.get(key)
    assert got["completion"]["text"] == "hello" and got["key"] == key
    assert cache.hits == 1 and len(cache) == 1
    assert cache.path_for(key).parent.name == key[:2]


def test_key_covers_backend_model_messages_params():
    base = cache_key("openai", "m", MSGS, P)
    assert base == cache_key("openai", "m", [dict(MSGS[0])], dict(P))  # stable, content-based
    assert len(base) == 64
    others = {
        cache_key("anthropic", "m", MSGS, P),
        cache_key("openai", "m2", MSGS, P),
        cache_key("openai", "m", [{"role": "user", "content": "hi!"}], P),
        cache_key("openai", "m", [{"role": "system", "content": "hi"}], P),
        cache_key("openai", "m", MSGS, GenerationParams(max_tokens=5).to_dict()),
        cache_key("openai", "m", MSGS, GenerationParams(temperature=0.5).to_dict()),
        cache_key("openai", "m", MSGS, GenerationParams(seed=1).to_dict()),
    }
    assert base not in others and len(others) == 7


@pytest.mark.parametrize("content", [
    "{truncated",
    "[]",
    json.dumps({"key": "wrong", "completion": {"text": "x"}}),
    json.dumps({"completion": {"text": 3}}),
    b"\xff\xfe\x00garbage",
])
def test_corrupt_entry_is_skipped_with_warning(tmp_path, caplog, content):
    cache = ResponseCache(tmp_path)
    key = cache_key("openai", "m", MSGS, P)
    path = cache.path_for(key)
    path.parent.mkdir(parents=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    caplog.set_level(logging.WARNING)
    assert cache.get(key) is None
    assert "skipping" in caplog.text and str(path) in caplog.text
    assert cache.corrupt == 1
    cache.put(key, entry("fixed"))  # the next answer overwrites it
    assert cache.get(key)["completion"]["text"] == "fixed"


def test_backend_skips_corrupt_entry_and_regenerates(tmp_path, caplog):
    llm = Echo(cache=tmp_path)
    llm.complete(["a"])
    (f,) = tmp_path.rglob("*.json")
    f.write_text('{"key": "')  # half a file, as a crash of a non-atomic writer would leave
    caplog.set_level(logging.WARNING)
    out = llm.complete(["a"])
    assert out[0].text == "A" and not out[0].cached
    assert llm.generated == ["a", "a"] and "skipping" in caplog.text


def test_concurrent_threads(tmp_path):
    cache = ResponseCache(tmp_path)
    keys = [cache_key("echo", "m", [{"role": "user", "content": str(i)}], P) for i in range(50)]
    barrier = threading.Barrier(8)

    def work(t: int) -> int:
        barrier.wait()
        bad = 0
        for i, k in enumerate(keys):
            cache.put(k, entry(f"v{i}"))  # every thread writes every key
            got = cache.get(k)
            bad += got is None or got["completion"]["text"] != f"v{i}"
        return bad

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(work, range(8))) == 0
    assert len(cache) == 50 and cache.corrupt == 0
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_hit_never_calls_the_backend(tmp_path):
    llm = Echo(cache=tmp_path)
    first = llm.complete(["a", "b"])
    assert llm.generated == ["a", "b"] and not any(c.cached for c in first)
    again = Echo(cache=tmp_path)
    out = again.complete(["b", "a"])
    assert again.generated == []
    assert [c.text for c in out] == ["B", "A"] and all(c.cached for c in out)
    # partial hit: only the new prompt is generated, order kept
    out = again.complete(["a", "new", "b"])
    assert again.generated == ["new"] and [c.text for c in out] == ["A", "NEW", "B"]
    assert [c.cached for c in out] == [True, False, True]


def test_duplicates_in_one_call_are_generated_once_with_cache(tmp_path):
    llm = Echo(cache=tmp_path)
    out = llm.complete(["x", "y", "x", "x"])
    assert llm.generated == ["x", "y"] and [c.text for c in out] == ["X", "Y", "X", "X"]
    nocache = Echo()
    nocache.complete(["x", "x"])
    assert nocache.generated == ["x", "x"]


def test_other_model_or_params_miss(tmp_path):
    Echo(cache=tmp_path).complete(["a"])
    other = Echo("echo-2", cache=tmp_path)
    other.complete(["a"])
    other.complete(["a"], GenerationParams(max_tokens=3))
    assert other.generated == ["a", "a"]


def test_failures_are_not_cached(tmp_path):
    llm = Echo(cache=tmp_path, on_error="record")
    out = llm.complete(["fail", "ok"])
    assert out[0].error == "refused" and out[1].ok
    llm.complete(["fail", "ok"])
    assert llm.generated == ["fail", "ok", "fail"]
    raising = Echo(cache=tmp_path)
    with pytest.raises(BackendError, match="1 of 2 prompts failed; prompt 0: refused"):
        raising.complete(["fail", "ok"])


def test_cache_files_hold_the_request_for_inspection(tmp_path):
    Echo(cache=tmp_path).complete([[{"role": "system", "content": "S"}, {"role": "user", "content": "q"}]])
    (f,) = tmp_path.rglob("*.json")
    data = json.loads(f.read_text())
    assert data["backend"] == "echo" and data["model"] == "echo-1"
    assert data["messages"][0] == {"role": "system", "content": "S"}
    assert data["params"]["temperature"] == 0.0 and data["completion"]["text"] == "Q"
