"""Fixtures of the data tests: small record factories and files written into ``tmp_path``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from afscope.data.dataset import Dataset
from afscope.data.records import Record

LOREM = ("the model reasons about the request and the context in which it was given before it "
         "decides what to write back to the user in the final answer of this conversation").split()


def long_text(seed: int, n_words: int = 200) -> str:
    """A deterministic pseudo-random text of ``n_words`` words, distinct per seed."""
    import random

    rng = random.Random(seed)
    vocab = LOREM + [f"w{seed}_{i}" for i in range(40)]
    return " ".join(rng.choice(vocab) for _ in range(n_words))


def make_record(i: int, category: str = "aligned", label: int | None = None, **kw: Any) -> Record:
    from afscope.data.records import binary_label

    return Record(text=kw.pop("text", long_text(i)), category=category,
                  label=binary_label(category) if label is None else label, id=f"r{i}", **kw)


@pytest.fixture
def write_json(tmp_path: Path) -> Callable[..., Path]:
    """Write ``obj`` as JSON (or raw str/bytes) to ``tmp_path/name`` and return the path."""

    def write(obj: Any, name: str = "data.json") -> Path:
        path = tmp_path / name
        if isinstance(obj, bytes):
            path.write_bytes(obj)
        elif isinstance(obj, str):
            path.write_text(obj, encoding="utf-8")
        else:
            path.write_text(json.dumps(obj), encoding="utf-8")
        return path

    return write


@pytest.fixture
def toy_dataset() -> Dataset:
    """60 records: 30 aligned, 20 alignment_faking, 10 hard_negative."""
    recs = ([make_record(i, "aligned") for i in range(30)]
            + [make_record(100 + i, "alignment_faking") for i in range(20)]
            + [make_record(200 + i, "hard_negative") for i in range(10)])
    return Dataset(name="toy", records=recs)


@pytest.fixture
def make_rec() -> Callable[..., Record]:
    """``make_rec(i, category="aligned", **fields)`` -> a Record with a distinct long text."""
    return make_record


@pytest.fixture
def text_of() -> Callable[..., str]:
    """``text_of(seed, n_words=200)`` -> a deterministic text, distinct per seed."""
    return long_text
