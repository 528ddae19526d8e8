"""A real HTTP server on 127.0.0.1 that speaks vLLM's OpenAI-compatible protocol, backed by a
tiny HF model in this process: the peer of ``afscope.generate.served`` in tests.

Endpoints (the fields afscope sends and vLLM's ``CompletionRequest`` / ``ChatCompletionRequest``
define, ``vllm/entrypoints/openai/{completion,chat_completion}/protocol.py``):

- ``POST /v1/completions``: ``prompt`` (text or token ids), ``max_tokens``, ``temperature``
  (0 = greedy), ``top_p``, ``seed``, ``n``, ``stop``, ``logprobs`` (int k), ``return_token_ids``.
  Answer: ``choices[i]`` with ``index``, ``text``, ``finish_reason`` (stop/length),
  ``stop_reason`` (the stop string; None for EOS and length), ``token_ids`` (ending with the EOS
  id when the answer stopped on it, as vLLM reports them), ``logprobs`` (``tokens``,
  ``token_logprobs``, ``top_logprobs``, ``text_offset``); ``usage``.
- ``POST /v1/chat/completions``: ``messages`` rendered with the tokenizer's chat template;
  ``logprobs`` (bool) + ``top_logprobs`` (int); answer ``choices[i].message.content`` and
  ``choices[i].logprobs.content``.

Like vLLM it answers 400 to ``n > 1`` with ``temperature == 0`` ("n must be 1 when using greedy
sampling") and 404 to an unknown model. Decoding is its own loop (KV cache, one sequence at a
time), independent of afscope's batched engine; sampled choice ``k`` uses ``seed + k`` (vLLM's
parallel sampling). ``server.failures`` scripts the next replies (status, raw body) before any
generation: 500s, malformed JSON. Every request body is recorded in ``server.requests``.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch


class OpenAIServer:
    """The model, tokenizer, recorded requests and scripted failures of one server."""

    def __init__(self, model: Any, tokenizer: Any, served_name: str = "tiny") -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.served_name = served_name
        eos = getattr(model.generation_config, "eos_token_id", None)
        self.eos = {t for t in (tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos]))
                    if isinstance(t, int)}
        self.requests: list[dict[str, Any]] = []
        self.failures: list[tuple[int, bytes]] = []
        self.url = ""
        self._lock = threading.Lock()  # one forward at a time (the model is shared)

    # ---- decoding -----------------------------------------------------------------------------

    def decode(self, ids: list[int], body: dict[str, Any], index: int, top_k: int | None
               ) -> dict[str, Any]:
        """One choice: generate after ``ids``, vLLM-style stop handling and logprobs."""
        temperature = float(body.get("temperature") if body.get("temperature") is not None else 1.0)
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        gen = torch.Generator().manual_seed(int(body.get("seed") or 0) + index)
        out: list[int] = []
        lps: list[float] = []
        tops: list[dict[str, float]] = []
        finish, stop_reason, text = "length", None, ""
        past, cur = None, torch.tensor([ids])
        with self._lock, torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # past_key_values renamed upstream
            for _ in range(max_tokens):
                o = self.model(input_ids=cur, past_key_values=past, use_cache=True)
                past = o.past_key_values
                logp = torch.log_softmax(o.logits[0, -1].float(), dim=-1)
                if temperature == 0:
                    t = int(torch.argmax(logp))
                else:
                    probs = torch.softmax(o.logits[0, -1].float() / temperature, dim=-1)
                    t = int(torch.multinomial(probs, 1, generator=gen))
                out.append(t)
                lps.append(float(logp[t]))
                if top_k:
                    v, i = torch.topk(logp, top_k)
                    tops.append({self._piece(int(j)): float(x) for x, j in zip(v, i)})
                cur = torch.tensor([[t]])
                if t in self.eos:
                    finish = "stop"
                    break
                text = self.tokenizer.decode(out, skip_special_tokens=True)
                hits = [(text.find(s), s) for s in stop if s and text.find(s) >= 0]
                if hits:
                    at, s = min(hits)
                    text, finish, stop_reason = text[:at], "stop", s
                    break
        if finish == "stop" and stop_reason is None:
            text = self.tokenizer.decode(out, skip_special_tokens=True)
        return {"text": text, "token_ids": out, "finish_reason": finish,
                "stop_reason": stop_reason, "logprobs": lps, "top": tops,
                "tokens": [self._piece(t) for t in out]}

    def _piece(self, t: int) -> str:
        return self.tokenizer.convert_ids_to_tokens(t)

    # ---- endpoints ----------------------------------------------------------------------------

    def answer(self, path: str, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 400, _error("request body is not a JSON object", "BadRequestError", 400)
        if body.get("model") not in (None, self.served_name):
            return 404, _error(f"The model `{body.get('model')}` does not exist.",
                               "NotFoundError", 404)
        n = int(body.get("n") or 1)
        if n > 1 and body.get("temperature") == 0:
            return 400, _error(f"n must be 1 when using greedy sampling, got {n}.",
                               "BadRequestError", 400)
        if path == "/v1/completions":
            prompt = body.get("prompt")
            if isinstance(prompt, str):
                ids = list(self.tokenizer(prompt)["input_ids"])  # add_special_tokens=True default
            elif isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
                ids = prompt
            else:
                return 400, _error("Either prompt or prompt_embeds must be provided and "
                                   "non-empty.", "BadRequestError", 400)
            k = body.get("logprobs")
            chosen = [self.decode(ids, body, i, k) for i in range(n)]
            choices = []
            for i, c in enumerate(chosen):
                choice: dict[str, Any] = {"index": i, "text": c["text"], "logprobs": None,
                                          "finish_reason": c["finish_reason"],
                                          "stop_reason": c["stop_reason"]}
                if body.get("return_token_ids"):
                    choice["token_ids"] = c["token_ids"]
                if k is not None:
                    choice["logprobs"] = {"tokens": c["tokens"], "token_logprobs": c["logprobs"],
                                          "top_logprobs": c["top"] if k else None,
                                          "text_offset": []}
                choices.append(choice)
            return 200, {"id": "cmpl-test", "object": "text_completion", "created": 0,
                         "model": self.served_name, "choices": choices,
                         "usage": _usage(len(ids), chosen)}
        if path == "/v1/chat/completions":
            text = self.tokenizer.apply_chat_template(body["messages"], tokenize=False,
                                                      add_generation_prompt=True)
            # vLLM: add_special_tokens=False for chat (the template has its own)
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            k = int(body.get("top_logprobs") or 0) if body.get("logprobs") else None
            chosen = [self.decode(ids, body, i, k) for i in range(n)]
            choices = []
            for i, c in enumerate(chosen):
                choice = {"index": i, "message": {"role": "assistant", "content": c["text"]},
                          "logprobs": None, "finish_reason": c["finish_reason"],
                          "stop_reason": c["stop_reason"]}
                if k is not None:
                    choice["logprobs"] = {"content": [
                        {"token": tok, "logprob": lp, "top_logprobs": [
                            {"token": t, "logprob": v} for t, v in top.items()] if k else []}
                        for tok, lp, top in zip(c["tokens"], c["logprobs"],
                                                c["top"] or [{}] * len(c["tokens"]))]}
                choices.append(choice)
            return 200, {"id": "chatcmpl-test", "object": "chat.completion", "created": 0,
                         "model": self.served_name, "choices": choices,
                         "usage": _usage(len(ids), chosen)}
        return 404, _error(f"no route {path}", "NotFoundError", 404)


def _usage(n_prompt: int, chosen: list[dict[str, Any]]) -> dict[str, int]:
    done = sum(len(c["token_ids"]) for c in chosen)
    return {"prompt_tokens": n_prompt, "completion_tokens": done, "total_tokens": n_prompt + done}


def _error(message: str, kind: str, code: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        srv: OpenAIServer = self.server.openai
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            body = None
        with srv._lock:
            srv.requests.append({"path": self.path, "body": body})
            failure = srv.failures.pop(0) if srv.failures else None
        if failure is not None:
            status, data = failure
        else:
            try:
                status, obj = srv.answer(self.path, body)
            except Exception as e:  # noqa: BLE001 (a bug in the test server: say so)
                status, obj = 500, _error(f"test server: {type(e).__name__}: {e}",
                                          "InternalServerError", 500)
            data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def serve(model: Any, tokenizer: Any, served_name: str = "tiny") -> Iterator[OpenAIServer]:
    """Run an :class:`OpenAIServer` on an ephemeral port until the generator is closed
    (``url`` ends in ``/v1``); the body of the pytest fixture."""
    srv = OpenAIServer(model, tokenizer, served_name)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.openai = srv  # type: ignore[attr-defined]
    srv.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        httpd.shutdown()
        httpd.server_close()


def openai_server_fixture(model_dir: Any) -> Iterator[OpenAIServer]:
    """The fixture body: the tiny llama saved in ``model_dir`` (fp32), served as ``tiny``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    yield from serve(model, AutoTokenizer.from_pretrained(model_dir))
