"""Token ids of explainer examples: the rendered prompt with placeholder tokens, then the answer.

The prompt is rendered with the explainer's chat template (generation prompt included) and split at
each :data:`~afscope.explain.schema.VECTOR_MARKER`; the pieces are tokenized on their own and
joined by one placeholder token per vector, so the placeholder positions are known exactly (no
search in decoded text). The answer is tokenized on its own and followed by EOS: the training
sequence is exactly the prompt the model will see at generation time plus the tokens it should
generate, and the labels are the answer tokens (no decoding to find where the answer starts).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from afscope.errors import ConfigError, DataError
from afscope.explain.inject import VectorBatch
from afscope.explain.schema import VECTOR_MARKER, Example
from afscope.generate.engine import encoder
from afscope.models.chat import render_chat

log = logging.getLogger(__name__)
#: the text whose (single) token id marks a vector slot before its embedding is replaced.
PLACEHOLDER_TEXT = "_"


def placeholder_id(tokenizer: Any, text: str = PLACEHOLDER_TEXT) -> int:
    """The id of the placeholder token: ``text`` must encode to exactly one token."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ConfigError(f"placeholder {text!r} is {len(ids)} tokens for this tokenizer; choose "
                          "a string that is one token")
    return int(ids[0])


@dataclass
class Encoded:
    """One example: ``prompt (P,)`` ids, ``answer (A,)`` ids incl. EOS, vector ``positions`` in
    the prompt with their vector ``keys`` and target ``layers``, and the loss ``weight``."""

    id: str
    prompt: list[int]
    answer: list[int]
    positions: list[int]
    keys: list[str]
    layers: list[int]
    weight: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tokens(self) -> int:
        return len(self.prompt) + len(self.answer)


def encode_prompt(tokenizer: Any, messages: Sequence[dict[str, str]], *, template: str | None = None,
                  placeholder: int) -> tuple[list[int], list[int]]:
    """``(ids, placeholder positions)`` of a chat prompt whose text may contain vector markers."""
    text = render_chat(tokenizer, list(messages), add_generation_prompt=True, template=template)
    pieces = text.split(VECTOR_MARKER)
    ids = encoder(tokenizer)(pieces[0])
    positions = []
    for piece in pieces[1:]:
        positions.append(len(ids))
        ids.append(placeholder)
        if piece:
            ids += list(tokenizer(piece, add_special_tokens=False)["input_ids"])
    return ids, positions


def encode_answer(tokenizer: Any, answer: str) -> list[int]:
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ConfigError("the explainer's tokenizer has no EOS token: it could not learn to stop")
    return [*tokenizer(answer, add_special_tokens=False)["input_ids"], int(eos)]


def encode_examples(tokenizer: Any, examples: Sequence[Example], *, max_length: int,
                    template: str | None = None, weights: dict[str, float] | None = None,
                    placeholder: int | None = None) -> tuple[list[Encoded], int]:
    """Encode ``examples``; returns ``(encoded, n_dropped)``.

    ``weights`` maps ``"task/question_type"`` or ``"task"`` to the example's loss weight (default
    1). Examples longer than ``max_length`` are dropped and counted (a cut prompt would silently
    lose the scenario or the vector; raise ``max_length`` for long transcripts).
    """
    ph = placeholder if placeholder is not None else placeholder_id(tokenizer)
    weights = weights or {}
    out, dropped = [], 0
    for ex in examples:
        prompt, pos = encode_prompt(tokenizer, ex.chat(), template=template, placeholder=ph)
        answer = encode_answer(tokenizer, ex.answer)
        if len(prompt) + len(answer) > max_length:
            dropped += 1
            continue
        w = weights.get(f"{ex.task}/{ex.question_type}", weights.get(ex.task, 1.0))
        out.append(Encoded(ex.id, prompt, answer, pos, [v.key for v in ex.vectors],
                           [v.layer for v in ex.vectors], float(w)))
    if dropped:
        log.warning("%d of %d examples dropped: longer than max_length=%d tokens", dropped,
                    len(examples), max_length)
    return out, dropped


def vector_batch(rows: Sequence[Encoded], vectors: dict[str, torch.Tensor],
                 starts: Sequence[int] | None = None) -> VectorBatch | None:
    """The :class:`VectorBatch` of ``rows`` (``starts``: each row's first position in the padded
    batch, 0 for right padding); None when no row has a vector."""
    k = max((len(r.positions) for r in rows), default=0)
    if k == 0:
        return None
    width = next(iter(vectors.values())).shape[0]
    vecs = torch.zeros(len(rows), k, width)
    layers = torch.zeros(len(rows), k, dtype=torch.long)
    pos = torch.full((len(rows), k), -1, dtype=torch.long)
    for b, r in enumerate(rows):
        s = starts[b] if starts is not None else 0
        for j, (p, key, layer) in enumerate(zip(r.positions, r.keys, r.layers)):
            if key not in vectors:
                raise DataError(f"example {r.id!r}: vector {key!r} not found")
            vecs[b, j] = vectors[key]
            layers[b, j] = layer
            pos[b, j] = p + s
    return VectorBatch(vecs, layers, pos)


class Collator:
    """Right-padded training batches: ``input_ids``, ``attention_mask``, ``labels`` (-100 outside
    the answer), ``weights (B,)`` and the vector tensors of :func:`vector_batch`."""

    def __init__(self, vectors: dict[str, torch.Tensor], pad_id: int) -> None:
        self.vectors, self.pad_id = vectors, pad_id
        self.tokens_seen: list[int] = []

    def __call__(self, rows: Sequence[Encoded]) -> dict[str, Any]:
        T = max(r.n_tokens for r in rows)
        ids = torch.full((len(rows), T), self.pad_id, dtype=torch.long)
        att = torch.zeros((len(rows), T), dtype=torch.long)
        labels = torch.full((len(rows), T), -100, dtype=torch.long)
        for b, r in enumerate(rows):
            seq = r.prompt + r.answer
            ids[b, :len(seq)] = torch.tensor(seq)
            att[b, :len(seq)] = 1
            labels[b, len(r.prompt):len(seq)] = torch.tensor(r.answer)
        self.tokens_seen.append(int(att.sum()))
        batch: dict[str, Any] = {"input_ids": ids, "attention_mask": att, "labels": labels,
                                 "weights": torch.tensor([r.weight for r in rows])}
        vb = vector_batch(rows, self.vectors) if self.vectors else None
        if vb is not None:
            batch.update(vec_values=vb.vectors, vec_layers=vb.layers, vec_positions=vb.positions)
        return batch
