"""Constrained answers from a local causal LM: option log-likelihoods and forced-prefix text.

:func:`fill_forms` writes a :class:`~afscope.llm.form.Form` the way a model that always follows
the format would: line by line, after the chat prompt,

- a **choice** line ``KEY: <option>`` takes the option whose continuation ``"KEY: <option>\\n"``
  (after the lines already written) has the highest log-likelihood;
- a **free-text** line is generated greedily (or sampled, per the params) after the forced prefix
  ``KEY:``, its first token neither blank nor a line end, and cut at the end of the line (and to
  the field's ``max_chars``, after the last sentence that fits).

Scores are **sums** of token log-probabilities, not per-token means: the sum is the probability
the model gives to writing exactly that answer, and the ``\\n`` that ends every option makes it a
complete answer (without it, "1" would always beat "10", whose first token it shares). A mean
would favour options that happen to span more tokens. Choices are always the arg-max (the
temperature applies to free text only), so a judged label is deterministic.

Cost: one forward over the prompt per row, cached (:class:`PromptState`) and extended by the
text every option shares, then one forward per option set over the options' own tokens, packed
into a single row (or, for sliding-window models, a batch of rows). Continuations are encoded on
their own, as generation would produce them after the prompt. Tokens that every option shares at
the start (the lines already written, ``KEY:``) have the same log-probability in every option, so
they are left out of the scores: the differences between options, and so the choice, are exact.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from afscope.generate.engine import encoder, eos_ids, eval_mode, generate, render_prompt
from afscope.generate.params import GenerationParams
from afscope.llm.form import Form

#: Upper bound on logits held at once when scoring options (rows x positions x vocab floats):
#: a 262k-token vocabulary (Gemma) would otherwise need gigabytes for a long option set.
MAX_LOGITS = 32_000_000


@dataclass(frozen=True)
class Choice:
    """The option picked for one prompt: its ``index`` in the options, the ``option`` itself and
    every option's ``logprobs`` (sums over the tokens after the options' shared token prefix)."""

    index: int
    option: str
    logprobs: tuple[float, ...]


def encode_continuation(tokenizer: Any, text: str) -> list[int]:
    """Token ids of text that follows a prompt: no special tokens, no BOS."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def shared_prefix(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix all ``seqs`` share, leaving at least one token of each."""
    k = min(len(s) for s in seqs) - 1
    for i in range(max(k, 0)):
        if len({s[i] for s in seqs}) > 1:
            return i
    return max(k, 0)


