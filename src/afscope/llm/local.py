"""Local transformers backend: the offline default (``smollm2-135m-instruct``).

Generation is :func:`afscope.generate.generate`: chat template, length-sorted left-padded batches,
KV cache, greedy when ``temperature == 0``, otherwise per-row seeded sampling (the caller's global
RNG is untouched and an answer does not depend on its batch).

Prompts with a :class:`~afscope.llm.form.Form` are answered exactly in its format
(:mod:`afscope.llm.scoring`): each choice line takes the allowed option of highest
log-likelihood, each free-text line is generated after its forced ``KEY:`` prefix up to the end of
the line. :meth:`TransformersBackend.choose` exposes the option scoring itself.

The model is loaded lazily on the first non-cached prompt, through :func:`afscope.models.load_model`,
so a fully cached run never loads weights. Passing ``hf_model`` and ``tokenizer`` skips loading
(tests, notebooks, a model being fine-tuned).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
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
from afscope.llm.base import Structured
from afscope.llm.cache import ResponseCache
from afscope.llm.config import LLMConfig
from afscope.llm.form import Form
from afscope.llm.prompts import PromptLike, normalize_prompt
from afscope.llm.scoring import Choice

logger = logging.getLogger(__name__)


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
        Prompts per ``generate`` call, and per group whose prompt caches are held at once when
        filling forms.
    structured:
        ``"auto"``: forms are filled by option scoring and forced prefixes; ``"off"``: free
        text, like any other prompt.
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
        structured: Structured = "auto",
    ) -> None:
        if (hf_model is None) != (tokenizer is None):
            raise ConfigError("TransformersBackend: pass both hf_model and tokenizer, or neither")
        if batch_size < 1:
            raise ConfigError(f"TransformersBackend: field 'batch_size': expected >= 1, got {batch_size}")
        from_objects = hf_model is not None
        name = model or ("" if from_objects else self.DEFAULT_MODEL)
        super().__init__(name, cache=cache, params=params, on_error=on_error, structured=structured)
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
            params=cfg.generation_params(), on_error=cfg.on_error, structured=cfg.structured)
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
        from afscope.generate import generate

        with self._lock:
            lm, tok = self._load()
            try:
                gens = generate(lm, tok, convos, params, batch_size=self.batch_size)
            except (RuntimeError, ValueError, IndexError) as e:
                msg = f"{self.describe()}: generation failed: {type(e).__name__}: {e}"
                logger.warning("%s", msg)
                return [Completion("", "error", error=msg)] * len(convos)
        return [Completion(g.text, g.finish_reason) for g in gens]

    def _generate_forms(self, convos: list[list[dict[str, str]]], params: GenerationParams,
                        forms: list[Form]) -> list[Completion]:
        if self.structured == "off":
            return self._generate(convos, params)
        from afscope.llm.scoring import fill_forms

        out: list[Completion] = []
        with self._lock:
            lm, tok = self._load()
            for lo in range(0, len(convos), self.batch_size):
                chunk = slice(lo, lo + self.batch_size)
                try:
                    texts = fill_forms(lm, tok, convos[chunk], forms[chunk], params)
                except (RuntimeError, ValueError, IndexError) as e:
                    msg = f"{self.describe()}: constrained answer failed: {type(e).__name__}: {e}"
                    logger.warning("%s", msg)
                    texts = None
                    out += [Completion("", "error", error=msg)] * len(convos[chunk])
                if texts is not None:
                    out += [Completion(t, "stop", constrained=True) for t in texts]
        return out

    def choose(self, prompts: Sequence[PromptLike], options: Sequence[str], *,
               prefixes: Sequence[str] | None = None) -> list[Choice]:
        """For each prompt, the option the model most likely writes first in its answer.

        Each option is scored as the sum of its tokens' log-probabilities after the rendered chat
        prompt (and ``prefixes[i]``, text the answer is forced to start with); one forward over
        the prompt, one batched forward over the options. Options are the exact continuations:
        end them with whatever completes an answer (e.g. ``"\n"``), or a short option that
        begins a longer one always wins. Not cached.
        """
        from afscope.generate.engine import encoder, render_prompt
        from afscope.llm.scoring import choose

        convos = [normalize_prompt(p, i) for i, p in enumerate(prompts)]
        if prefixes is not None and len(prefixes) != len(convos):
            raise ConfigError(f"choose: {len(prefixes)} prefixes for {len(convos)} prompts")
        with self._lock:
            lm, tok = self._load()
            encode = encoder(tok)
            ids = [encode(render_prompt(tok, c)) for c in convos]
            return choose(lm, tok, ids, list(options), prefixes)
