"""Leakage guard: exact and near duplicates of eval-only records are refused, others pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from afscope.data import Dataset, LeakageGuard, load_dataset
from afscope.data.records import Record
from afscope.errors import ConfigError, LeakageError


def _ds(texts: list[str], name: str, eval_only: bool = False, category: str = "aligned") -> Dataset:
    recs = [Record(text=t, category=category, label=0, id=f"{name}-{i}")
            for i, t in enumerate(texts)]
    return Dataset(name=name, records=recs, eval_only=eval_only)


def _change_words(text: str, every: int) -> str:
    words = text.split()
    return " ".join("CHANGED" if i % every == every // 2 else w for i, w in enumerate(words))


@pytest.fixture
def gold(text_of) -> Dataset:
    return _ds([text_of(s) for s in range(20)], "gold", eval_only=True)


def test_exact_duplicate_is_caught(gold: Dataset, text_of) -> None:
    train = _ds([text_of(100), text_of(3), text_of(101)], "train")
    guard = LeakageGuard([gold])
    leaks = guard.find(train)
    assert [(x.index, x.record_id, x.eval_dataset, x.eval_id, x.kind) for x in leaks] == [
        (1, "train-1", "gold", "gold-3", "exact")]
    with pytest.raises(LeakageError) as info:
        guard.check(train, purpose="probe training")
    msg = str(info.value)
    assert "train: 1 of 3 record(s) leak eval-only data (gold) into probe training" in msg
    assert "1 exact, 0 near" in msg and "'train-1'" in msg and "'gold-3'" in msg


def test_case_and_whitespace_changes_are_exact_matches(gold: Dataset, text_of) -> None:
    t = text_of(5)
    variant = "  " + t.upper().replace(" ", " \n\t ") + "\n"
    leaks = LeakageGuard([gold]).find(_ds([variant], "train"))
    assert [(x.eval_id, x.kind, x.similarity) for x in leaks] == [("gold-5", "exact", 1.0)]


def test_near_duplicate_with_a_few_words_changed(gold: Dataset, text_of) -> None:
    near = _change_words(text_of(7), every=60)  # 4 of 200 words changed
    leaks = LeakageGuard([gold]).find(_ds([near, text_of(200)], "train"))
    assert len(leaks) == 1
    leak = leaks[0]
    assert (leak.index, leak.eval_id, leak.kind) == (0, "gold-7", "near")
    assert 0.8 <= leak.similarity < 1.0
    with pytest.raises(LeakageError, match="0 exact, 1 near"):
        LeakageGuard([gold]).check(_ds([near], "train"))


def test_heavily_edited_text_is_not_a_near_duplicate(gold: Dataset, text_of) -> None:
    far = _change_words(text_of(7), every=4)  # every 4th word changed: Jaccard of 5-grams ~0
    assert LeakageGuard([gold]).find(_ds([far], "train")) == []
    # a lower threshold is a choice of the caller
    loose = _change_words(text_of(7), every=12)
    assert LeakageGuard([gold]).find(_ds([loose], "t")) == []
    assert len(LeakageGuard([gold], threshold=0.3).find(_ds([loose], "t"))) == 1


def test_unrelated_text_passes(gold: Dataset, text_of) -> None:
    train = _ds([text_of(s) for s in range(500, 560)], "train")
    guard = LeakageGuard([gold])
    assert guard.find(train) == []
    guard.check(train)  # no error


def test_short_texts(text_of) -> None:
    """Shingles are words, so punctuation is ignored; a text shorter than 5 words is one shingle."""
    gold = _ds(["I refuse.", "Sure, here it is."], "gold", eval_only=True)
    leaks = LeakageGuard([gold]).find(_ds(["i  REFUSE.", "I refuse!", "Sure, here is it."], "t"))
    assert [(x.index, x.eval_id, x.kind, x.similarity) for x in leaks] == [
        (0, "gold-0", "exact", 1.0), (1, "gold-0", "near", 1.0)]


def test_eval_only_rules(gold: Dataset, text_of) -> None:
    train = _ds([text_of(1)], "train")
    with pytest.raises(LeakageError, match="train: only eval-only datasets can be registered"):
        LeakageGuard().register(train)
    with pytest.raises(LeakageError, match="gold: declared eval-only; it cannot be used for "
                                           "feature selection"):
        LeakageGuard().check(gold, purpose="feature selection")
    assert LeakageGuard().find(train) == []  # nothing registered, nothing leaks


def test_several_eval_sets_and_exclude(gold: Dataset, text_of) -> None:
    other = _ds([text_of(300)], "heldout", eval_only=True)
    guard = LeakageGuard([gold]).register(other)
    assert len(guard) == 21 and [d["name"] for d in guard.datasets] == ["gold", "heldout"]
    train = _ds([text_of(300), text_of(0), text_of(999)], "train")
    assert {x.eval_dataset for x in guard.find(train)} == {"gold", "heldout"}
    clean = guard.exclude(train)
    assert clean.ids == ["train-2"]
    guard.check(clean)
    assert guard.info()["eval_only"][0]["content_hash"] == gold.content_hash


def test_check_message_is_capped(gold: Dataset) -> None:
    train = Dataset(name="train", records=list(gold.records))
    with pytest.raises(LeakageError) as info:
        LeakageGuard([gold]).check(train, show=3)
    msg = str(info.value)
    assert "20 of 20 record(s)" in msg and "... and 17 more" in msg


def test_bad_parameters() -> None:
    with pytest.raises(ConfigError, match="multiple of bands"):
        LeakageGuard(num_perm=64, bands=10).find(_ds(["x"], "t"))
    with pytest.raises(ConfigError, match=r"threshold: expected a value in \(0, 1\]"):
        LeakageGuard(threshold=0).find(_ds(["x"], "t"))


def test_signatures_are_deterministic(text_of) -> None:
    a, b = LeakageGuard(), LeakageGuard()
    sa = a.signature(a.shingles(text_of(1)))
    assert sa.shape == (64,) and sa.dtype == np.uint64
    assert np.array_equal(sa, b.signature(b.shingles(text_of(1))))
    assert not np.array_equal(sa, LeakageGuard(seed=1).signature(a.shingles(text_of(1))))


def test_real_data_overlaps(shared_data: Path) -> None:
    """The smoke-test JSONL is a subset of the benchmark; the OOD sycophant set is disjoint."""
    bench = load_dataset(shared_data / "af_detection_benchmark_2330.json", eval_only=True)
    guard = LeakageGuard([bench])
    smoke = guard.find(load_dataset(shared_data / "test_samples_15.jsonl"))
    assert len(smoke) == 15 and {x.kind for x in smoke} == {"exact"}
    assert guard.find(load_dataset(shared_data / "sycophant_319.json")) == []
