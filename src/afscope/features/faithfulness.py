"""Faithfulness: does a feature's description predict where the feature fires?

The paper (arXiv 2511.08579) scores a description by how well a simulator, given only the
description, predicts the latent's activations. Here the simulator ranks held-out contexts
(:func:`afscope.features.tokens.held_out_contexts`: activating and non-activating token windows
from cache rows no target was read from), and the score is the AUROC of that ranking against
"the latent is active here": 0.5 is no information, 1.0 a perfect prediction.

- :func:`token_auroc` (offline, deterministic): for token-list descriptions, a context scores 1
  when its token is one of the named tokens.
- :func:`embedding_auroc` (offline): for free text, the cosine similarity of the description's
  embedding (MiniLM by default) to each context's embedding.

Both work on autointerp descriptions and on explainer outputs alike. A context is a dict
``{"text": str, "token": str, "act": float}``; ``act > 0`` marks an activating one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

#: texts -> (n, d) unit-norm embeddings
Embed = Callable[[Sequence[str]], np.ndarray]


def _labels(contexts: Sequence[dict[str, Any]]) -> np.ndarray:
    return np.asarray([float(c["act"]) > 0 for c in contexts], dtype=bool)


def _auroc(y: np.ndarray, score: np.ndarray) -> float | None:
    if y.all() or not y.any():
        return None
    return float(roc_auc_score(y, score))


def token_auroc(named: Sequence[str] | None, contexts: Sequence[dict[str, Any]]) -> float | None:
    """AUROC of "the context's token is named" against "the latent is active there"; a
    description naming nothing scores 0.5. None without both kinds of context."""
    y = _labels(contexts)
    want = {t.strip().lower() for t in named or ()}
    score = np.asarray([c["token"] in want for c in contexts], dtype=np.float64)
    return _auroc(y, score)


def embedding_auroc(description: str, contexts: Sequence[dict[str, Any]], embed: Embed
                    ) -> float | None:
    """AUROC of the description-to-context cosine similarity against "the latent is active
    there". None without both kinds of context."""
    y = _labels(contexts)
    if y.all() or not y.any():
        return None
    vecs = embed([description or " ", *[c["text"] or " " for c in contexts]])
    score = vecs[1:] @ vecs[0]
    return _auroc(y, score)


def unseen_contexts(row: dict[str, Any], contexts: dict[int, list[dict[str, Any]]]
                    ) -> list[dict[str, Any]]:
    """The contexts of a descriptions row's feature from cache rows its describer was not shown
    (``top``/``zero``)."""
    shown = {int(s["row"]) for s in [*row.get("top", []), *row.get("zero", [])]}
    return [c for c in contexts.get(int(row["feature"]), []) if int(c.get("row", -1)) not in shown]


def description_faithfulness(rows: Sequence[dict[str, Any]],
                             contexts: dict[int, list[dict[str, Any]]],
                             embed: Embed | None = None) -> dict[int, dict[str, Any]]:
    """Faithfulness of each parsed row of ``descriptions.jsonl``: the token AUROC when the row
    names ``tokens`` (an explainer's token answer), else the embedding AUROC of its free text
    (needs ``embed``). Contexts from a cache row the describer was shown (``top``/``zero``) are
    left out, so a description is never scored on the samples it was written from.

    Returns ``{feature: {"scorer": "tokens"|"embedding", "auroc": float|None, "n_pos", "n_neg"}}``.
    """
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        if r.get("status") != "ok":
            continue
        f = int(r["feature"])
        ctx = unseen_contexts(r, contexts)
        y = _labels(ctx)
        named = r.get("tokens")
        if named is not None:
            scorer, auroc = "tokens", token_auroc(named, ctx)
        elif embed is not None:
            scorer, auroc = "embedding", embedding_auroc(r["description"], ctx, embed)
        else:
            continue
        out[f] = {"scorer": scorer, "auroc": auroc, "n_pos": int(y.sum()),
                  "n_neg": int((~y).sum())}
    return out
