"""OpenAI-compatible chat backend (vLLM, llama.cpp server, OpenAI) and the shared JSON-over-HTTP call.

``POST {base_url}/chat/completions`` with the standard body. The HTTP layer is the standard library
(``urllib``), which keeps afscope free of SDKs; each request opens its own connection, which is
negligible next to generation time. :func:`post_json` classifies every failure for the retry loop
(429/408/5xx, timeouts and connection errors are transient; other statuses and malformed bodies are
not) and scrubs the API key from every message it builds.

Structured output (``structured``): a prompt with a :class:`~afscope.llm.form.Form` is sent with
``response_format`` of type ``json_schema`` (``"auto"``/``"json_schema"``: OpenAI, vLLM, llama.cpp
server, SGLang) or vLLM's ``structured_outputs: {"regex": ...}`` of the exact answer lines
(``"vllm"``; vLLM >= 0.12, which replaced the older ``guided_regex``). A JSON answer is turned
back into the form's lines. A server that answers 400/422 naming the field is asked again without
it, for the rest of the run (counted in ``structured_fallbacks``); the caller's strict parser reads
whatever comes back.

Raw generation (:meth:`OpenAIBackend.complete_tokens`): ``POST {base_url}/completions`` with
``prompt`` as token ids (rendered and tokenized by the caller, so the server reads exactly what the
local engine would), ``n``, ``seed``, ``stop``, ``logprobs`` and vLLM's ``return_token_ids``; the
answer's choices come back as :class:`ServedChoice`. vLLM refuses ``n > 1`` with greedy decoding,
so a greedy request asks for one choice and repeats it (greedy choices are identical anyway); a
sampled one sends ``n`` and ``seed`` (vLLM seeds choice ``k`` with ``seed + k``).

Redirects are not followed: urllib would replay the ``Authorization`` header to wherever a server
points. Proxies from the environment are honoured, except for loopback servers (a local vLLM).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
from afscope.llm.retry import PermanentError, TransientError, call_with_retries, parse_retry_after

logger = logging.getLogger(__name__)

#: 4xx statuses worth retrying: request timeout and rate limit. Every 5xx is retried too.
RETRY_STATUSES = frozenset({408, 429})
_SNIPPET = 300


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret of 4+ characters replaced by ``***``."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text


def safe_url(url: str) -> str:
    """``url`` without user:password, for messages."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        return None  # urllib then raises HTTPError(3xx), reported as a permanent failure


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _opener(url: str) -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if _is_loopback(urllib.parse.urlsplit(url).hostname):
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


def post_json(
    url: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    *,
    timeout_s: float,
    secrets: Iterable[str | None] = (),
) -> Any:
    """POST ``body`` as JSON and return the decoded JSON answer.

    Raises :class:`TransientError` (with ``retry_after`` from the header) or :class:`PermanentError`;
    their messages name the status and URL, quote at most 300 characters of the body, and never
    contain any of ``secrets``.
    """
    secrets = tuple(secrets)
    where = safe_url(url)
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json", **headers},
    )
    try:
        with _opener(url).open(req, timeout=timeout_s) as resp:
            status = resp.status
            raw = resp.read()
    except urllib.error.HTTPError as e:
        try:
            text = e.read().decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 (the body is only for the message)
            text = ""
        msg = redact(f"HTTP {e.code} from {where}: {text[:_SNIPPET].strip()}", secrets)
        if e.code in RETRY_STATUSES or e.code >= 500:
            retry_after = parse_retry_after(e.headers.get("Retry-After") if e.headers else None)
            raise TransientError(msg, status=e.code, retry_after=retry_after) from None
        raise PermanentError(msg, status=e.code) from None
    except (TimeoutError, socket.timeout):
        raise TransientError(f"timed out after {timeout_s} s waiting for {where}") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, (TimeoutError, socket.timeout)):
            raise TransientError(f"timed out after {timeout_s} s connecting to {where}") from None
        raise TransientError(redact(f"cannot reach {where}: {e.reason}", secrets)) from None
    except (http.client.HTTPException, OSError) as e:
        raise TransientError(redact(f"connection to {where} failed: {e!r}", secrets)) from None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        snippet = raw[:_SNIPPET].decode("utf-8", "replace")
        raise PermanentError(
            redact(f"HTTP {status} from {where}: response is not valid JSON: {snippet!r}", secrets),
            status=status,
        ) from None


def malformed_response(what: str, data: Any) -> PermanentError:
    """A PermanentError for a response missing fields, quoting a server `error` field if any."""
    hint = ""
    if isinstance(data, dict) and "error" in data:
        hint = f" (server error: {str(data['error'])[:_SNIPPET]})"
    return PermanentError(f"malformed response: {what}{hint}")


