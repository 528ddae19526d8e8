"""The one LLM interface, its request/response types and the backend registry.

Every backend answers a *batch* of chat prompts with :meth:`LLMBackend.complete`; judging,
autointerp and data generation never care which backend is behind it. The base class owns what is
common: prompt validation, the response cache (a hit never reaches the backend), and the error
policy. Subclasses implement :meth:`LLMBackend._generate` (local batching) or, through
:class:`ConcurrentBackend`, a single :meth:`~ConcurrentBackend._attempt` that is retried and run in a
bounded thread pool (HTTP, CLI).

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
from afscope.llm.prompts import PromptLike, normalize_prompt
from afscope.llm.retry import RetryPolicy, call_with_retries

if TYPE_CHECKING:
    from afscope.llm.config import LLMConfig

logger = logging.getLogger(__name__)

OnError = Literal["raise", "record"]


@dataclass(frozen=True)
class Completion:
    """One answer. ``finish_reason`` uses the OpenAI vocabulary where it can ("stop", "length");
    ``"error"`` with ``error`` set marks a failed item, ``"skipped"`` an item never attempted."""

    text: str
    finish_reason: str | None = None
    cached: bool = False
    error: str | None = None

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
    """

    name: ClassVar[str] = ""

    def __init__(
        self,
        model: str,
        *,
        cache: ResponseCache | str | Path | None = None,
        params: GenerationParams | None = None,
        on_error: OnError = "raise",
    ) -> None:
        if on_error not in ("raise", "record"):
            raise ConfigError(f"{type(self).__name__}: field 'on_error': expected 'raise' or 'record', got {on_error!r}")
        self.model = model
        self.cache = ResponseCache(cache) if isinstance(cache, (str, Path)) else cache
        self.params = params if params is not None else GenerationParams()
        self.on_error: OnError = on_error

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

    def complete(self, prompts: Sequence[PromptLike], params: GenerationParams | None = None) -> list[Completion]:
        """Answer every prompt; results are in input order, cache hits have ``cached=True``.

        Identical prompts in one call are generated once when caching is on. Raises
        :class:`BackendError` if an item failed and ``on_error == "raise"`` (successful answers are
        cached first), :class:`DataError` on a malformed prompt (before any request is sent).
        """
        if isinstance(prompts, (str, Mapping)):
            raise DataError("complete() takes a list of prompts; use complete_one() for a single prompt")
        params = params if params is not None else self.params
        convos = [normalize_prompt(p, i) for i, p in enumerate(prompts)]
        results: list[Completion | None] = [None] * len(convos)

        cache, model_id = self._active_cache()
        keys: list[str] = []
        if cache is not None and model_id is not None:
            pdict = params.to_dict()
            keys = [cache_key(self.name, model_id, c, pdict) for c in convos]
            for i, k in enumerate(keys):
                entry = cache.get(k)
                if entry is not None:
                    c = entry["completion"]
                    results[i] = Completion(c["text"], c.get("finish_reason"), cached=True)

        groups: dict[object, list[int]] = {}
        for i, r in enumerate(results):
            if r is None:
                groups.setdefault(keys[i] if keys else i, []).append(i)
        if groups:
            firsts = [idx[0] for idx in groups.values()]
            fresh = self._generate([convos[i] for i in firsts], params)
            if len(fresh) != len(firsts):
                raise BackendError(f"{self.describe()}: returned {len(fresh)} answers for {len(firsts)} prompts")
            for idx, comp in zip(groups.values(), fresh):
                for i in idx:
                    results[i] = comp
                if keys and comp.error is None and cache is not None:
                    cache.put(keys[idx[0]], {
                        "backend": self.name,
                        "model": model_id,
                        "messages": convos[idx[0]],
                        "params": params.to_dict(),
                        "completion": {"text": comp.text, "finish_reason": comp.finish_reason},
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
    failures worth retrying and :class:`~afscope.llm.retry.PermanentError` otherwise.
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
    ) -> None:
        super().__init__(model, cache=cache, params=params, on_error=on_error)
        if concurrency < 1:
            raise ConfigError(f"{type(self).__name__}: field 'concurrency': expected >= 1, got {concurrency}")
        if timeout_s <= 0:
            raise ConfigError(f"{type(self).__name__}: field 'timeout_s': expected > 0, got {timeout_s}")
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retry = retry if retry is not None else RetryPolicy()

    @abstractmethod
    def _attempt(self, messages: list[dict[str, str]], params: GenerationParams) -> Completion:
        """One try at one prompt (no retries here)."""

    def _generate(self, convos: list[list[dict[str, str]]], params: GenerationParams) -> list[Completion]:
        what = self.describe()
        stop = threading.Event()  # set on the first failure in "raise" mode: start nothing new

        def run(messages: list[dict[str, str]]) -> Completion:
            if stop.is_set():
                return Completion("", "skipped", error="skipped: an earlier prompt failed")
            try:
                return call_with_retries(lambda: self._attempt(messages, params), self.retry, what=what)
            except BackendError as e:
                if self.on_error == "raise":
                    stop.set()
                return Completion("", "error", error=str(e))

        if len(convos) == 1 or self.concurrency == 1:
            return [run(c) for c in convos]
        results: list[Completion | None] = [None] * len(convos)
        workers = min(self.concurrency, len(convos))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"afscope-{self.name}") as pool:
            futures = {pool.submit(run, c): i for i, c in enumerate(convos)}
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
    }


def concurrent_kwargs(cfg: LLMConfig) -> dict[str, Any]:
    """:func:`common_kwargs` plus what every :class:`ConcurrentBackend` takes (pool, timeout, retry)."""
    return {**common_kwargs(cfg), "concurrency": cfg.concurrency, "timeout_s": cfg.timeout_s,
            "retry": retry_policy_from_config(cfg)}
