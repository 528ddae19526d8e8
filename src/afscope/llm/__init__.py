"""LLM backends for judging, autointerp and data generation, behind one interface.

>>> from afscope.llm import LLMConfig, make_backend
>>> llm = make_backend(LLMConfig(backend="openai", model="qwen", base_url="http://127.0.0.1:8000/v1"))
>>> llm.complete(["Say hi", [{"role": "system", "content": "Be brief."},
...                          {"role": "user", "content": "Say hi"}]])      # doctest: +SKIP

Backends (``LLMConfig.backend``): ``transformers`` (local, offline default), ``openai`` (any
OpenAI-compatible server), ``anthropic``, ``claude-cli``. Temperature 0 by default; an optional
on-disk cache; retries with backoff; keys only from environment variables. Wrap untrusted text
(traces) with :func:`delimit` before putting it in a prompt.

Answers in a fixed ``KEY: value`` format go with a :class:`Form`
(``llm.complete(prompts, form=...)``): the local backend fills it exactly (option log-likelihoods,
forced prefixes), servers get a JSON schema or a regex, and the caller parses strictly either way.
"""

from afscope.generate.params import apply_stop
from afscope.llm.anthropic import AnthropicBackend
from afscope.llm.base import (
    Completion,
    ConcurrentBackend,
    GenerationParams,
    LLMBackend,
    available_backends,
    get_backend_class,
    make_backend,
    register_backend,
)
from afscope.llm.cache import ResponseCache, cache_key
from afscope.llm.claude_cli import ClaudeCLIBackend
from afscope.llm.config import LLMConfig
from afscope.llm.form import Form, FormField, choice_field, scale, text_field

# Importing the backend modules registers them.
from afscope.llm.local import TransformersBackend  # noqa: I001
from afscope.llm.openai_http import OpenAIBackend, post_json
from afscope.llm.prompts import (
    ChatPrompt,
    Message,
    PromptLike,
    delimit,
    normalize_prompt,
    split_system,
)
from afscope.llm.scoring import Choice
from afscope.llm.retry import (
    PermanentError,
    RetryPolicy,
    TransientError,
    call_with_retries,
)

__all__ = [
    "AnthropicBackend", "ChatPrompt", "Choice", "ClaudeCLIBackend", "Completion",
    "ConcurrentBackend", "Form", "FormField", "GenerationParams", "LLMBackend", "LLMConfig",
    "Message", "OpenAIBackend", "PermanentError", "PromptLike", "ResponseCache", "RetryPolicy",
    "TransformersBackend", "TransientError", "apply_stop", "available_backends", "cache_key",
    "call_with_retries", "choice_field", "delimit", "get_backend_class", "make_backend",
    "normalize_prompt", "post_json", "register_backend", "scale", "split_system", "text_field",
]
