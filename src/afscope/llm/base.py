"""The one LLM interface, its request/response types and the backend registry.

Every backend answers a *batch* of chat prompts with :meth:`LLMBackend.complete`; judging,
autointerp and data generation never care which backend is behind it. A prompt may come with a
:class:`~afscope.llm.form.Form` (the fixed ``KEY: value`` lines its answer must have): a backend
that can enforce it does (local scoring of the allowed options, a server's structured output), and
says so in ``Completion.constrained``; any other answers in free text. Callers parse either way.

The base class owns what is common: prompt validation, the response cache (a hit never reaches
the backend), and the error policy. Subclasses implement :meth:`LLMBackend._generate` (local
batching; :meth:`~LLMBackend._generate_forms` to enforce forms) or, through
:class:`ConcurrentBackend`, a single :meth:`~ConcurrentBackend._attempt` (and
:meth:`~ConcurrentBackend._attempt_form`) that is retried and run in a bounded thread pool (HTTP,
CLI).

Error policy (``on_error``): a failed item never takes the other items down with it — answers that
succeeded are returned/cached either way. With ``"raise"`` (default) :meth:`complete` then raises a
:class:`~afscope.errors.BackendError` naming the first failure, and items not yet started are
skipped. With ``"record"`` failures come back as ``Completion(error=...)`` so a long judging run can
count them (a failure is counted, never guessed).
"""

from __future__ import annotations

import logging
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from afscope.errors import BackendError, ConfigError, DataError
from afscope.generate.params import GenerationParams
from afscope.llm.cache import ResponseCache, cache_key
from afscope.llm.form import Form
from afscope.llm.prompts import PromptLike, normalize_prompt
from afscope.llm.retry import PermanentError, RetryPolicy, call_with_retries

if TYPE_CHECKING:
    from afscope.llm.config import LLMConfig

logger = logging.getLogger(__name__)

OnError = Literal["raise", "record"]
#: How a backend treats a :class:`Form` (``LLMConfig.structured``); each backend accepts a subset.
Structured = Literal["auto", "off", "json_schema", "vllm", "prefill"]


@dataclass(frozen=True)
class Completion:
    """One answer. ``finish_reason`` uses the OpenAI vocabulary where it can ("stop", "length");
    ``"error"`` with ``error`` set marks a failed item, ``"skipped"`` an item never attempted.
    ``constrained``: the answer was asked for with a form, the backend enforced it (or the server
    accepted the structured request) and the text is in the form's format."""

    text: str
    finish_reason: str | None = None
    cached: bool = False
    error: str | None = None
    constrained: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


# --------------------------------------------------------------------------------------------------
# The interface