def parse_chat_completion(data: Any) -> Completion:
    """The first choice of an OpenAI chat-completions response; PermanentError if malformed."""
    if not isinstance(data, dict):
        raise malformed_response(f"expected a JSON object, got {type(data).__name__}", data)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise malformed_response("missing or empty 'choices'", data)
    message = choices[0].get("message")
    if not isinstance(message, dict) or "content" not in message:
        raise malformed_response("'choices[0].message.content' missing", data)
    content = message["content"]
    if content is not None and not isinstance(content, str):
        raise malformed_response("'choices[0].message.content' is not a string", data)
    reason = choices[0].get("finish_reason")
    return Completion(content or "", reason if isinstance(reason, str) else None)


@dataclass(frozen=True)
class ServedChoice:
    """One choice of a ``/completions`` answer.

    ``token_ids``: the generated ids as the server reports them (vLLM ``return_token_ids``; they
    end with the EOS id when the answer stopped on EOS), None when the server does not say.
    ``n_tokens``: their number (else the count of ``logprobs`` tokens, else ``usage``).
    ``logprobs``: the chosen tokens' log-probabilities and ``top_logprobs`` the ``k`` best
    ``{token: logprob}`` per position, when asked for. ``stop_reason``: vLLM's stop string or
    stop token id, None for EOS or length.
    """

    text: str
    finish_reason: str | None
    token_ids: list[int] | None
    n_tokens: int
    stop_reason: str | int | None = None
    logprobs: list[float] | None = None
    top_logprobs: list[dict[str, float]] | None = None


def parse_completion_choices(data: Any, n: int, *, logprobs: bool) -> list[ServedChoice]:
    """The ``n`` choices of an OpenAI ``/completions`` response, in ``index`` order;
    :class:`PermanentError` naming what is missing when the response is malformed."""
    if not isinstance(data, dict):
        raise malformed_response(f"expected a JSON object, got {type(data).__name__}", data)
    choices = data.get("choices")
    if not isinstance(choices, list) or len(choices) != n or not all(isinstance(c, dict) for c in choices):
        got = len(choices) if isinstance(choices, list) else "no"
        raise malformed_response(f"expected {n} 'choices', got {got}", data)
    choices = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c.get("index"), int) else 0)
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    out = []
    for k, c in enumerate(choices):
        text = c.get("text")
        if not isinstance(text, str):
            raise malformed_response(f"'choices[{k}].text' missing or not a string", data)
        ids = c.get("token_ids")
        if ids is not None and not (isinstance(ids, list) and all(isinstance(t, int) for t in ids)):
            raise malformed_response(f"'choices[{k}].token_ids' is not a list of ints", data)
        lp, top = None, None
        if logprobs:
            block = c.get("logprobs")
            if not isinstance(block, dict) or not isinstance(block.get("token_logprobs"), list):
                raise malformed_response(f"'choices[{k}].logprobs.token_logprobs' missing (asked "
                                         "for logprobs)", data)
            lp = [float(x) if isinstance(x, (int, float)) else float("nan")
                  for x in block["token_logprobs"]]
            tops = block.get("top_logprobs")
            top = [dict(t) if isinstance(t, dict) else {} for t in tops] if isinstance(tops, list) else None
        if ids is not None:
            count = len(ids)
        elif lp is not None:
            count = len(lp)
        elif n == 1 and isinstance(usage.get("completion_tokens"), int):
            count = usage["completion_tokens"]
        else:
            raise malformed_response(f"'choices[{k}]': no token count (neither token_ids, "
                                     "logprobs nor usage.completion_tokens)", data)
        reason = c.get("finish_reason")
        stop_reason = c.get("stop_reason")
        out.append(ServedChoice(text, reason if isinstance(reason, str) else None, ids, count,
                                stop_reason if isinstance(stop_reason, (str, int)) else None, lp, top))
    return out


