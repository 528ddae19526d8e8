"""``LLMConfig``: which backend answers, with what model, how hard it retries and where it caches.

The API key itself is never a field: only the *name* of the environment variable that holds it
(``api_key_env``), so a saved config, a manifest or a ``repr`` can never leak a secret. A value that
does not look like a variable name (``sk-...`` pasted by mistake) is rejected without echoing it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, field_validator

from afscope.config import BaseConfig, load_yaml

if TYPE_CHECKING:
    from afscope.llm.base import GenerationParams

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class LLMConfig(BaseConfig):
    """Settings of one LLM backend (judge, autointerp describer, data generator)."""

    # hide_input_in_errors: a secret pasted into the wrong field must not appear in an error.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, hide_input_in_errors=True)

    backend: str = Field(
        "transformers",
        description="Backend name: transformers (local, offline), openai (any OpenAI-compatible "
        "server: vLLM, llama.cpp, OpenAI), anthropic, claude-cli.",
    )
    model: str | None = Field(
        None,
        description="Model name. transformers: an afscope model name, HF id or path "
        "(default smollm2-135m-instruct); openai/anthropic: required; claude-cli: optional.",
    )
    base_url: str | None = Field(
        None,
        description="Server URL. openai: e.g. http://127.0.0.1:8000/v1 (default "
        "https://api.openai.com/v1); anthropic: default https://api.anthropic.com.",
    )
    api_key_env: str | None = Field(
        None,
        description="NAME of the environment variable holding the API key (default "
        "OPENAI_API_KEY / ANTHROPIC_API_KEY). The key itself is never stored.",
    )
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature; 0 = greedy.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass (used if temperature > 0).")
    max_tokens: int = Field(512, gt=0, description="Maximum number of generated tokens per answer.")
    seed: int = Field(0, description="Sampling seed (local backend; sent to servers that accept one).")
    stop: list[str] = Field(default_factory=list, description="Stop strings; the answer is cut before them.")
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout in seconds (HTTP and CLI).")
    max_retries: int = Field(5, ge=0, description="Retries after the first attempt on transient failures.")
    backoff_base_s: float = Field(1.0, ge=0, description="First retry delay; doubles each retry, with jitter.")
    backoff_max_s: float = Field(60.0, ge=0, description="Upper bound of one backoff delay.")
    concurrency: int = Field(4, ge=1, description="Parallel requests (HTTP and CLI backends).")
    batch_size: int = Field(8, ge=1, description="Prompts per generate() batch (transformers backend).")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Weights dtype (transformers backend); part of the cache identity."
    )
    device: str = Field("cpu", description="Torch device, e.g. cpu or cuda:0 (transformers backend).")
    cache_dir: Path | None = Field(
        None, description="Directory of the on-disk response cache; unset = no cache."
    )
    on_error: Literal["raise", "record"] = Field(
        "raise",
        description="raise: a failed item stops the batch with BackendError; record: failures come "
        "back as Completion.error and are counted by the caller.",
    )
    structured: Literal["auto", "off", "json_schema", "vllm", "prefill"] = Field(
        "auto",
        description="How answers in a fixed format (judge verdicts, autointerp labels, scores, "
        "descriptions) are asked for. auto: transformers scores each allowed option's "
        "log-likelihood and forces the 'KEY:' prefix of free text; openai and anthropic send a "
        "JSON schema. json_schema (openai: response_format; anthropic: output_config), vllm "
        "(openai: vLLM >= 0.12 structured_outputs regex of the exact lines), prefill (anthropic: "
        "the answer starts with the first 'KEY:'). off: free text. Every reply is parsed "
        "strictly; a server that refuses the structured field (HTTP 400) is asked again without "
        "it, and the fallback is counted.",
    )
    anthropic_version: str = Field("2023-06-01", description="anthropic-version header (anthropic).")
    cli_binary: str = Field("claude", description="Executable of the claude CLI (claude-cli).")
    cli_extra_args: list[str] = Field(
        default_factory=list, description="Extra arguments passed to the claude CLI (claude-cli)."
    )

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        from afscope.llm.base import available_backends

        names = available_backends()
        if v not in names:
            raise ValueError(f"unknown backend {v!r}; expected one of {', '.join(names)}")
        return v

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        # The message deliberately does not repeat the value: it may be the key itself.
        if v is not None and not _ENV_NAME.match(v):
            raise ValueError(
                "must be the NAME of an environment variable (letters, digits, _), not the key itself"
            )
        return v

    def generation_params(self) -> GenerationParams:
        """The default :class:`GenerationParams` of backends built from this config."""
        from afscope.llm.base import GenerationParams

        return GenerationParams(
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            top_p=self.top_p,
            seed=self.seed,
            stop=tuple(self.stop),
        )


def llm_from_flag(v: Any) -> Any:
    """An ``--llm`` flag value (a YAML file path or an inline YAML mapping such as
    ``'{backend: claude-cli}'``) as a dict for :class:`LLMConfig`; other values pass through."""
    if isinstance(v, (str, Path)):
        text = str(v).strip()
        if text.endswith((".yaml", ".yml")) and Path(text).is_file():
            return load_yaml(text)
        import yaml

        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"not a YAML mapping or a .yaml file: {e}") from None
        if not isinstance(value, dict):
            raise ValueError("expected a YAML mapping like '{backend: claude-cli}' or a .yaml file")  # noqa: TRY004
        return value
    return v


class ServerConfig(BaseConfig):
    """An OpenAI-compatible server (vLLM, llama.cpp server) doing a command's *unsteered*
    generation instead of the local engine. Decoding (greedy, max tokens, seed, stop) stays the
    command's own; these fields only say where to send it. Prompts are rendered and tokenized
    here, with the command's model's tokenizer, and sent as token ids to ``/completions``, so the
    server reads exactly the tokens the local engine would."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, hide_input_in_errors=True)

    base_url: str = Field(description="Server URL up to /v1, e.g. http://127.0.0.1:8000/v1 "
                          "(vllm serve MODEL --port 8000).")
    model: str | None = Field(None, description="Model name the server serves (vLLM "
                              "--served-model-name, or a --lora-modules name for an organism "
                              "adapter). Unset = the command's model.")
    api_key_env: str | None = Field(None, description="NAME of the environment variable with "
                                    "the key (vLLM --api-key); the key itself is never stored.")
    concurrency: int = Field(32, ge=1, description="Requests in flight; the server batches "
                             "them itself (vLLM continuous batching).")
    timeout_s: float = Field(600.0, gt=0, description="Per-request timeout in seconds.")
    max_retries: int = Field(5, ge=0, description="Retries of a request on transient failures "
                             "(5xx, 429, timeouts, connection errors).")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        return LLMConfig._env_name(v)

    def llm_config(self, model: str) -> LLMConfig:
        """The :class:`LLMConfig` of the ``openai`` backend that talks to this server; ``model``
        is the command's model, used when :attr:`model` is unset."""
        return LLMConfig(backend="openai", model=self.model or model, base_url=self.base_url,
                         api_key_env=self.api_key_env, concurrency=self.concurrency,
                         timeout_s=self.timeout_s, max_retries=self.max_retries)


def server_from_flag(v: Any) -> Any:
    """A ``--server`` value: a URL (``http://host:8000/v1``), a YAML file or an inline mapping."""
    if isinstance(v, str) and v.strip().startswith(("http://", "https://")):
        return {"base_url": v.strip()}
    return llm_from_flag(v)


ServerField = Annotated[ServerConfig | None, BeforeValidator(server_from_flag)]
"""The ``server`` field of the commands that can generate on an OpenAI-compatible server."""
