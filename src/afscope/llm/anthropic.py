"""Anthropic Messages API backend: ``POST {base_url}/v1/messages``.

Differences from the OpenAI format handled here: the system prompt is a top-level ``system`` field
(system turns are joined), the key goes in ``x-api-key`` with an ``anthropic-version`` header, the
answer is a list of content blocks (text blocks are concatenated) and ``stop_reason`` is mapped to
the OpenAI vocabulary (``end_turn``/``stop_sequence`` -> ``stop``, ``max_tokens`` -> ``length``).
``top_p`` is sent only when it is not 1, because recent models refuse both it and ``temperature``.

Structured output (``structured``): a prompt with a :class:`~afscope.llm.form.Form` is sent with
``output_config: {"format": {"type": "json_schema", "schema": ...}}`` (``"auto"``/``"json_schema"``;
the answer is turned back into the form's lines), or with the assistant turn prefilled with the
first ``KEY:`` (``"prefill"``; older models only: recent ones refuse a prefill). A 400 naming the
field switches this backend to free text for the rest of the run, counted in
``structured_fallbacks``; the caller's strict parser reads whatever comes back.
"""

from __future__ import annotations

import os
from typing import Any

from afscope.errors import BackendError, ConfigError
from afscope.llm.base import (
    Completion,
    ConcurrentBackend,
    GenerationParams,
    concurrent_kwargs,
    register_backend,
)
from afscope.llm.config import LLMConfig
from afscope.llm.form import Form
from afscope.llm.openai_http import conform, malformed_response, post_json, safe_url
from afscope.llm.prompts import split_system
from afscope.llm.retry import PermanentError

_STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


def parse_message(data: Any) -> Completion:
    """Text of an Anthropic Messages response; PermanentError if malformed."""
    if not isinstance(data, dict):
        raise malformed_response(f"expected a JSON object, got {type(data).__name__}", data)
    content = data.get("content")
    if not isinstance(content, list):
        raise malformed_response("missing 'content' list", data)
    texts = []
    for block in content:
        if not isinstance(block, dict):
            raise malformed_response("a 'content' block is not an object", data)
        if block.get("type") == "text":
            if not isinstance(block.get("text"), str):
                raise malformed_response("a text block has no 'text' string", data)
            texts.append(block["text"])
    reason = data.get("stop_reason")
    reason = _STOP_REASONS.get(reason, reason) if isinstance(reason, str) else None
    return Completion("".join(texts), reason)


@register_backend("anthropic")
class AnthropicBackend(ConcurrentBackend):
    """Claude models through the Anthropic API; the key comes from ``$api_key_env`` (required)."""

    DEFAULT_BASE_URL = "https://api.anthropic.com"
    DEFAULT_KEY_ENV = "ANTHROPIC_API_KEY"
    STRUCTURED_MODES = ("auto", "off", "json_schema", "prefill")

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str | None = None,
                 anthropic_version: str = "2023-06-01", **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.base_url = (base_url or self.DEFAULT_BASE_URL).rstrip("/")
        self.api_key_env = api_key_env or self.DEFAULT_KEY_ENV
        self.anthropic_version = anthropic_version
        self._api_key = os.environ.get(self.api_key_env) or None
        if self._api_key is None:
            raise BackendError(f"anthropic backend: no API key: environment variable ${self.api_key_env} is not set")

    @classmethod
    def from_config(cls, cfg: LLMConfig, **overrides: Any) -> AnthropicBackend:
        if not cfg.model:
            raise ConfigError("LLMConfig: field 'model': required for the anthropic backend")
        kwargs: dict[str, Any] = dict(
            base_url=cfg.base_url, api_key_env=cfg.api_key_env, anthropic_version=cfg.anthropic_version,
            **concurrent_kwargs(cfg))
        kwargs.update(overrides)
        return cls(cfg.model, **kwargs)

    def __repr__(self) -> str:
        return f"AnthropicBackend(model={self.model!r}, base_url={safe_url(self.base_url)!r}, api_key_env={self.api_key_env!r})"

    def describe(self) -> str:
        return f"anthropic model {self.model!r} at {safe_url(self.base_url)}"

    def _attempt(self, messages: list[dict[str, str]], params: GenerationParams) -> Completion:
        return parse_message(self._post(messages, params, {}))

    def _attempt_form(self, messages: list[dict[str, str]], params: GenerationParams,
                      form: Form) -> Completion:
        mode = "json_schema" if self.structured == "auto" else self.structured
        if mode == "off" or (mode == "prefill" and messages[-1]["role"] == "assistant"):
            return self._attempt(messages, params)
        if mode == "json_schema":
            def structured() -> Completion:
                extra = {"output_config": {"format": {"type": "json_schema",
                                                      "schema": form.json_schema()}}}
                return conform(parse_message(self._post(messages, params, extra)), form,
                               json_answer=True)

            names: tuple[str, ...] = ("output_config", "json_schema", "structured output")
        else:
            prefix = f"{form.fields[0].key}:"

            def structured() -> Completion:
                turns = [*messages, {"role": "assistant", "content": prefix}]
                comp = parse_message(self._post(turns, params, {}))
                return conform(Completion(prefix + comp.text, comp.finish_reason), form,
                               json_answer=False)

            names = ("prefill", "assistant")
        return self._structured_or_plain(structured, lambda: self._attempt(messages, params), names)

    def _post(self, messages: list[dict[str, str]], params: GenerationParams,
              extra: dict[str, Any]) -> Any:
        system, turns = split_system(messages)
        if not turns:
            raise PermanentError("the prompt has no user turn (Anthropic needs at least one)")
        body: dict[str, Any] = {
            "model": self.model,
            "messages": turns,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            **extra,
        }
        if system is not None:
            body["system"] = system
        if params.top_p != 1.0:
            body["top_p"] = params.top_p
        if params.stop:
            body["stop_sequences"] = list(params.stop)
        headers = {"x-api-key": self._api_key or "", "anthropic-version": self.anthropic_version}
        try:
            return post_json(f"{self.base_url}/v1/messages", body, headers,
                             timeout_s=self.timeout_s, secrets=(self._api_key,))
        except PermanentError as e:
            if e.status in (401, 403):
                raise PermanentError(f"{e} (the API key in ${self.api_key_env} was rejected)", status=e.status) from None
            raise
