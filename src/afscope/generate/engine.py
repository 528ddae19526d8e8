"""Batched generation on a transformers causal LM: chat templates, left padding, KV cache, stop
strings, per-row seeds and optional per-row steering.

Prompts are rendered with the model's chat template (``PLAIN_TEMPLATE`` for base models), encoded
without extra special tokens (a BOS only where the tokenizer adds one and the template did not),
sorted by length so a batch wastes little padding, left-padded and decoded by ``model.generate``
under ``torch.inference_mode()`` with the KV cache. Greedy when ``temperature == 0``.

Sampling is done by :class:`RowSampler`: the Gumbel-max trick with one RNG stream per *row* (seeded
by the row's seed and the step), so a sampled answer does not depend on which other prompts share
its batch, on the batch size, or on a resume: the same ``(seed, row)`` gives the same text. Greedy
answers are the same alone or in a batch (tested in fp32).

Answers are the new tokens up to the first EOS, decoded without special tokens and cut before the
first stop string (``finish_reason`` ``"stop"``), else ``"length"``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from afscope.errors import DataError
from afscope.generate.params import GenerationParams, apply_stop
from afscope.generate.steering import Steering, check_width, steer_batch
from afscope.progress import track

Prompt = str | Sequence[dict[str, str]] | Sequence[int]
BatchContext = Callable[[Sequence[int], torch.Tensor], contextlib.AbstractContextManager]


@dataclass(frozen=True)
class Generation:
    """One answer: decoded ``text``, its ``token_ids`` (up to EOS) and the prompt length."""

    text: str
    token_ids: list[int]
    finish_reason: str
    n_prompt_tokens: int


@contextlib.contextmanager
def eval_mode(module: Any) -> Iterator[None]:
    """Dropout off while generating; the caller's train/eval state is restored afterwards."""
    was_training = bool(getattr(module, "training", False))
    module.eval()
    try:
        yield
    finally:
        if was_training:
            module.train()


def eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """EOS ids of both the tokenizer and the model's generation config (chat models often have
    ``<|im_end|>`` in one and ``</s>`` in the other)."""
    ids: list[int] = []
    for value in (getattr(tokenizer, "eos_token_id", None),
                  getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            if isinstance(v, int) and v not in ids:
                ids.append(v)
    return ids


def encoder(tokenizer: Any) -> Any:
    """``text -> ids`` keeping the template's special tokens, adding a BOS only where the tokenizer
    normally adds one and the rendered text lacks it (Gemma needs ``<bos>``; ChatML has its own)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    adds_bos = bos is not None and tokenizer("a")["input_ids"][:1] == [bos]

    def encode(text: str) -> list[int]:
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        if adds_bos and ids[:1] != [bos]:
            ids.insert(0, bos)
        return ids

    return encode


def render_prompt(tokenizer: Any, prompt: Prompt, template: str | None = None) -> str:
    """The exact text the model reads for a chat or string prompt (template + generation prompt)."""
    from afscope.models.chat import render_chat

    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    return render_chat(tokenizer, messages, add_generation_prompt=True, template=template)  # type: ignore[arg-type]


def encode_prompts(tokenizer: Any, prompts: Sequence[Prompt], template: str | None = None
                   ) -> list[list[int]]:
    """Token ids of every prompt; ``list[int]`` prompts pass through unchanged."""
    encode = encoder(tokenizer)
    out = []
    for i, p in enumerate(prompts):
        if isinstance(p, str) and not p:
            raise DataError(f"prompt {i}: empty text")
        if not isinstance(p, str) and len(p) > 0 and all(isinstance(t, int) for t in p):
            out.append(list(p))  # type: ignore[arg-type]
        else:
            ids = encode(render_prompt(tokenizer, p, template))
            if not ids:
                raise DataError(f"prompt {i}: renders to no tokens")
            out.append(ids)
    return out


class RowSampler:
    """A logits processor that turns greedy decoding into per-row seeded sampling.

    ``argmax(log_softmax(z / T) + Gumbel)`` is an exact sample of ``softmax(z / T)`` (after top-p);
    the Gumbel noise of row ``r`` at step ``s`` comes from its own generator seeded with
    ``(seeds[r], s)``, so rows never share a random stream.
    """

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float) -> None:
        self.seeds = list(seeds)
        self.temperature = temperature
        self.top_p = top_p
        self.step = 0
        self._gen = torch.Generator()

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        z = scores.float() / self.temperature  # (B, V)
        if self.top_p < 1.0:
            from transformers import TopPLogitsWarper

            z = TopPLogitsWarper(self.top_p)(input_ids, z)
        noise = torch.empty_like(z, device="cpu")
        for r, seed in enumerate(self.seeds):
            self._gen.manual_seed((seed * 1_000_003 + self.step) % (2**63 - 1))
            noise[r].uniform_(1e-12, 1.0, generator=self._gen)
        self.step += 1
        gumbel = -torch.log(-torch.log(noise)).to(z.device)
        return torch.log_softmax(z, dim=-1) + gumbel


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    params: GenerationParams | None = None,
    *,
    steering: Steering | Sequence[Steering | None] | None = None,
    seeds: Sequence[int] | None = None,
    batch_size: int = 16,
    template: str | None = None,
    description: str | None = None,
    batch_context: BatchContext | None = None,
    suppress_first: Sequence[int] = (),
) -> list[Generation]:
    """Generate an answer for every prompt, in input order.

    ``prompts``: strings (one user turn), chats (lists of ``{"role", "content"}``) or token id lists.
    ``steering``: one :class:`Steering` for all rows, or one (or None) per prompt. ``seeds``: the
    per-row sampling seeds (default ``params.seed + index``); unused when greedy.
    ``description`` shows a progress bar over batches. ``batch_context(rows, attention)``, given the
    input indices of a batch and its ``(B, T)`` left-padded prompt mask, returns a context manager
    entered around that batch's decoding (e.g. hooks that edit prompt positions: the explainer's
    continuous tokens). ``suppress_first``: token ids the first new token may not be (an answer
    that must not be empty: no EOS, no newline first).
    """
    params = params if params is not None else GenerationParams()
    if batch_size < 1:
        raise DataError(f"generate: batch_size must be >= 1, got {batch_size}")
    ids = encode_prompts(tokenizer, prompts, template)
    n = len(ids)
    if steering is None or isinstance(steering, Steering):
        per_row: list[Steering | None] = [steering] * n
    else:
        per_row = list(steering)
        if len(per_row) != n:
            raise DataError(f"generate: {len(per_row)} steering entries for {n} prompts")
    d_model = model.get_input_embeddings().weight.shape[1]
    for s in {id(s): s for s in per_row if s is not None}.values():
        check_width(s, d_model)
    row_seeds = list(seeds) if seeds is not None else [params.seed + i for i in range(n)]
    if len(row_seeds) != n:
        raise DataError(f"generate: {len(row_seeds)} seeds for {n} prompts")

    order = sorted(range(n), key=lambda i: len(ids[i]))
    batches = [order[s:s + batch_size] for s in range(0, n, batch_size)]
    results: list[Generation | None] = [None] * n
    with torch.inference_mode(), eval_mode(model):
        it = track(batches, description) if description else batches
        for chunk in it:
            ctx = (lambda att, c=chunk: batch_context(c, att)) if batch_context else None
            outs = _generate_batch(model, tokenizer, [ids[i] for i in chunk], params,
                                   [per_row[i] for i in chunk], [row_seeds[i] for i in chunk], ctx,
                                   suppress_first)
            for i, g in zip(chunk, outs):
                results[i] = g
    return [r for r in results if r is not None]


def _generate_batch(model: Any, tok: Any, seqs: list[list[int]], params: GenerationParams,
                    steering: list[Steering | None], seeds: list[int],
                    context: Callable[[torch.Tensor], contextlib.AbstractContextManager] | None
                    = None, suppress_first: Sequence[int] = ()) -> list[Generation]:
    eos = eos_ids(model, tok)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else (eos[0] if eos else 0)
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)  # (B, T), left-padded
    attention = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        input_ids[r, width - len(s):] = torch.tensor(s, dtype=torch.long)
        attention[r, width - len(s):] = 1
    kwargs: dict[str, Any] = dict(max_new_tokens=params.max_tokens, pad_token_id=pad_id,
                                  eos_token_id=eos or None, do_sample=False, num_beams=1)
    if not params.greedy:
        from transformers import LogitsProcessorList

        kwargs["logits_processor"] = LogitsProcessorList(
            [RowSampler(seeds, params.temperature, params.top_p)])
    if params.stop:
        kwargs.update(stop_strings=list(params.stop), tokenizer=tok)
    if suppress_first:
        kwargs["begin_suppress_tokens"] = list(suppress_first)
    device = next(model.parameters()).device
    with steer_batch(model, steering, attention), \
            (context(attention) if context else contextlib.nullcontext()):
        out = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                             **kwargs)
    ends = set(eos) | {pad_id}  # a row stopped by a stop string is padded after it
    gens = []
    for r, row in enumerate(out[:, width:].tolist()):
        end = next((k for k, t in enumerate(row) if t in ends), None)
        tokens = row if end is None else row[:end]
        text, cut = apply_stop(tok.decode(tokens, skip_special_tokens=True), params.stop)
        gens.append(Generation(text, tokens, "stop" if end is not None or cut else "length",
                               len(seqs[r])))
    return gens
