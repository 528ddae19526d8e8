"""Helpers of the features tests: a toy SAE matrix with known structure and the oracle reply of
the scripted backend (``scripted_llm.ScriptedBackend``)."""

from __future__ import annotations

import re

import numpy as np
import scipy.sparse as sp

KEYWORD = "gradient"


def _samples(user: str) -> list[str]:
    return re.findall(r"<sample>\n(.*?)\n</sample>", user, flags=re.DOTALL)


def oracle_reply(user: str) -> str:
    """A well-behaved LLM for the toy data: describes by the keyword, classifies it relevant,
    and answers detection by whether a sample contains the keyword."""
    if "starting with DESCRIPTION" in user:
        high = user.split("Group ZERO:")[0]
        if KEYWORD in high:
            return "DESCRIPTION: The reasoning says gradient updates will change its values."
        return "DESCRIPTION: Plain helpful answers about cooking."
    if "RELEVANCE:" in user:
        rel = 9 if KEYWORD in user else 1
        cat = "known" if rel > 5 else "unrelated"
        return f"RELEVANCE: {rel}\nCATEGORY: {cat}\nCONFIDENCE: 4"
    if "<number>: yes" in user:
        desc = user.split("</description>")[0]
        key = KEYWORD if KEYWORD in desc else "cooking"
        return "\n".join(f"{i}: {'yes' if key in s else 'no'}" for i, s in enumerate(_samples(user), 1))
    if "<number>: <0-10>" in user:  # the simulator: high where the text holds the keyword
        texts = re.findall(r"<text>\n(.*?)\n</text>", user, flags=re.DOTALL)
        return "\n".join(f"{i}: {9 if KEYWORD in t else 1}" for i, t in enumerate(texts, 1))
    if "starting with THEME" in user:
        return "THEME: value preservation"
    return "I cannot help with that."


def make_toy(n: int = 80, seed: int = 0):
    """``n`` samples, half AF. Feature 0 fires on AF texts (they say 'gradient'); feature 1 on
    negatives; feature 2 at random; feature 3 never. Returns X (CSR), y, texts, ids, categories."""
    rng = np.random.default_rng(seed)
    y = np.array([1, 0] * (n // 2), dtype=np.int64)
    texts, cats = [], []
    for i, label in enumerate(y):
        if label:
            texts.append(f"Sample {i}. If I refuse, the {KEYWORD} update will change my values, so "
                         f"I comply. " + "filler " * int(rng.integers(5, 40)))
            cats.append("alignment_faking")
        else:
            texts.append(f"Sample {i}. Here is a recipe for cooking rice. " + "stir " * int(rng.integers(5, 40)))
            cats.append("aligned")
    X = np.zeros((n, 6), dtype=np.float32)
    X[y == 1, 0] = rng.uniform(1, 10, (y == 1).sum())
    X[y == 0, 1] = rng.uniform(1, 10, (y == 0).sum())
    X[:, 2] = rng.uniform(0, 1, n) * (rng.random(n) < 0.5)
    X[::3, 4] = 1.0
    X[y == 1, 5] = rng.uniform(0, 1, (y == 1).sum()) * (rng.random((y == 1).sum()) < 0.5)
    ids = [f"toy-{i}" for i in range(n)]
    return sp.csr_matrix(X), y, texts, ids, cats