def cache_argument(model: Any) -> str:
    """The name ``forward`` takes the KV cache under: ``cache`` (recent transformers) or
    ``past_key_values`` (older, and models that still use it)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def packable(model: Any) -> bool:
    """Whether options can share one row under a custom 4D attention mask: every layer attends
    to the whole prefix (no sliding window, which a custom mask would override) and the attention
    implementation reads such a mask (sdpa, eager)."""
    cfg = getattr(model.config, "text_config", None) or model.config
    window = getattr(cfg, "sliding_window", None)
    sliding = (window is not None and getattr(cfg, "use_sliding_window", True)) or \
        "sliding_attention" in (getattr(cfg, "layer_types", None) or [])
    return not sliding and getattr(cfg, "_attn_implementation", "sdpa") in ("sdpa", "eager")


class PromptState:
    """The KV cache of one prompt ``(1, P)``, extended by the tokens every option shares (the
    answer lines written so far and the next ``KEY:``), so that an option set costs one forward
    over those new shared tokens and the options' own tokens only.

    Packed (models without a sliding window): the new shared tokens and every option's tokens go
    in one row under a block-causal 4D attention mask (each option sees the prefix and its own
    earlier tokens only), and the options are cropped from the cache afterwards: one pass over
    the weights per option set and no copy of the cache. Otherwise the shared tokens are fed
    first and the options run as a batch of right-padded rows over a copy of the cache repeated
    per row.
    """

    def __init__(self, model: Any, ids: Sequence[int]) -> None:
        self.model = model
        self.cache_kw = cache_argument(model)
        self.packed = packable(model)
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.n_prompt = len(ids)
        out = self._forward(list(ids), None, logits_to_keep=1)
        self._base = (getattr(out, self.cache_kw), self._logprobs(out.logits[0, -1]))
        self._reset()

    def _reset(self) -> None:
        self.cache = copy.deepcopy(self._base[0])
        self.next_logprobs = self._base[1]  # (V,) of the token after the cached ones
        self.extra: list[int] = []          # tokens cached after the prompt

    @torch.no_grad()
    def _forward(self, ids: list[int], cache: Any, **kw: Any) -> Any:
        x = torch.tensor([ids], dtype=torch.long, device=self.device)  # (1, T)
        return self.model(input_ids=x, use_cache=True, **{self.cache_kw: cache}, **kw)

    @staticmethod
    def _logprobs(logits: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(logits.float(), dim=-1)

    def _sync(self, shared: list[int]) -> list[int]:
        """The tokens of ``shared`` still to feed after the cached ones (restarting from the
        prompt when ``shared`` does not extend them: tokenized differently than before)."""
        m = next((i for i, (a, b) in enumerate(zip(self.extra, shared)) if a != b),
                 min(len(self.extra), len(shared)))
        if m < len(self.extra):
            self._reset()
            m = 0
        return shared[m:]

    def extend(self, shared: Sequence[int]) -> None:
        """Make the cache hold the prompt followed by exactly ``shared``."""
        shared = list(shared)
        new = self._sync(shared)
        if new:
            out = self._forward(new, self.cache, logits_to_keep=1)
            self.next_logprobs = self._logprobs(out.logits[0, -1])
        self.extra = shared

    def score(self, conts: Sequence[Sequence[int]], pad_id: int = 0) -> list[float]:
        """Sum of log P(token) over the tokens of each continuation after their shared prefix."""
        k = shared_prefix(conts)
        shared = list(conts[0][:k])
        tails = [list(c[k:]) for c in conts]  # each keeps at least one token
        extra = [0.0] * len(tails)
        rows = [i for i, t in enumerate(tails) if len(t) > 1]
        chunks = self._chunks([tails[i] for i in rows])
        if self.packed:
            new = self._sync(shared)
            for n, (lo, hi) in enumerate(chunks or [(0, 0)]):
                feed = new if n == 0 else []  # the first forward also feeds the shared tokens
                for i, e in zip(rows[lo:hi], self._packed(feed, [tails[i] for i in rows[lo:hi]])):
                    extra[i] = e
        else:
            self.extend(shared)
            for lo, hi in chunks:
                for i, e in zip(rows[lo:hi], self._batched([tails[i] for i in rows[lo:hi]], pad_id)):
                    extra[i] = e
        return [float(self.next_logprobs[t[0]]) + e for t, e in zip(tails, extra)]

    def _chunks(self, tails: list[list[int]]) -> list[tuple[int, int]]:
        """``[lo, hi)`` ranges of ``tails`` whose logits stay within :data:`MAX_LOGITS`."""
        vocab = int(self.next_logprobs.shape[0])
        out, lo = [], 0
        while lo < len(tails):
            hi, width = lo + 1, len(tails[lo])
            while hi < len(tails) and (width + len(tails[hi])) * vocab <= MAX_LOGITS:
                width += len(tails[hi])
                hi += 1
            out.append((lo, hi))
            lo = hi
        return out

    def _packed(self, feed: list[int], tails: list[list[int]]) -> list[float]:
        """One row: ``feed`` (new shared tokens, kept in the cache), then ``tail[:-1]`` of every
        tail (dropped from the cache afterwards), each tail seeing the prefix, ``feed`` and its
        own earlier tokens; returns each tail's log-prob of ``tail[1:]``."""
        if not feed and not tails:
            return []
        n0, f = self.n_prompt + len(self.extra), len(feed)  # cached before; fed now
        segs = [t[:-1] for t in tails]
        q = f + sum(len(s) for s in segs)
        mask = torch.full((q, n0 + q), torch.finfo(self.dtype).min, dtype=self.dtype)  # (Q, P+Q)
        mask[:, :n0] = 0
        pos = []
        for j in range(f):
            mask[j, n0:n0 + j + 1] = 0
            pos.append(n0 + j)
        starts, at = [], f
        for s in segs:
            starts.append(at)
            mask[at:at + len(s), n0:n0 + f] = 0
            for j in range(len(s)):
                mask[at + j, n0 + at:n0 + at + j + 1] = 0
                pos.append(n0 + f + j)
            at += len(s)
        out = self._forward(feed + [t for s in segs for t in s], self.cache,
                            attention_mask=mask[None, None].to(self.device),  # (1, 1, Q, P+Q)
                            position_ids=torch.tensor([pos], device=self.device))
        if q > f:  # keep the shared tokens, drop the options (a negative count: every version)
            self.cache.crop(-(q - f))
        logits = out.logits[0].float()  # (Q, V)
        if f:
            self.next_logprobs = self._logprobs(logits[f - 1])
            self.extra = self.extra + feed
        lse = torch.logsumexp(logits[f:], dim=-1)
        return [sum(float(logits[a + j, t[j + 1]] - lse[a + j - f]) for j in range(len(t) - 1))
                for a, t in zip(starts, tails)]

    @torch.no_grad()
    def _batched(self, tails: list[list[int]], pad_id: int) -> list[float]:
        """The same for sliding-window models: one right-padded row per tail over a copy of the
        cache repeated per row (no mask needed: padding comes after each row's tokens, out of
        every scored position's view)."""
        width = max(len(t) for t in tails) - 1
        x = torch.full((len(tails), width), pad_id, dtype=torch.long)  # (B, L)
        for r, t in enumerate(tails):
            x[r, :len(t) - 1] = torch.tensor(t[:-1], dtype=torch.long)
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(len(tails))
        res = self.model(input_ids=x.to(self.device), use_cache=True, **{self.cache_kw: cache})
        logits = res.logits.float()  # (B, L, V)
        lse = torch.logsumexp(logits, dim=-1)
        return [sum(float(logits[r, j, t[j + 1]] - lse[r, j]) for j in range(len(t) - 1))
                for r, t in enumerate(tails)]