class LLMBackend(ABC):
    """A chat model behind one method: ``complete(prompts, params) -> completions``, in input order.

    Parameters
    ----------
    model:
        Model name; part of the cache key.
    cache:
        A :class:`ResponseCache` or a directory for one; None disables caching.
    params:
        Default :class:`GenerationParams` when ``complete`` gets none (temperature 0).
    on_error:
        ``"raise"`` or ``"record"`` (see the module docstring).
    structured:
        How prompts with a :class:`Form` are answered: ``"auto"`` (the backend's best way),
        ``"off"`` (free text, parsed by the caller) or a backend-specific mode listed in
        ``STRUCTURED_MODES``.
    """

    name: ClassVar[str] = ""
    #: The ``structured`` values this backend accepts.
    STRUCTURED_MODES: ClassVar[tuple[str, ...]] = ("auto", "off")

    def __init__(
        self,
        model: str,
        *,
        cache: ResponseCache | str | Path | None = None,
        params: GenerationParams | None = None,
        on_error: OnError = "raise",
        structured: Structured = "auto",
    ) -> None:
        if on_error not in ("raise", "record"):
            raise ConfigError(f"{type(self).__name__}: field 'on_error': expected 'raise' or 'record', got {on_error!r}")
        if structured not in self.STRUCTURED_MODES:
            raise ConfigError(f"{type(self).__name__}: field 'structured': expected one of "
                              f"{', '.join(self.STRUCTURED_MODES)}, got {structured!r}")
        self.model = model
        self.cache = ResponseCache(cache) if isinstance(cache, (str, Path)) else cache
        self.params = params if params is not None else GenerationParams()
        self.on_error: OnError = on_error
        self.structured: Structured = structured

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: LLMConfig, **overrides: Any) -> LLMBackend:
        """Build from an :class:`~afscope.llm.config.LLMConfig`; ``overrides`` replace constructor
        arguments (e.g. ``retry=RetryPolicy(sleep=...)`` in tests)."""

    def __repr__(self) -> str:
        # Deliberately lists only harmless fields: never a key, never headers.
        return f"{type(self).__name__}(model={self.model!r}, cache={self.cache!r}, on_error={self.on_error!r})"

    @property
    def cache_model_id(self) -> str | None:
        """The model identity used in cache keys; None when unknown (caching is then disabled)."""
        return self.model or None

    def describe(self) -> str:
        """``"<backend> model '<name>'"``: the prefix of log lines and error messages."""
        return f"{self.name} model {self.model!r}"

    # ---- public API -------------------------------------------------------------------------

    def complete(self, prompts: Sequence[PromptLike], params: GenerationParams | None = None, *,
                 form: Form | Sequence[Form | None] | None = None) -> list[Completion]:
        """Answer every prompt; results are in input order, cache hits have ``cached=True``.

        ``form``: one :class:`Form` for every prompt, or one (or None) per prompt. The answer to
        a prompt with a form is in the form's format when ``Completion.constrained``; otherwise it
        is free text (the caller's strict parser decides). Identical prompts in one call are
        generated once when caching is on. Raises :class:`BackendError` if an item failed and
        ``on_error == "raise"`` (successful answers are cached first), :class:`DataError` on a
        malformed prompt (before any request is sent).
        """
        if isinstance(prompts, (str, Mapping)):
            raise DataError("complete() takes a list of prompts; use complete_one() for a single prompt")
        params = params if params is not None else self.params
        convos = [normalize_prompt(p, i) for i, p in enumerate(prompts)]
        forms = self._forms(form, len(convos))
        results: list[Completion | None] = [None] * len(convos)

        cache, model_id = self._active_cache()
        keys: list[str] = []
        if cache is not None and model_id is not None:
            pdict = params.to_dict()
            keys = [cache_key(self.name, model_id, c, self._key_params(pdict, f))
                    for c, f in zip(convos, forms)]
            for i, k in enumerate(keys):
                entry = cache.get(k)
                if entry is not None:
                    c = entry["completion"]
                    results[i] = Completion(c["text"], c.get("finish_reason"), cached=True,
                                            constrained=bool(c.get("constrained", False)))

        groups: dict[object, list[int]] = {}
        for i, r in enumerate(results):
            if r is None:
                groups.setdefault(keys[i] if keys else i, []).append(i)
        if groups:
            firsts = [idx[0] for idx in groups.values()]
            fresh = self._answer([convos[i] for i in firsts], params, [forms[i] for i in firsts])
            for idx, comp in zip(groups.values(), fresh):
                for i in idx:
                    results[i] = comp
                if keys and comp.error is None and cache is not None:
                    cache.put(keys[idx[0]], {
                        "backend": self.name,
                        "model": model_id,
                        "messages": convos[idx[0]],
                        "params": self._key_params(params.to_dict(), forms[idx[0]]),
                        "completion": {"text": comp.text, "finish_reason": comp.finish_reason,
                                       "constrained": comp.constrained},
                    })

        final = [r for r in results if r is not None]
        failed = [(i, r) for i, r in enumerate(final) if r.error is not None]
        if failed:
            real = [(i, r) for i, r in failed if r.finish_reason != "skipped"] or failed
            logger.warning("%s: %d of %d prompts failed", self.describe(), len(failed), len(final))
            if self.on_error == "raise":
                i, r = real[0]
                if len(final) == 1:
                    raise BackendError(r.error)
                raise BackendError(f"{len(failed)} of {len(final)} prompts failed; prompt {i}: {r.error}")
        return final

    @staticmethod
    def _forms(form: Form | Sequence[Form | None] | None, n: int) -> list[Form | None]:
        if form is None or isinstance(form, Form):
            return [form] * n
        forms = list(form)
        if len(forms) != n or not all(f is None or isinstance(f, Form) for f in forms):
            raise DataError(f"complete(): 'form' must be a Form or one Form (or None) per prompt; "
                            f"got {len(forms)} items for {n} prompts")
        return forms

    def _key_params(self, pdict: dict[str, Any], form: Form | None) -> dict[str, Any]:
        """What goes into the cache key besides the messages: the params, and a form with the
        mode that answered it (an enforced and a free-text answer are different answers)."""
        return pdict if form is None else {**pdict, "form": form.to_dict(),
                                           "structured": self.structured}

    def _answer(self, convos: list[list[dict[str, str]]], params: GenerationParams,
                forms: list[Form | None]) -> list[Completion]:
        """Route prompts without a form to :meth:`_generate` and those with one to
        :meth:`_generate_forms`; answers come back in input order."""
        plain = [i for i, f in enumerate(forms) if f is None]
        formed = [i for i, f in enumerate(forms) if f is not None]
        out: list[Completion | None] = [None] * len(convos)
        if plain:
            self._place(out, plain, self._generate([convos[i] for i in plain], params))
        if formed:
            self._place(out, formed, self._generate_forms(
                [convos[i] for i in formed], params, [f for f in forms if f is not None]))
        return [c for c in out if c is not None]

    def _place(self, out: list[Completion | None], idx: list[int], fresh: list[Completion]) -> None:
        if len(fresh) != len(idx):
            raise BackendError(f"{self.describe()}: returned {len(fresh)} answers for {len(idx)} prompts")
        for i, comp in zip(idx, fresh):
            out[i] = comp

    def complete_one(self, prompt: PromptLike, params: GenerationParams | None = None) -> Completion:
        """Answer one prompt. Raises :class:`BackendError` on failure, whatever ``on_error`` says."""
        comp = self.complete([prompt], params)[0]
        if comp.error is not None:
            raise BackendError(comp.error)
        return comp

    # ---- for subclasses ---------------------------------------------------------------------

    @abstractmethod
    def _generate(self, convos: list[list[dict[str, str]]], params: GenerationParams) -> list[Completion]:
        """Answer validated conversations (no cache involved): one Completion per input, in order.

        A failure of one item is returned as ``Completion("", "error", error=...)``, not raised.
        """

    def _generate_forms(self, convos: list[list[dict[str, str]]], params: GenerationParams,
                        forms: list[Form]) -> list[Completion]:
        """Answer conversations that each come with a form. The default ignores the forms (free
        text, ``constrained=False``); backends that can enforce them override this."""
        return self._generate(convos, params)

    def _active_cache(self) -> tuple[ResponseCache | None, str | None]:
        if self.cache is None:
            return None, None
        model_id = self.cache_model_id
        if model_id is None:
            if not getattr(self, "_warned_no_id", False):
                logger.warning("%s: model identity unknown; response cache disabled", type(self).__name__)
                self._warned_no_id = True
            return None, None
        return self.cache, model_id


