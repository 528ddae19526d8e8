"""What an SAE latent does at the token level: the tokens it fires on and the tokens it promotes.

Seed 000's Task 1 targets, grounded in the latent's own behaviour rather than in a describer LLM:

- :func:`fires_on`: from the per-token top-k cache (``afscope extract --sae --token-topk``), the
  tokens that make up most of the latent's strongest activations (a latent is "active" on a token
  when it is in that token's top-k).
- :func:`promotes`: the logit lens of the decoder direction ``W_dec[f]``: the model's final norm
  and unembedding applied to it, so the tokens the latent pushes the next-token prediction toward.
- :func:`held_out_contexts`: activating and non-activating token windows from cache rows that no
  target was read from, for the faithfulness scorers (:mod:`afscope.features.faithfulness`).

Token strings are compared after :func:`normalize_token` (stripped, lower-cased; whitespace-only
tokens get a visible name), so " The" and "the" are one token to every metric.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from afscope.extract.store import TokenTopK

#: decode one token id to its text
Decode = Callable[[int], str]


def normalize_token(text: str) -> str:
    """The comparison form of a token's text: stripped and lower-cased; whitespace-only tokens
    become ``[newline]`` (a newline in it) or ``[space]``."""
    s = text.strip().lower()
    if s:
        return s
    return "[newline]" if "\n" in text else "[space]"


class TokenNames:
    """Cached :func:`normalize_token` of a tokenizer's ids (decoding 40k ids one by one is slow)."""

    def __init__(self, tokenizer: Any):
        self._tok = tokenizer
        self._cache: dict[int, str] = {}
        self._special = set(getattr(tokenizer, "all_special_ids", []) or [])
        self._special |= set(getattr(tokenizer, "added_tokens_decoder", {}) or {})

    def __call__(self, token_id: int) -> str:
        t = int(token_id)
        if t not in self._cache:
            self._cache[t] = normalize_token(self._tok.decode([t]))
        return self._cache[t]

    def text(self, ids: Sequence[int]) -> str:
        """The decoded text of a window of token ids."""
        return str(self._tok.decode([int(i) for i in ids]))

    def usable(self, token_id: int) -> bool:
        """A token an explainer can name: not special, printable, not a broken byte, and free of
        the ``<<<``/``>>>`` that delimit names in an answer."""
        t = int(token_id)
        if t in self._special:
            return False
        name = self(t)
        return (name.isprintable() and "\ufffd" not in name and "<<<" not in name
                and ">>>" not in name)


def top_names(scores: torch.Tensor, names: TokenNames, *, k: int = 3, candidates: int = 64
              ) -> list[tuple[str, ...]]:
    """Per row of ``scores (N, V)`` over the vocabulary, the ``k`` distinct usable token names
    with the highest scores, looked for among the ``candidates`` best ids."""
    top = torch.topk(scores.float(), min(candidates, scores.shape[-1]), dim=-1).indices
    out: list[tuple[str, ...]] = []
    for ids in top.cpu().numpy():
        picked: list[str] = []
        for tid in ids:
            if names.usable(tid) and names(tid) not in picked:
                picked.append(names(tid))
            if len(picked) == k:
                break
        out.append(tuple(picked))
    return out


@dataclass(frozen=True)
class LatentTokens:
    """Token-level profile of one latent (names already normalized)."""

    feature: int
    fires_on: tuple[str, ...]  # most frequent among the top activations first
    coverage: float  # share of the top activations whose token is one of ``fires_on``
    n_active: int  # target-row tokens where the latent is in the top-k
    promotes: tuple[str, ...] = ()


