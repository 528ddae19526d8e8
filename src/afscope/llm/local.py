"""Local transformers backend: the offline default (``smollm2-135m-instruct``).

Prompts are rendered with the tokenizer's chat template (``add_generation_prompt=True``; models
without one get :data:`afscope.models.PLAIN_TEMPLATE`), tokenized without extra special tokens (the
template already has them; a BOS only where the tokenizer adds one and the template did not),
sorted by length so a batch wastes little padding, left-padded (decoder
models continue from the last position) and generated under ``torch.inference_mode()``. Greedy when
``temperature == 0``; otherwise sampling seeded by ``params.seed`` inside a forked RNG, so the
caller's global RNG is untouched. Answers are the new tokens only, cut at the first EOS, decoded
without special tokens.

The model is loaded lazily on the first non-cached prompt, through :func:`afscope.models.load_model`,
so a fully cached run never loads weights. Passing ``hf_model`` and ``tokenizer`` skips loading
(tests, notebooks, a model being fine-tuned).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from afscope.errors import ConfigError
from afscope.llm.base import (
    Completion,
    GenerationParams,
    LLMBackend,
    OnError,
    register_backend,
)
from afscope.llm.cache import ResponseCache
from afscope.llm.config import LLMConfig
from afscope.llm.prompts import apply_stop

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _eval_mode(module: Any) -> Iterator[None]:
    """Dropout off while generating; the caller's train/eval state is restored afterwards."""
    was_training = bool(getattr(module, "training", False))
    module.eval()
    try:
        yield
    finally:
        if was_training:
            module.train()


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """EOS ids of both the tokenizer and the model's generation config (chat models often have
    ``<|im_end|>`` in one and ``</s>`` in the other)."""
    ids: list[int] = []
    for value in (getattr(tokenizer, "eos_token_id", None),
                  getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            if isinstance(v, int) and v not in ids:
                ids.append(v)
    return ids


def _encoder(tokenizer: Any) -> Any:
    """``text -> ids`` that keeps the chat template's own special tokens and adds only a BOS, and
    only where the tokenizer normally adds one and the rendered text lacks it (Gemma needs its
    ``<bos>``; ChatML templates already start with their own marker)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    adds_bos = bos is not None and tokenizer("a")["input_ids"][:1] == [bos]

    def encode(text: str) -> list[int]:
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        if adds_bos and ids[:1] != [bos]:
            ids.insert(0, bos)
        return ids

    return encode


@register_backend("transformers")
class TransformersBackend(LLMBackend):
    """A causal LM from transformers, in this process.

    Parameters
    ----------
    model:
        afscope model name, HF id or local path, loaded lazily with ``load_model(model, dtype=,
        device=)``. With ``hf_model``/``tokenizer`` it is only the name used as cache identity.
    hf_model, tokenizer:
        An already loaded causal LM and its tokenizer (both or neither).
    batch_size:
        Prompts per ``generate`` call.
    """

    DEFAULT_MODEL = "smollm2-135m-instruct"

    def __init__(
        self,
        model: str | None = None,
        *,
        hf_model: Any = None,
        tokenizer: Any = None,
        batch_size: int = 8,
        dtype: str = "float32",
        device: str = "cpu",
        cache: ResponseCache | str | Path | None = None,
        params: GenerationParams | None = None,
        on_error: OnError = "raise",
    ) -> None:
        if (hf_model is None) != (tokenizer is None):
            raise ConfigError("TransformersBackend: pass both hf_model and tokenizer, or neither")
        if batch_size < 1:
            raise ConfigError(f"TransformersBackend: field 'batch_size': expected >= 1, got {batch_size}")
        from_objects = hf_model is not None
        name = model or ("" if from_objects else self.DEFAULT_MODEL)
        super().__init__(name, cache=cache, params=params, on_error=on_error)
        self.batch_size = batch_size
        self.dtype = dtype
        self.device = device
        self._from_objects = from_objects
        self._hf_model = hf_model
        self._tokenizer = tokenizer
        self._lock = threading.Lock()  # one generate at a time: it toggles eval mode and the RNG

    @classmethod
    def from_config(cls, cfg: LLMConfig, **overrides: Any) -> TransformersBackend:
        kwargs: dict[str, Any] = dict(
            batch_size=cfg.batch_size, dtype=cfg.dtype, device=cfg.device, cache=cfg.cache_dir,
            params=cfg.generation_params(), on_error=cfg.on_error)
        kwargs.update(overrides)
        return cls(cfg.model, **kwargs)

    def __repr__(self) -> str:
        return f"TransformersBackend(model={self.model!r}, batch_size={self.batch_size}, device={self.device!r})"

    @property
    def cache_model_id(self) -> str | None:
        """Name + dtype for a loaded-by-name model (dtype changes greedy outputs). For objects, the
        given name or the model's ``name_or_path``; None (no caching) when neither is known."""
        if self._from_objects:
            return self.model or getattr(self._hf_model, "name_or_path", "") or None
        return f"{self.model}|{self.dtype}"

    @property
    def hf_model(self) -> Any:
        return self._load()[0]

    @property
    def tokenizer(self) -> Any:
        return self._load()[1]

    def _load(self) -> tuple[Any, Any]:
        if self._hf_model is None:
            from afscope.models import load_model

            logger.info("loading %s (%s on %s) for generation", self.model, self.dtype, self.device)
            loaded = load_model(self.model, dtype=self.dtype, device=self.device)
            self._hf_model, self._tokenizer = loaded.model, loaded.tokenizer
        return self._hf_model, self._tokenizer

    # ---- generation -------------------------------------------------------------------------

    def render(self, messages: Sequence[dict[str, str]]) -> str:
        """The exact prompt string the model reads (chat template + generation prompt)."""
        from afscope.models.chat import render_chat

        return render_chat(self.tokenizer, list(messages), add_generation_prompt=True)

    def _generate(self, convos: list[list[dict[str, str]]], params: GenerationParams) -> list[Completion]:
        import torch

        with self._lock:
            lm, tok = self._load()
            encode = _encoder(tok)
            ids = [encode(self.render(c)) for c in convos]
            order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
            results: list[Completion | None] = [None] * len(ids)
            device = next(lm.parameters()).device
            rng_devices = [device.index or 0] if device.type == "cuda" else []
            with torch.inference_mode(), _eval_mode(lm), torch.random.fork_rng(devices=rng_devices):
                torch.manual_seed(params.seed)
                for start in range(0, len(order), self.batch_size):
                    chunk = order[start:start + self.batch_size]
                    try:
                        answers = self._generate_batch(lm, tok, [ids[i] for i in chunk], params, device)
                    except (RuntimeError, ValueError, IndexError) as e:
                        msg = f"{self.describe()}: generation failed: {type(e).__name__}: {e}"
                        logger.warning("%s", msg)
                        answers = [Completion("", "error", error=msg)] * len(chunk)
                    for i, a in zip(chunk, answers):
                        results[i] = a
        return [r for r in results if r is not None]

    def _generate_batch(self, lm: Any, tok: Any, seqs: list[list[int]], params: GenerationParams,
                        device: Any) -> list[Completion]:
        import torch

        eos = _eos_ids(lm, tok)
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else (eos[0] if eos else 0)
        width = max(len(s) for s in seqs)
        input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)  # (B, T), left-padded
        attention = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            input_ids[r, width - len(s):] = torch.tensor(s, dtype=torch.long)
            attention[r, width - len(s):] = 1
        kwargs: dict[str, Any] = dict(max_new_tokens=params.max_tokens, pad_token_id=pad_id,
                                      eos_token_id=eos or None)
        if params.greedy:
            kwargs["do_sample"] = False
        else:
            # top_k=0: plain temperature/top-p sampling, as the HTTP APIs do it.
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
        out = lm.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device), **kwargs)
        new = out[:, width:].tolist()  # (B, new_tokens): the prompt is stripped
        eos_set = set(eos)
        answers = []
        for row in new:
            end = next((k for k, t in enumerate(row) if t in eos_set), None)
            tokens = row if end is None else row[:end]
            text = tok.decode(tokens, skip_special_tokens=True)
            text, cut = apply_stop(text, params.stop)
            answers.append(Completion(text, "stop" if end is not None or cut else "length"))
        return answers