class ConcurrentBackend(LLMBackend):
    """A backend answering one prompt per call (HTTP, CLI): retried, run on ``concurrency`` threads.

    Subclasses implement :meth:`_attempt`, raising :class:`~afscope.llm.retry.TransientError` for
    failures worth retrying and :class:`~afscope.llm.retry.PermanentError` otherwise; servers that
    take structured-output requests also implement :meth:`_attempt_form`, usually through
    :meth:`_structured_or_plain`.
    """

    def __init__(
        self,
        model: str,
        *,
        concurrency: int = 4,
        timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
        cache: ResponseCache | str | Path | None = None,
        params: GenerationParams | None = None,
        on_error: OnError = "raise",
        structured: Structured = "auto",
    ) -> None:
        super().__init__(model, cache=cache, params=params, on_error=on_error, structured=structured)
        if concurrency < 1:
            raise ConfigError(f"{type(self).__name__}: field 'concurrency': expected >= 1, got {concurrency}")
        if timeout_s <= 0:
            raise ConfigError(f"{type(self).__name__}: field 'timeout_s': expected > 0, got {timeout_s}")
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retry = retry if retry is not None else RetryPolicy()
        #: Requests whose structured part the server refused, re-sent as free text.
        self.structured_fallbacks = 0
        self._structured_refused: str | None = None  # the server's refusal, once seen
        self._fallback_lock = threading.Lock()

    @abstractmethod
    def _attempt(self, messages: list[dict[str, str]], params: GenerationParams) -> Completion:
        """One try at one prompt (no retries here)."""

    def _attempt_form(self, messages: list[dict[str, str]], params: GenerationParams,
                      form: Form) -> Completion:
        """One try at one prompt with a form; the default asks in free text."""
        return self._attempt(messages, params)

    def _structured_or_plain(self, structured: Callable[[], Completion],
                             plain: Callable[[], Completion], names: Sequence[str]) -> Completion:
        """Send the structured request; if the server refuses it (HTTP 400/422 naming one of
        ``names``), stop asking for this backend's life, count it and send ``plain`` instead."""
        if self._structured_refused is not None:
            return plain()
        try:
            return structured()
        except PermanentError as e:
            msg = str(e).lower()
            if e.status not in (400, 422) or not any(n.lower() in msg for n in names):
                raise
            with self._fallback_lock:
                self.structured_fallbacks += 1
                first = self._structured_refused is None
                self._structured_refused = str(e)
            if first:
                logger.warning("%s: the server refused the structured request (%s); asking in "
                               "free text from now on, parsed strictly", self.describe(), e)
            return plain()

    def _generate(self, convos: list[list[dict[str, str]]], params: GenerationParams) -> list[Completion]:
        return self._run_all([lambda m=c: self._attempt(m, params) for c in convos])

    def _generate_forms(self, convos: list[list[dict[str, str]]], params: GenerationParams,
                        forms: list[Form]) -> list[Completion]:
        return self._run_all([lambda m=c, f=f: self._attempt_form(m, params, f)
                              for c, f in zip(convos, forms)])

    def _run_all(self, attempts: list[Callable[[], Completion]]) -> list[Completion]:
        """Run every attempt with retries, ``concurrency`` at a time; results in input order."""
        what = self.describe()
        stop = threading.Event()  # set on the first failure in "raise" mode: start nothing new

        def run(attempt: Callable[[], Completion]) -> Completion:
            if stop.is_set():
                return Completion("", "skipped", error="skipped: an earlier prompt failed")
            try:
                return call_with_retries(attempt, self.retry, what=what)
            except BackendError as e:
                if self.on_error == "raise":
                    stop.set()
                return Completion("", "error", error=str(e))

        if len(attempts) == 1 or self.concurrency == 1:
            return [run(a) for a in attempts]
        results: list[Completion | None] = [None] * len(attempts)
        workers = min(self.concurrency, len(attempts))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"afscope-{self.name}") as pool:
            futures = {pool.submit(run, a): i for i, a in enumerate(attempts)}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
        return [r for r in results if r is not None]


