"""``afscope explain data --task features --targets tokens``: grounded token-level feature targets.

Each live SAE latent gives up to two examples, its decoder row ``W_dec[f] (d_in,)`` as the vector
token (seed 000's Task 1, with targets read off the latent itself instead of a describer LLM):

* ``fires_on``: "Fires on: <<<tok>>>, ..." -- the tokens holding most of its strongest activations
  in the per-token top-k cache (:func:`afscope.features.tokens.fires_on`);
* ``promotes``: "Promotes: <<<tok>>>, ..." -- the logit lens of its decoder direction through the
  cache model's final norm and unembedding (:func:`afscope.features.tokens.promotes`).

Targets are read from a seeded share of the cache rows; the other rows give each test feature
held-out activating and non-activating contexts (``contexts.jsonl``) on which a prediction's
faithfulness is scored (:mod:`afscope.features.faithfulness`). Features are split by feature; a
test example is ``novel`` when none of its target tokens occurs in any training target of its
question type, so copying a neighbour's answer cannot score there; :func:`token_split` holds out a
share of the target tokens so that such features exist in numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from afscope.errors import ArtifactError, DataError
from afscope.explain.answers import tokens_sentence
from afscope.explain.schema import VECTOR_MARKER, Example, Message, VectorRef

CONTEXTS_FILE = "contexts.jsonl"

#: short on purpose: an explainer trains on a CPU in minutes, and every prompt token costs a
#: forward and backward pass through the whole model
TOKEN_SYSTEM = "Name tokens, in the form '{prefix} <<<token>>>, <<<token>>>.'"
QUESTIONS = {"fires_on": ("Fires on:", "Which tokens does it fire on?"),
             "promotes": ("Promotes:", "Which tokens does it promote?")}


def token_messages(qt: str, layer: int) -> list[Message]:
    """The prompt of a ``qt`` question about a feature at ``layer`` (one vector marker)."""
    prefix, question = QUESTIONS[qt]
    return [Message(role="system", content=TOKEN_SYSTEM.format(prefix=prefix)),
            Message(role="user", content=f"Layer {layer} feature {VECTOR_MARKER}. {question}")]


def token_example(f: int, qt: str, tokens: tuple[str, ...], layer: int, meta: dict[str, Any]
                  ) -> Example:
    """The ``qt`` example of feature ``f`` (SAE at ``layer``); ``reference.tokens`` the truth."""
    return Example(
        id=f"feature:{f}:{qt}", task="features", question_type=qt, unit=f"feature:{f}",
        messages=token_messages(qt, layer),
        answer=tokens_sentence(qt, tokens), reference={"tokens": list(tokens)},
        vectors=[VectorRef(key=f"feature:{f}", layer=layer)],
        meta={"feature": f, "layer": layer, **meta})


def _mark_novel(train: list[Example], test: list[Example]) -> list[Example]:
    seen: dict[str, set[str]] = {}
    for e in train:
        seen.setdefault(e.question_type, set()).update(e.reference["tokens"])
    out = []
    for e in test:
        novel = not (set(e.reference["tokens"]) & seen.get(e.question_type, set()))
        out.append(e.model_copy(update={"reference": {**e.reference, "novel": novel}}))
    return out


def token_split(features: list[int], tokens: dict[int, tuple[str, ...]], test_fraction: float,
                novel_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split features so that a real share of the test set is novel.

    A seeded ``novel_fraction`` of the distinct target tokens is held out: features with any
    held-out token go to test (those whose tokens are all held out are novel by construction),
    the rest are split at random with ``test_fraction``. No held-out token is then in any
    training target; a plain random split leaves almost no test feature novel, because common
    tokens recur across features."""
    from afscope.explain.data import split_units

    vocab = sorted({t for f in features for t in tokens[f]})
    rng = np.random.default_rng(seed)
    held = {vocab[i] for i in rng.permutation(len(vocab))[:int(round(novel_fraction * len(vocab)))]}
    forced = [f for f in features if set(tokens[f]) & held]
    rest = [f for f in features if not set(tokens[f]) & held]
    train, test = split_units(rest, test_fraction, seed)
    return train, sorted(test + forced)


