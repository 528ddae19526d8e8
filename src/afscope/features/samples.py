"""Which samples an LLM is shown for a feature, and how much of each.

- :class:`FeatureColumns` reads one feature's activations over all samples (CSC once, so 1,500
  features do not rescan a CSR matrix 1,500 times).
- :func:`pick_top` / :func:`pick_matched_zero`: the strongest activating samples and zero-activation
  samples drawn (seeded) to match the label mix of the activating ones, so the contrast an LLM sees
  is the feature, not the class.
- :func:`excerpt`: a window of at most ``max_chars`` characters, centred on the max-activating token
  where the per-token top-k store says where it is (else the head of the text).
- :class:`TokenPeaks`: from the per-token top-k store, each (feature, sample)'s max token and a
  window of token activations for reports.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

ELLIPSIS = "[...]"


class FeatureColumns:
    """Column access to a feature matrix ``(n, d)``: ``cols.get(f) -> (n,) float64``."""

    def __init__(self, X: Any):
        self._X = sp.csc_matrix(X) if sp.issparse(X) else np.asarray(X)
        self.n, self.d = self._X.shape

    def get(self, feature: int) -> np.ndarray:
        if sp.issparse(self._X):
            return np.asarray(self._X[:, feature].toarray(), dtype=np.float64).ravel()
        return np.asarray(self._X[:, feature], dtype=np.float64)


def pick_top(acts: np.ndarray, n: int, exclude: Collection[int] = ()) -> list[int]:
    """Rows of the ``n`` largest positive activations (ties: lower row first), minus ``exclude``."""
    rows = np.flatnonzero(acts > 0)
    if exclude:
        rows = rows[~np.isin(rows, list(exclude))]
    order = np.lexsort((rows, -acts[rows]))
    return [int(r) for r in rows[order][:n]]


def pick_matched_zero(acts: np.ndarray, y: np.ndarray, like: Sequence[int], n: int,
                      rng: np.random.Generator, exclude: Collection[int] = ()) -> list[int]:
    """``n`` rows where the feature is exactly 0, drawn with ``rng``; the first ``len(like)`` follow
    the labels of rows ``like`` where such rows exist, the rest (and any shortfall) come from any
    label."""
    pool = np.flatnonzero(acts == 0)
    if exclude:
        pool = pool[~np.isin(pool, list(exclude))]
    pool = rng.permutation(pool)
    taken: list[int] = []
    used: set[int] = set()
    for r in list(like)[:n]:
        match = next((int(p) for p in pool if int(p) not in used and y[p] == y[r]), None)
        if match is not None:
            taken.append(match)
            used.add(match)
    for p in pool:
        if len(taken) >= n:
            break
        if int(p) not in used:
            taken.append(int(p))
            used.add(int(p))
    return taken


def excerpt(text: str, max_chars: int, center: float | None = None) -> str:
    """At most ``max_chars`` characters of ``text`` (plus ``[...]`` marks where cut), a window around
    character ``center`` (clamped to the text), or the head when ``center`` is None."""
    if len(text) <= max_chars:
        return text
    if center is None:
        return text[:max_chars] + ELLIPSIS
    start = round(center) - max_chars // 2
    start = max(0, min(start, len(text) - max_chars))
    end = start + max_chars
    return (ELLIPSIS if start > 0 else "") + text[start:end] + (ELLIPSIS if end < len(text) else "")


class TokenPeaks:
    """Max-activating token of given features in every sample, from a per-token top-k store.

    ``topk`` has ``row, pos, token_id`` ``(m,)`` and ``indices, values`` ``(m, k)``
    (see ``ActivationCache.token_topk``). Only the top-k latents of each token are stored, so a
    feature's activation at a token outside its top-k reads as 0.
    """

    def __init__(self, topk: Any, features: Collection[int]):
        row = np.asarray(topk.row, dtype=np.int64)
        pos = np.asarray(topk.pos, dtype=np.int64)
        idx = np.asarray(topk.indices)
        val = np.asarray(topk.values, dtype=np.float64)
        k = idx.shape[1]
        order = np.lexsort((pos, row))                       # tokens in (row, pos) order
        self._row, self._pos = row[order], pos[order]
        self._tok = np.asarray(topk.token_id, dtype=np.int64)[order]
        idx, val = idx[order], val[order]
        rows, starts, counts = np.unique(self._row, return_index=True, return_counts=True)
        self._starts = dict(zip(rows.tolist(), starts.tolist()))
        self._ends = dict(zip(rows.tolist(), (starts + counts).tolist()))
        flat_feat = idx.reshape(-1)                          # (m*k,)
        keep = np.flatnonzero(np.isin(flat_feat, np.fromiter(features, dtype=np.int64)))
        tok_i = keep // k                                    # token index of each kept entry
        self._entries: dict[int, dict[int, tuple[int, float]]] = {}
        # max per (feature, row): sort by (feature, row, -value, token), keep each pair's first.
        f, r, v = flat_feat[keep].astype(np.int64), self._row[tok_i], val.reshape(-1)[keep]
        order = np.lexsort((tok_i, -v, r, f))
        f, r, v, t = f[order], r[order], v[order], tok_i[order]
        first = np.ones(f.size, dtype=bool)
        first[1:] = (f[1:] != f[:-1]) | (r[1:] != r[:-1])
        for fi, ri, ti, vi in zip(f[first].tolist(), r[first].tolist(), t[first].tolist(),
                                  v[first].tolist()):
            self._entries.setdefault(fi, {})[ri] = (ti, vi)
        self._val, self._idx = val, idx

    def peak(self, feature: int, row: int) -> tuple[int, float] | None:
        """``(token index in the store, activation)`` of the max token, or None."""
        return self._entries.get(feature, {}).get(row)

    def center_fraction(self, feature: int, row: int) -> float | None:
        """Where the max token sits in the sample, as a fraction of its masked tokens (0..1)."""
        hit = self.peak(feature, row)
        if hit is None:
            return None
        s, e = self._starts[row], self._ends[row]
        return (hit[0] - s + 0.5) / max(e - s, 1)

    def window(self, feature: int, row: int, width: int = 8,
               decode: Callable[[int], str] | None = None) -> list[list[Any]]:
        """``[[token, activation], ...]`` for ``width`` tokens either side of the max token;
        tokens are decoded with ``decode`` (else shown as ``<id>``)."""
        hit = self.peak(feature, row)
        if hit is None:
            return []
        s, e = self._starts[row], self._ends[row]
        out = []
        for t in range(max(s, hit[0] - width), min(e, hit[0] + width + 1)):
            match = self._idx[t] == feature
            act = float(self._val[t][match][0]) if match.any() else 0.0
            tid = int(self._tok[t])
            out.append([decode(tid) if decode is not None else f"<{tid}>", act])
        return out


def excerpt_for(text: str, max_chars: int, peaks: TokenPeaks | None, feature: int, row: int) -> str:
    """:func:`excerpt` centred on the max token (its position estimated as the same fraction of the
    characters as of the tokens) when ``peaks`` knows it, else the head."""
    frac = peaks.center_fraction(feature, row) if peaks is not None else None
    return excerpt(text, max_chars, None if frac is None else frac * len(text))