@register_backend("openai")
class OpenAIBackend(ConcurrentBackend):
    """Any server speaking OpenAI's ``/chat/completions`` (vLLM, llama.cpp server, OpenAI).

    The key is read from ``$api_key_env`` when the backend is built and sent as a Bearer token; it
    is optional because local servers (vLLM, llama.cpp) usually need none. Other arguments: see
    :class:`~afscope.llm.base.ConcurrentBackend`.
    """

    DEFAULT_BASE_URL = "https://api.openai.com/v1"
    DEFAULT_KEY_ENV = "OPENAI_API_KEY"
    STRUCTURED_MODES = ("auto", "off", "json_schema", "vllm")

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.base_url = (base_url or self.DEFAULT_BASE_URL).rstrip("/")
        self.api_key_env = api_key_env or self.DEFAULT_KEY_ENV
        self._api_key = os.environ.get(self.api_key_env) or None

    @classmethod
    def from_config(cls, cfg: LLMConfig, **overrides: Any) -> OpenAIBackend:
        if not cfg.model:
            raise ConfigError("LLMConfig: field 'model': required for the openai backend "
                              "(the name the server serves, e.g. the vLLM --served-model-name)")
        kwargs: dict[str, Any] = dict(
            base_url=cfg.base_url, api_key_env=cfg.api_key_env, **concurrent_kwargs(cfg))
        kwargs.update(overrides)
        return cls(cfg.model, **kwargs)

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={safe_url(self.base_url)!r}, api_key_env={self.api_key_env!r})"

    def describe(self) -> str:
        return f"openai model {self.model!r} at {safe_url(self.base_url)}"

    def _attempt(self, messages: list[dict[str, str]], params: GenerationParams) -> Completion:
        return parse_chat_completion(self._post(messages, params, {}))

    def _attempt_form(self, messages: list[dict[str, str]], params: GenerationParams,
                      form: Form) -> Completion:
        mode = "json_schema" if self.structured == "auto" else self.structured
        if mode == "off":
            return self._attempt(messages, params)
        if mode == "json_schema":
            extra: dict[str, Any] = {"response_format": {"type": "json_schema", "json_schema": {
                "name": "afscope_answer", "strict": True, "schema": form.json_schema()}}}
            names: tuple[str, ...] = ("response_format", "json_schema")
        else:
            extra = {"structured_outputs": {"regex": form.regex()}}
            names = ("structured_outputs", "regex")

        def structured() -> Completion:
            comp = parse_chat_completion(self._post(messages, params, extra))
            return conform(comp, form, json_answer=mode == "json_schema")

        return self._structured_or_plain(structured, lambda: self._attempt(messages, params), names)

    # ---- raw generation: /completions ------------------------------------------------------

    def complete_tokens(self, prompts: Sequence[Sequence[int] | str], params: GenerationParams, *,
                        n: int = 1, seeds: Sequence[int] | None = None,
                        logprobs: int | None = None) -> list[list[ServedChoice]]:
        """``n`` choices per prompt (token ids or text) from ``/completions``, in input order.

        Greedy when ``params.temperature == 0``; ``seeds[i]`` (default ``params.seed``) is sent
        with prompt ``i``. ``logprobs=k`` asks for each token's log-probability and the ``k``
        best alternatives. Not cached. Requests run ``concurrency`` at a time with retries; the
        first that still fails raises one :class:`BackendError` (requests not yet sent are not).
        """
        if n < 1:
            raise ConfigError(f"complete_tokens: 'n' must be >= 1, got {n}")
        if seeds is not None and len(seeds) != len(prompts):
            raise ConfigError(f"complete_tokens: {len(seeds)} seeds for {len(prompts)} prompts")
        what = f"{self.describe()} (/completions)"
        failed: list[BackendError] = []

        def one(i: int) -> list[ServedChoice] | None:
            if failed:
                return None  # an earlier request failed: send nothing new
            seed = params.seed if seeds is None else seeds[i]
            try:
                return call_with_retries(lambda: self._post_completion(
                    prompts[i], params, n=n, seed=seed, logprobs=logprobs), self.retry, what=what)
            except BackendError as e:
                failed.append(e)
                return None

        if self.concurrency == 1 or len(prompts) <= 1:
            results = [one(i) for i in range(len(prompts))]
        else:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts)),
                                    thread_name_prefix="afscope-openai") as pool:
                results = list(pool.map(one, range(len(prompts))))
        if failed:
            raise failed[0]
        return [r for r in results if r is not None]

    def _post_completion(self, prompt: Sequence[int] | str, params: GenerationParams, *, n: int,
                         seed: int, logprobs: int | None) -> list[ServedChoice]:
        asked = 1 if params.greedy else n  # vLLM: "n must be 1 when using greedy sampling"
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": prompt if isinstance(prompt, str) else [int(t) for t in prompt],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": seed,
            "n": asked,
            "return_token_ids": True,  # vLLM >= 0.10.2; other servers ignore it
            "skip_special_tokens": True,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if logprobs is not None:
            body["logprobs"] = logprobs
        data = self._send("completions", body)
        choices = parse_completion_choices(data, asked, logprobs=logprobs is not None)
        return choices * n if asked == 1 else choices

    def _send(self, endpoint: str, body: dict[str, Any]) -> Any:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        try:
            return post_json(f"{self.base_url}/{endpoint}", body, headers,
                             timeout_s=self.timeout_s, secrets=(self._api_key,))
        except PermanentError as e:
            if e.status in (401, 403):
                where = "is not set" if self._api_key is None else "was rejected"
                raise PermanentError(f"{e} (the API key in ${self.api_key_env} {where})", status=e.status) from None
            raise

    def _post(self, messages: list[dict[str, str]], params: GenerationParams,
              extra: dict[str, Any]) -> Any:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
            "top_p": params.top_p,
            "seed": params.seed,
            **extra,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        return self._send("chat/completions", body)


def conform(comp: Completion, form: Form, *, json_answer: bool) -> Completion:
    """A server's answer to a structured request: the form's lines with ``constrained=True`` when
    it is a valid JSON answer (``json_answer``) or already the exact lines; else as it came."""
    if json_answer:
        lines = form.from_json(comp.text)
        if lines is not None:
            return Completion(lines, comp.finish_reason, constrained=True)
        return comp
    if form.matches(comp.text):
        return Completion(comp.text.strip(), comp.finish_reason, constrained=True)
    return comp
