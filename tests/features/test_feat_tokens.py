"""Token-level latent profiles (fires_on, logit lens, held-out contexts) and faithfulness AUROCs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from afscope.extract.store import TokenTopK
from afscope.features.faithfulness import embedding_auroc, token_auroc
from afscope.features.tokens import (
    TokenNames,
    fires_on,
    held_out_contexts,
    normalize_token,
    promotes,
    split_rows,
)


class Tok:
    """A tokenizer stand-in with a fixed vocabulary (decode only)."""

    vocab = ["<s>", " The", "the", " cat", " dog", "\n", " ", "x", "y", "z"]
    all_special_ids = [0]
    added_tokens_decoder: dict = {}

    def decode(self, ids):
        return "".join(self.vocab[i] for i in ids)


def topk(rows, tokens, latents, values):
    """A (m, 2) per-token top-k store; positions count up within each row."""
    rows = np.asarray(rows)
    pos = np.zeros(len(rows), np.int32)
    for r in np.unique(rows):
        pos[rows == r] = np.arange((rows == r).sum())
    return TokenTopK(row=rows.astype(np.int64), pos=pos, token_id=np.asarray(tokens, np.int32),
                     indices=np.asarray(latents, np.int32), values=np.asarray(values, np.float32))


def test_normalize_token():
    assert normalize_token(" The") == "the" and normalize_token("\n") == "[newline]"
    assert normalize_token(" ") == "[space]"


def test_fires_on_groups_case_and_keeps_shares():
    # latent 0: 'the' x4 (two spellings), 'cat' x1; latent 1: 'the' x3 of 7; latent 3: three
    # tokens once each (under min_count); latent 2: too rare
    tt = topk(rows=[0, 0, 0, 1, 1, 1, 1, 1],
              tokens=[1, 2, 3, 1, 2, 7, 8, 9],
              latents=[[0, 1], [0, 1], [0, 1], [0, 1], [0, 2], [1, 3], [1, 3], [1, 3]],
              values=[[5, 1], [4, 1], [1, 1], [3, 1], [2, 1], [1, 1], [1, 1], [1, 1]])
    names = TokenNames(Tok())
    out = fires_on(tt, np.array([0, 1]), 4, names, min_active=4, min_share=0.3, min_count=2)
    assert set(out) == {0, 1}
    assert out[0].fires_on == ("the",) and out[0].coverage == pytest.approx(4 / 5)
    assert out[0].n_active == 5
    assert out[1].fires_on == ("the",) and out[1].coverage == pytest.approx(3 / 7)
    only_row0 = fires_on(tt, np.array([0]), 4, names, min_active=2, min_count=1, min_share=0.3)
    assert only_row0[0].fires_on == ("the", "cat") and only_row0[0].n_active == 3


def test_promotes_is_the_logit_lens():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(4, len(Tok.vocab), bias=False)
            with torch.no_grad():
                self.head.weight.zero_()
                self.head.weight[3, 0] = 2.0  # ' cat' on axis 0
                self.head.weight[4, 0] = 1.0  # ' dog' second
                self.head.weight[0, 0] = 5.0  # '<s>' is special: skipped
                self.head.weight[2, 1] = 1.0  # 'the' on axis 1
                self.head.weight[1, 1] = 0.9  # ' The' normalizes to 'the': deduplicated

        def get_output_embeddings(self):
            return self.head

    dirs = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    out = promotes(M(), dirs, TokenNames(Tok()), k=2, candidates=5)
    assert out[0] == ("cat", "dog")
    assert out[1][0] == "the" and "the" not in out[1][1:]


def test_split_rows_is_seeded_and_disjoint():
    a, b = split_rows(10, 0.3, 0)
    assert len(b) == 3 and len(a) == 7 and not set(a) & set(b)
    assert (split_rows(10, 0.3, 0)[1] == b).all()


def test_held_out_contexts_and_token_auroc():
    tt = topk(rows=[0, 0, 0, 0, 1, 1],
              tokens=[7, 3, 8, 3, 9, 4],
              latents=[[1, 2], [0, 2], [1, 2], [0, 1], [1, 2], [1, 2]],
              values=[[1, 1], [5, 1], [1, 1], [2, 1], [1, 1], [1, 1]])
    names = TokenNames(Tok())
    ctx = held_out_contexts(tt, np.array([0, 1]), [0], names.text, names, n_pos=5, n_neg=3,
                            left=2)
    c = ctx[0]
    assert [x["act"] for x in c[:2]] == [5.0, 2.0] and c[0]["token"] == "cat"
    assert c[0]["text"] == "x cat" and c[1]["text"] == "y cat"
    assert len(c) == 5 and all(x["act"] == 0 for x in c[2:])
    assert token_auroc(["cat"], c) == 1.0
    assert token_auroc(["dog"], c) == pytest.approx(0.5 - (1 / 3) / 2)  # 'dog' only on a negative
    assert token_auroc(None, c) == 0.5
    assert token_auroc(["cat"], c[:2]) is None  # one class only


def test_embedding_auroc_ranks_by_similarity():
    def embed(texts):
        v = np.array([[1.0, 0.0] if "cat" in t else [0.0, 1.0] for t in texts])
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    ctx = [{"text": "a cat", "token": "cat", "act": 2.0},
           {"text": "the dog", "token": "dog", "act": 0.0}]
    assert embedding_auroc("cats", ctx, embed) == 1.0
    assert embedding_auroc("dogs", ctx, embed) == 0.0


def test_description_faithfulness_scores_tokens_or_text_and_skips_shown_rows():
    from afscope.features.faithfulness import description_faithfulness

    ctx = {3: [{"text": "a cat", "token": "cat", "act": 2.0, "row": 0},
               {"text": "my cat", "token": "cat", "act": 1.0, "row": 5},
               {"text": "the dog", "token": "dog", "act": 0.0, "row": 6},
               {"text": "a cow", "token": "cow", "act": 0.0, "row": 7}],
           4: [{"text": "the dog", "token": "dog", "act": 3.0, "row": 1},
               {"text": "a cat", "token": "cat", "act": 0.0, "row": 2}]}

    def embed(texts):
        v = np.array([[1.0, 0.0] if "cat" in t else [0.0, 1.0] for t in texts])
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    rows = [{"feature": 3, "status": "ok", "description": "Fires on: cat", "tokens": ["cat"],
             "top": [{"row": 0}], "zero": [{"row": 7}]},
            {"feature": 4, "status": "ok", "description": "dogs", "top": [], "zero": []},
            {"feature": 5, "status": "parse_error", "description": None}]
    out = description_faithfulness(rows, ctx, embed)
    assert set(out) == {3, 4}
    # rows 0 and 7 were shown to the describer: scored on rows 5 (active) and 6 only
    assert out[3] == {"scorer": "tokens", "auroc": 1.0, "n_pos": 1, "n_neg": 1}
    assert out[4] == {"scorer": "embedding", "auroc": 1.0, "n_pos": 1, "n_neg": 1}
    # free text without an embedder is not scored; a token row never needs one
    assert set(description_faithfulness(rows, ctx, None)) == {3}
    wrong = [{**rows[0], "tokens": ["dog"]}]
    assert description_faithfulness(wrong, ctx)[3]["auroc"] == 0.0  # names the inactive token
