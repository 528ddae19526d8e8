"""Unsteered generation on an OpenAI-compatible server (vLLM, llama.cpp server), row for row.

:class:`ServedModel` stands where the local causal LM stands in :func:`generate_rows`: prompts are
rendered with the model's chat template and tokenized *here* (:func:`encode_prompts`, the local
engine's own function), sent as token ids to the server's ``/completions``, and the answer's token
ids are decoded here the way the engine decodes them (up to the first EOS, special tokens
skipped, cut before the first stop string). The rows are therefore the local engine's rows: the same
fields, the same ``n_prompt_tokens``, and for greedy decoding the same text wherever the server's
numerics pick the same tokens (vLLM is not batch-invariant by default: near-ties may differ, as
between two GPUs).

Steering cannot go to a server: it edits the residual stream inside the forward pass, and vLLM has
no per-request hook for that. :func:`generate_rows` refuses the combination.

>>> from afscope.generate.served import served_target                      # doctest: +SKIP
>>> lm = served_target(ServerConfig(base_url="http://127.0.0.1:8000/v1"), "HuggingFaceTB/SmolLM2-135M-Instruct")
>>> generate_rows(lm.model, lm.tokenizer, items, store, GenerationParams(max_tokens=256))
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from afscope.errors import ArtifactError
from afscope.generate.engine import Generation, Prompt, encode_prompts
from afscope.generate.params import GenerationParams, apply_stop
from afscope.progress import track

if TYPE_CHECKING:
    from afscope.llm.config import ServerConfig
    from afscope.llm.openai_http import OpenAIBackend, ServedChoice
    from afscope.models import LoadedModel

logger = logging.getLogger(__name__)


class ServedModel:
    """A model answered by an OpenAI-compatible server, with its tokenizer in this process.

    ``backend``: the :class:`~afscope.llm.openai_http.OpenAIBackend` of the server.
    ``eos``: the ids that end an answer (the tokenizer's and the generation config's EOS).
    """

    def __init__(self, backend: OpenAIBackend, tokenizer: Any, eos: Sequence[int]) -> None:
        self.backend = backend
        self.tokenizer = tokenizer
        self.eos = list(eos)
        # the engine ends an answer at EOS or the pad id (its filler after a stopped row)
        pad = getattr(tokenizer, "pad_token_id", None)
        self._ends = set(self.eos) | ({pad} if isinstance(pad, int) else set())

    def __repr__(self) -> str:
        return f"ServedModel({self.backend.describe()})"

    def generate(self, prompts: Sequence[Prompt], params: GenerationParams, *,
                 seeds: Sequence[int], n: Sequence[int] | None = None,
                 template: str | None = None, batch_size: int = 64,
                 description: str | None = None) -> list[list[Generation]]:
        """``n[i]`` answers (default 1) to each prompt, as :class:`Generation` objects.

        ``seeds[i]`` is sent with prompt ``i``; sampled choice ``k`` of it is the server's
        ``seed + k`` stream (vLLM), so the same ``(seed, k)`` gives the same text on a resume.
        Requests go ``batch_size`` prompts at a time (the backend keeps ``concurrency`` of
        them in flight); a request that fails after its retries raises one ``BackendError``.
        """
        ids = encode_prompts(self.tokenizer, prompts, template)
        counts = list(n) if n is not None else [1] * len(ids)
        out: list[list[Generation]] = []
        starts = range(0, len(ids), batch_size)
        for lo in (track(list(starts), description) if description else starts):
            chunk = slice(lo, lo + batch_size)
            groups = sorted({c for c in counts[chunk]})
            answers: dict[int, list[ServedChoice]] = {}
            for k in groups:  # one call per distinct n: the backend's n is per call
                idx = [i for i in range(lo, min(lo + batch_size, len(ids))) if counts[i] == k]
                got = self.backend.complete_tokens([ids[i] for i in idx], params, n=k,
                                                   seeds=[seeds[i] for i in idx])
                answers.update(zip(idx, got))
            for i in range(lo, min(lo + batch_size, len(ids))):
                out.append([self._generation(c, len(ids[i]), params) for c in answers[i]])
        return out

    def _generation(self, choice: ServedChoice, n_prompt: int, params: GenerationParams
                    ) -> Generation:
        """A server choice as the local engine reports an answer: tokens up to the first EOS or
        pad id (vLLM's ``token_ids`` include the EOS), decoded here, cut before the first stop
        string."""
        if choice.token_ids is None:
            # a server that returns no ids (vLLM < 0.10.2, others): its text, re-tokenized here,
            # so n_new_tokens may differ from the server's count by a token or two
            text, cut = apply_stop(choice.text, params.stop)
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            return Generation(text, ids, "stop" if cut else (choice.finish_reason or "length"),
                              n_prompt)
        tokens = choice.token_ids
        end = next((k for k, t in enumerate(tokens) if t in self._ends), None)
        tokens = tokens if end is None else tokens[:end]
        text, cut = apply_stop(self.tokenizer.decode(tokens, skip_special_tokens=True), params.stop)
        reason = "stop" if end is not None or cut or choice.finish_reason == "stop" else "length"
        return Generation(text, list(tokens), reason, n_prompt)


def load_tokenizer(name_or_path: str, *, template: str | None = None) -> tuple[Any, list[int], str]:
    """The tokenizer of an afscope model name, local folder or hub id (no weights loaded), its
    EOS ids (tokenizer + ``generation_config.json``) and the folder/id it came from."""
    from transformers import AutoTokenizer, GenerationConfig

    from afscope.models.embedded import EMBEDDED, prepare

    source: str | Path = prepare(name_or_path) if name_or_path in EMBEDDED else name_or_path
    try:
        tok = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise ArtifactError(f"could not load the tokenizer of {name_or_path!r} (needed to render "
                            f"prompts for the server): {e}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    eos: list[int] = []
    try:
        gen_eos = GenerationConfig.from_pretrained(source).eos_token_id
    except (OSError, ValueError):
        gen_eos = None
    for v in (tok.eos_token_id, gen_eos):
        for t in (v if isinstance(v, (list, tuple)) else [v]):
            if isinstance(t, int) and t not in eos:
                eos.append(t)
    return tok, eos, str(source)


def served_target(server: ServerConfig, model: str, *, tokenizer: Any = None,
                  eos: Sequence[int] | None = None) -> LoadedModel:
    """A :class:`~afscope.models.LoadedModel` whose ``model`` is a :class:`ServedModel`:
    ``model`` names the tokenizer (and is the served name unless ``server.model`` says
    otherwise). ``info`` records the server, so a store made locally is never resumed from it."""
    from afscope.llm.base import make_backend
    from afscope.models import LoadedModel
    from afscope.models.loading import ModelInfo

    if tokenizer is None:
        tokenizer, found_eos, _ = load_tokenizer(model)
        eos = found_eos if eos is None else eos
    elif eos is None:
        eos = [tokenizer.eos_token_id] if isinstance(tokenizer.eos_token_id, int) else []
    backend = make_backend(server.llm_config(model))
    from afscope.llm.openai_http import safe_url

    info = ModelInfo(name=model, source=f"openai-server:{safe_url(server.base_url)}",
                     revision=None, weights_sha256=None,
                     architecture=f"served:{backend.model}", n_layers=0, d_model=0,
                     dtype="server", device="server",
                     has_chat_template=bool(getattr(tokenizer, "chat_template", None)))
    return LoadedModel(model=ServedModel(backend, tokenizer, eos or []),  # type: ignore[arg-type]
                       tokenizer=tokenizer, info=info)