def build_token_features(cfg: Any, sae: Any, sae_path: Path, layer: int, W: torch.Tensor
                         ) -> tuple[list[Example], list[Example], dict[str, torch.Tensor],
                                    dict[str, Any]]:
    """``(train, test, vectors, extra)`` of ``--targets tokens``; ``extra`` holds ``inputs``,
    ``targets`` (counts, novel shares, the targets' own faithfulness) and ``contexts``
    (``{unit: [context, ...]}`` of the test features)."""
    from afscope.explain.data import _check_cache_sae
    from afscope.extract.store import ActivationCache
    from afscope.features.faithfulness import token_auroc
    from afscope.features.tokens import (
        TokenNames,
        fires_on,
        held_out_contexts,
        promotes,
        split_rows,
    )
    from afscope.models.loading import load_model

    path = Path(cfg.cache)
    if not path.is_dir():
        raise ArtifactError(f"{path}: --cache folder not found (an activation cache of "
                            "`afscope extract --sae --token-topk K`)")
    cache = ActivationCache(path)
    tt = cache.token_topk(layer)
    if tt is None:
        raise DataError(f"{path}: the cache has no per-token latents; extract it with "
                        "--token-topk K (e.g. 8) for --targets tokens")
    match = _check_cache_sae(cache, layer, sae, sae_path)  # same SAE, not only the same width
    d_sae = int(W.shape[0])
    model_name = str(cache.index.get("model"))
    lm = load_model(model_name)
    names = TokenNames(lm.tokenizer)
    target_rows, held_rows = split_rows(cache.n_records, cfg.context_fraction, cfg.seed)
    profiles = fires_on(tt, target_rows, d_sae, names, min_active=cfg.min_active)
    live = sorted(f for f in profiles if float(W[f].norm()) > 0)
    if not live:
        raise DataError(f"{path}: no latent of layer {layer} fires on a few tokens often enough "
                        f"(min_active={cfg.min_active}) in the {len(target_rows)} target rows")
    if cfg.max_features is not None and len(live) > cfg.max_features:
        pick = np.random.default_rng(cfg.seed).choice(len(live), cfg.max_features, replace=False)
        live = sorted(live[i] for i in pick)
    lens = dict(zip(live, promotes(lm.model, W[live], names))) if "promotes" in \
        cfg.question_types else {}
    del lm
    train_f, test_f = token_split(live, {f: profiles[f].fires_on for f in live},
                                  cfg.test_fraction, cfg.novel_fraction, cfg.seed)

    def examples(fs: list[int]) -> list[Example]:
        out = []
        for f in fs:
            meta = {"model": sae.cfg.model_name or model_name, "decoder_norm": float(W[f].norm()),
                    "coverage": profiles[f].coverage, "n_active": profiles[f].n_active}
            for qt in cfg.question_types:
                toks = profiles[f].fires_on if qt == "fires_on" else lens.get(f, ())
                if toks:
                    out.append(token_example(f, qt, tuple(toks), layer, meta))
        return out

    train = examples(train_f)
    test = _mark_novel(train, examples(test_f))
    contexts = held_out_contexts(tt, held_rows, test_f, names.text, names, seed=cfg.seed)
    own = [token_auroc(profiles[f].fires_on, contexts.get(f, [])) for f in test_f]
    own = [a for a in own if a is not None]
    targets = {
        "kind": "tokens", "layer": layer, "question_types": list(cfg.question_types),
        "n_features": len(live), "n_target_rows": len(target_rows),
        "n_context_rows": len(held_rows),
        "n_distinct_tokens": {qt: len({t for e in train + test if e.question_type == qt
                                       for t in e.reference["tokens"]})
                              for qt in cfg.question_types},
        "test_novel_share": {qt: float(np.mean([e.reference["novel"] for e in test
                                                if e.question_type == qt]))
                             for qt in cfg.question_types
                             if any(e.question_type == qt for e in test)},
        "fires_on_faithfulness": float(np.mean(own)) if own else None,
        "sae_match": match,
    }
    inputs = {"cache": {"path": str(path), "fingerprint": cache.fingerprint,
                        "n_records": cache.n_records, "model": model_name}}
    vectors = {f"feature:{f}": W[f].clone().contiguous() for f in live}
    return train, test, vectors, {"inputs": inputs, "targets": targets,
                                  "contexts": {f"feature:{f}": c for f, c in contexts.items()}}


def write_contexts(path: Path, contexts: dict[str, list[dict[str, Any]]]) -> None:
    """``contexts.jsonl``: one ``{"unit", "contexts"}`` line per test feature, sorted."""
    from afscope.fileio import atomic_write_text

    atomic_write_text(path, "".join(json.dumps({"unit": u, "contexts": c}, ensure_ascii=False)
                                    + "\n" for u, c in sorted(contexts.items())))


def read_contexts(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """``{unit: contexts}`` of a task folder's ``contexts.jsonl`` (empty when it has none)."""
    path = Path(folder) / CONTEXTS_FILE
    if not path.is_file():
        return {}
    out = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            out[str(obj["unit"])] = list(obj["contexts"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(f"{path}:{i}: not a contexts line ({e})") from None
    return out