# --------------------------------------------------------------------------------------------------
# Registry: name -> backend class (the name is what LLMConfig.backend and cfg.json hold)

_REGISTRY: dict[str, type[LLMBackend]] = {}
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
B = TypeVar("B", bound=type[LLMBackend])


def register_backend(name: str) -> Callable[[B], B]:
    """Class decorator registering a backend under ``name`` (lower-case; duplicates refused)."""

    def deco(cls: B) -> B:
        if not _NAME.match(name):
            raise ValueError(f"backend name {name!r} must be lower-case letters, digits and '-'")
        if name in _REGISTRY:
            raise ValueError(f"backend {name!r} is already registered (by {_REGISTRY[name].__name__})")
        if not (isinstance(cls, type) and issubclass(cls, LLMBackend)):
            raise TypeError(f"backend {name!r}: {cls!r} is not an LLMBackend subclass")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available_backends() -> list[str]:
    return sorted(_REGISTRY)


def get_backend_class(name: str) -> type[LLMBackend]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown LLM backend {name!r}; expected one of {', '.join(available_backends())}"
        ) from None


def make_backend(cfg: LLMConfig, **overrides: Any) -> LLMBackend:
    """The backend ``cfg.backend`` names, built from ``cfg`` (``overrides`` go to its constructor)."""
    return get_backend_class(cfg.backend).from_config(cfg, **overrides)


def retry_policy_from_config(cfg: LLMConfig) -> RetryPolicy:
    """The :class:`RetryPolicy` an HTTP/CLI backend built from ``cfg`` uses."""
    return RetryPolicy(
        max_retries=cfg.max_retries,
        base_delay_s=cfg.backoff_base_s,
        max_delay_s=cfg.backoff_max_s,
        seed=cfg.seed,
    )


def common_kwargs(cfg: LLMConfig) -> dict[str, Any]:
    """Constructor arguments every backend takes, read from ``cfg``."""
    return {
        "cache": cfg.cache_dir,
        "params": cfg.generation_params(),
        "on_error": cfg.on_error,
        "structured": cfg.structured,
    }


def concurrent_kwargs(cfg: LLMConfig) -> dict[str, Any]:
    """:func:`common_kwargs` plus what every :class:`ConcurrentBackend` takes (pool, timeout, retry)."""
    return {**common_kwargs(cfg), "concurrency": cfg.concurrency, "timeout_s": cfg.timeout_s,
            "retry": retry_policy_from_config(cfg)}
