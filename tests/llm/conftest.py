"""Fixtures of the llm tests: a scripted real HTTP server (see ``llm_http_fixtures``) and a
vLLM-protocol server backed by a tiny model (see ``openai_server``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from llm_http_fixtures import ScriptedServer, _Handler, _Server
from openai_server import OpenAIServer, openai_server_fixture


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.scripted = scripted  # type: ignore[attr-defined]
    scripted.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield scripted
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def sleeps() -> list[float]:
    """The delays a RetryPolicy asked for (tests inject ``sleep=sleeps.append``)."""
    return []


@pytest.fixture
def openai_server(tiny_model_dir) -> Iterator[OpenAIServer]:
    """A vLLM-protocol server on 127.0.0.1 answering greedily with the tiny llama."""
    yield from openai_server_fixture(tiny_model_dir)