def choose(model: Any, tokenizer: Any, prompt_ids: Sequence[Sequence[int]],
           options: Sequence[str], prefixes: Sequence[str] | None = None) -> list[Choice]:
    """For each prompt (token ids), the option whose text, after ``prefixes[i]``, is most likely.

    Ties go to the earlier option. ``options`` are the exact continuation strings (include any
    terminator, e.g. ``"\\n"``, that makes an option a complete answer).
    """
    if not options:
        raise ValueError("choose: no options")
    pads = prefixes if prefixes is not None else [""] * len(prompt_ids)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = []
    with torch.inference_mode(), eval_mode(model):
        for ids, prefix in zip(prompt_ids, pads):
            state = PromptState(model, ids)
            lp = state.score([encode_continuation(tokenizer, prefix + o) for o in options], pad_id)
            best = max(range(len(options)), key=lambda i: (lp[i], -i))
            out.append(Choice(best, options[best], tuple(lp)))
    return out


@functools.lru_cache(maxsize=4)
def _blank_tokens(tokenizer: Any) -> tuple[int, ...]:
    vocab = len(tokenizer)
    texts = tokenizer.batch_decode([[i] for i in range(vocab)])
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    return tuple(i for i, t in enumerate(texts) if i in special or "\n" in t or not t.strip())


def empty_line_tokens(model: Any, tokenizer: Any) -> list[int]:
    """Tokens a free-text line may not start with: EOS and other special tokens, and any token
    that is blank or holds a newline (the line would end empty: small models do that readily
    after a forced ``KEY:``)."""
    return sorted(set(_blank_tokens(tokenizer)) | set(eos_ids(model, tokenizer)))


def fit(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars``: after its last full sentence that fits, else at
    the last word boundary (a free-text line has a length limit, like a token budget)."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars + 1]  # one more: a sentence may end exactly at the limit
    end = max(head.rfind(". "), head.rfind("! "), head.rfind("? "))
    if end > 0:
        return head[:end + 1]
    cut = text[:max_chars]
    return cut.rsplit(" ", 1)[0] if " " in cut else cut


def prompt_lead(rendered: str) -> str:
    """What goes between a rendered prompt and the answer's first key: nothing after a newline
    (chat templates), a space after ``"Assistant:"`` (the plain template of base models)."""
    return "" if not rendered or rendered[-1].isspace() else " "


def fill_forms(model: Any, tokenizer: Any, convos: Sequence[Sequence[dict[str, str]]],
               forms: Sequence[Form], params: GenerationParams, *,
               template: str | None = None) -> list[str]:
    """Each conversation's answer in its form's exact format (``Form.render`` text)."""
    encode = encoder(tokenizer)
    rendered = [render_prompt(tokenizer, list(c), template) for c in convos]
    prompt_ids = [encode(r) for r in rendered]
    leads = [prompt_lead(r) for r in rendered]
    heads = [""] * len(convos)   # the lines written so far, each ending in "\n"
    states: dict[int, PromptState] = {}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    # a free-text line ends at its newline, and may not run into the next key
    line_params = replace(params, stop=tuple(dict.fromkeys(("\n", *params.stop))))
    with torch.inference_mode(), eval_mode(model):
        for j in range(max(len(f.fields) for f in forms)):
            free = [i for i, f in enumerate(forms) if j < len(f.fields) and not f.fields[j].is_choice]
            if free:
                seqs = [prompt_ids[i] + encode_continuation(
                    tokenizer, leads[i] + heads[i] + forms[i].fields[j].key + ":") for i in free]
                gens = generate(model, tokenizer, seqs, line_params, batch_size=len(free),
                                seeds=[params.seed + i for i in free],
                                suppress_first=empty_line_tokens(model, tokenizer))
                for i, g in zip(free, gens):
                    value = fit(" ".join(g.text.split()), forms[i].fields[j].max_chars)
                    heads[i] += f"{forms[i].fields[j].key}: {value}\n"
            for i, f in enumerate(forms):
                if j >= len(f.fields) or not f.fields[j].is_choice:
                    continue
                field = f.fields[j]
                if i not in states:
                    states[i] = PromptState(model, prompt_ids[i])
                conts = [encode_continuation(tokenizer, f"{leads[i]}{heads[i]}{field.key}: {o}\n")
                         for o in field.options or ()]
                lp = states[i].score(conts, pad_id)
                best = max(range(len(lp)), key=lambda k: (lp[k], -k))
                heads[i] += f"{field.key}: {(field.options or ())[best]}\n"
    return [h.rstrip("\n") for h in heads]