def _by_feature(tt: TokenTopK, rows: np.ndarray, d_sae: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flattened (latent, value, token id) entries of the tokens of ``rows`` with value > 0,
    sorted by latent then descending value; plus ``starts (d_sae + 1,)`` into them."""
    keep = np.isin(tt.row, rows)
    k = tt.indices.shape[1]
    f = tt.indices[keep].ravel()
    v = tt.values[keep].ravel()
    t = np.repeat(tt.token_id[keep], k)
    pos = v > 0
    f, v, t = f[pos], v[pos], t[pos]
    order = np.lexsort((-v, f))
    f, v, t = f[order], v[order], t[order]
    starts = np.searchsorted(f, np.arange(d_sae + 1))
    return f, v, t, starts


def fires_on(tt: TokenTopK, rows: np.ndarray, d_sae: int, names: TokenNames, *,
             top_n: int = 32, max_tokens: int = 3, min_share: float = 0.1, min_count: int = 2,
             min_active: int = 5) -> dict[int, LatentTokens]:
    """Latents whose strongest activations sit on a few tokens: ``{feature: LatentTokens}``.

    For each latent, its ``top_n`` largest activations over the tokens of ``rows`` are grouped by
    normalized token; up to ``max_tokens`` tokens that each hold at least ``min_share`` of them
    (and ``min_count``) are its targets. Latents active on fewer than ``min_active`` tokens, or
    whose top activations are spread over many tokens, get no entry.
    """
    _, _, t, starts = _by_feature(tt, rows, d_sae)
    out: dict[int, LatentTokens] = {}
    for f in range(d_sae):
        s, e = int(starts[f]), int(starts[f + 1])
        if e - s < min_active:
            continue
        top = [tid for tid in t[s:min(e, s + top_n)] if names.usable(tid)]
        if not top:
            continue
        counts = Counter(names(tid) for tid in top)
        first = {}
        for tid in top:
            first.setdefault(names(tid), len(first))
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], first[kv[0]]))
        need = max(min_count, min_share * len(top))
        keep = [name for name, c in ranked[:max_tokens] if c >= need]
        if keep:
            cov = sum(counts[n] for n in keep) / len(top)
            out[f] = LatentTokens(feature=f, fires_on=tuple(keep), coverage=float(cov),
                                  n_active=e - s)
    return out


def _final_norm(model: torch.nn.Module) -> torch.nn.Module | None:
    base = getattr(model, "get_base_model", lambda: model)()
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    return getattr(decoder, "norm", None)


@torch.inference_mode()
def promotes(model: torch.nn.Module, directions: torch.Tensor, names: TokenNames, *, k: int = 3,
             chunk: int = 256, candidates: int = 64) -> list[tuple[str, ...]]:
    """Logit lens of ``directions (F, d_model)``: per row, the ``k`` distinct usable token names
    with the largest logits after the model's final norm and unembedding."""
    norm = _final_norm(model)
    head = model.get_output_embeddings()
    if head is None:
        raise ValueError("the model has no output embeddings (no logit lens)")
    W = head.weight  # (V, d_model)
    out: list[tuple[str, ...]] = []
    for part in torch.split(directions, chunk):
        x = part.to(W.device, W.dtype)
        if norm is not None:
            x = norm(x)
        out += top_names(x @ W.T, names, k=k, candidates=candidates)  # logits (chunk, V)
    return out


def split_rows(n_records: int, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of cache rows into ``(target rows, held-out rows)``, both sorted."""
    perm = np.random.default_rng(seed).permutation(n_records)
    n_held = int(round(n_records * held_out))
    return np.sort(perm[n_held:]), np.sort(perm[:n_held])


def _row_tokens(tt: TokenTopK, rows: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{row: (positions, token ids)}`` of the cached tokens of ``rows`` in position order."""
    out = {}
    for r in rows:
        sel = np.flatnonzero(tt.row == r)
        order = np.argsort(tt.pos[sel], kind="stable")
        out[int(r)] = (tt.pos[sel][order], tt.token_id[sel][order])
    return out


def held_out_contexts(tt: TokenTopK, rows: np.ndarray, features: Sequence[int],
                      decode_window: Callable[[Sequence[int]], str], names: TokenNames, *,
                      n_pos: int = 10, n_neg: int = 10, left: int = 12, seed: int = 0
                      ) -> dict[int, list[dict[str, Any]]]:
    """For each feature, up to ``n_pos`` activating (strongest first) and ``n_neg`` random
    non-activating token windows from ``rows``: ``{"text", "token", "act", "row"}``, where
    ``text`` is the ``left`` tokens up to and including the token, ``token`` its normalized name,
    ``act`` the latent's value there (0 for non-activating) and ``row`` the cache row."""
    keep = np.flatnonzero(np.isin(tt.row, rows))
    if not len(keep):
        return {}
    rng = np.random.default_rng(seed)
    tokens = _row_tokens(tt, rows)
    want = set(int(f) for f in features)
    active: dict[int, list[tuple[float, int]]] = {f: [] for f in want}
    for i in keep:
        for f, v in zip(tt.indices[i], tt.values[i]):
            if v > 0 and int(f) in want:
                active[int(f)].append((float(v), int(i)))

    def window(i: int) -> tuple[str, str]:
        r, p = int(tt.row[i]), int(tt.pos[i])
        pos, ids = tokens[r]
        j = int(np.searchsorted(pos, p))
        return decode_window(ids[max(0, j - left + 1): j + 1].tolist()), names(tt.token_id[i])

    out: dict[int, list[dict[str, Any]]] = {}
    for f in sorted(want):
        hits = sorted(active[f], key=lambda vi: (-vi[0], vi[1]))
        if not hits:
            continue
        on = {i for _, i in hits}
        ctx = []
        for v, i in hits[:n_pos]:
            text, tok = window(i)
            ctx.append({"text": text, "token": tok, "act": v, "row": int(tt.row[i])})
        off = keep[~np.isin(keep, list(on))]
        negs = rng.choice(off, min(n_neg, len(off)), replace=False) if len(off) else []
        for i in sorted(int(x) for x in negs):
            text, tok = window(i)
            ctx.append({"text": text, "token": tok, "act": 0.0, "row": int(tt.row[i])})
        out[f] = ctx
    return out
