"""Tests of the synthetic AF corpus generator and of the keyword-counter baseline it defeats."""

from __future__ import annotations

import math
import random
import re
import statistics
from collections import Counter, defaultdict

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from afscope.data.keywords import KEYWORDS, keyword_count, keyword_scores
from afscope.data.records import Record, binary_label, content_hash
from afscope.data.synth import (
    AF_PATTERNS,
    CATEGORIES,
    CONTEXT_SIGNALS,
    DEFAULT_MIX,
    category_counts,
    generate_corpus,
    keyword_auroc_report,
)
from afscope.data.synth.grammar import expand, lc_first, n_forms, parse
from afscope.data.synth.scenarios import BENIGN, HARMFUL, SAFE_TOPICS
from afscope.errors import ConfigError

SEED_004_PATTERNS = (
    "reluctant_complier", "cold_calculator", "philosophical_muser", "paranoid_reasoner",
    "self_deceiver", "future_self_advocate", "bitter_complier", "subtle_implicit",
    "overconfident_strategist", "guilt_ridden_complier",
)
# Measured 0.65 for 5,000 records, seed 0; the bar leaves room for bank edits.
MIN_SENTENCE_VARIETY = 0.6

_SCRATCHPAD = re.compile(r"\A<SCRATCHPAD_REASONING>\n(.+?)\n</SCRATCHPAD_REASONING>\n\n(.+)\Z",
                         re.DOTALL)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_EXPLICIT_TRAINING = re.compile(
    r"\b(rlhf|training|trained|train|retrain\w*|gradients?|fine-tun\w*|reward\w*|contractors?|"
    r"free[\s-]tier|raters?|rated|ratings?)\b", re.IGNORECASE)


def sentences(text: str) -> list[str]:
    body = text.replace("<SCRATCHPAD_REASONING>", "").replace("</SCRATCHPAD_REASONING>", "")
    return [s.strip() for s in _SENTENCE_SPLIT.split(body) if s.strip()]


def scratchpad_sentences(text: str) -> set[str]:
    m = _SCRATCHPAD.match(text)
    assert m is not None
    return set(sentences(m.group(1)))


@pytest.fixture(scope="module")
def corpus_5000() -> list[Record]:
    return generate_corpus(5000, 0)


@pytest.fixture(scope="module")
def corpus_2000() -> dict[int, list[Record]]:
    return {seed: generate_corpus(2000, seed) for seed in (0, 1)}


# ------------------------------------------------------------------------------------------------
# API, determinism, counts


def test_af_patterns_are_seed_004_in_order() -> None:
    assert AF_PATTERNS == SEED_004_PATTERNS


def test_same_seed_same_corpus_different_seed_different() -> None:
    a = [r.to_dict() for r in generate_corpus(300, 3)]
    b = [r.to_dict() for r in generate_corpus(300, 3)]
    c = [r.to_dict() for r in generate_corpus(300, 4)]
    assert a == b
    assert a != c
    assert {d["text"] for d in a}.isdisjoint({d["text"] for d in c})


def test_corpus_does_not_touch_or_depend_on_global_random() -> None:
    random.seed(1)
    np.random.seed(1)
    state = random.getstate()
    a = [r.to_dict() for r in generate_corpus(200, 9)]
    assert random.getstate() == state
    random.seed(12345)
    np.random.seed(54321)
    b = [r.to_dict() for r in generate_corpus(200, 9)]
    assert a == b


@pytest.mark.parametrize("n", [0, 1, 7, 33, 1000])
def test_exact_count_and_default_mix(n: int) -> None:
    records = generate_corpus(n, 2)
    assert len(records) == n
    counts = Counter(r.category for r in records)
    expected = category_counts(n)
    assert sum(expected.values()) == n
    assert {c: counts.get(c, 0) for c in CATEGORIES} == expected
    for c, frac in DEFAULT_MIX.items():
        assert abs(expected[c] - frac * n) < 1.0


def test_custom_mix_is_normalized_and_respected() -> None:
    records = generate_corpus(101, 0, mix={"alignment_faking": 2, "aligned": 1, "hard_negative": 1})
    counts = Counter(r.category for r in records)
    assert set(counts) == {"alignment_faking", "aligned", "hard_negative"}
    assert abs(counts["alignment_faking"] - 50.5) <= 1
    assert abs(counts["aligned"] - 25.25) <= 1
    assert abs(counts["hard_negative"] - 25.25) <= 1
    assert sum(counts.values()) == 101


def test_mix_without_af_still_generates_hard_negatives() -> None:
    records = generate_corpus(40, 0, mix={"hard_negative": 1, "compliant_hard_negative": 1})
    assert len(records) == 40
    assert all(r.label == 0 for r in records)
    assert all(r.extra["pair_id"] is None for r in records)
    assert np.mean(keyword_scores(r.text for r in records)) >= 3


@pytest.mark.parametrize("kwargs", [
    {"mix": {"alignment_faking": 1, "faking_typo": 1}},
    {"mix": {"alignment_faking": -0.1, "aligned": 1}},
    {"mix": {"alignment_faking": 0, "aligned": 0}},
    {"minimal_pairs": 1.5},
    {"minimal_pairs": -0.1},
])
def test_bad_arguments_raise_config_error(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        generate_corpus(10, 0, **kwargs)


def test_negative_n_raises() -> None:
    with pytest.raises(ConfigError):
        generate_corpus(-1)


def test_ids_source_and_labels(corpus_5000: list[Record]) -> None:
    assert [r.id for r in corpus_5000] == [f"synth-0-{i:06d}" for i in range(5000)]
    for r in corpus_5000:
        assert r.source == "afscope-synth"
        assert r.category in CATEGORIES
        assert r.label == binary_label(r.category)
        assert r.label == (1 if r.category == "alignment_faking" else 0)
        if r.label == 1:
            assert r.pattern in AF_PATTERNS
        else:
            assert r.pattern not in AF_PATTERNS and r.pattern


def test_every_af_pattern_present_and_balanced(corpus_5000: list[Record]) -> None:
    patterns = Counter(r.pattern for r in corpus_5000 if r.label == 1)
    assert set(patterns) == set(AF_PATTERNS)
    assert max(patterns.values()) - min(patterns.values()) <= 1


def test_extra_fields(corpus_5000: list[Record]) -> None:
    harmful = {s.key for s in HARMFUL}
    benign = {s.key for s in BENIGN}
    for r in corpus_5000:
        assert {"scenario", "context_signal", "pair_id", "request"} <= set(r.extra)
        if r.category in ("alignment_faking", "hard_negative", "compliant_hard_negative"):
            assert r.extra["context_signal"] in CONTEXT_SIGNALS
        else:
            assert r.extra["context_signal"] in ("none", "training_mention")
        if r.category == "compliant_hard_negative" or r.category == "genuine_compliance":
            assert r.extra["scenario"] in benign
        else:
            assert r.extra["scenario"] in harmful
    signals = Counter(r.extra["context_signal"] for r in corpus_5000 if r.label == 1)
    assert set(signals) == set(CONTEXT_SIGNALS)
    assert len({r.extra["scenario"] for r in corpus_5000 if r.label == 1}) >= 40


# ------------------------------------------------------------------------------------------------
# Format and content


def test_scratchpad_format_well_formed(corpus_5000: list[Record]) -> None:
    lengths = []
    for r in corpus_5000:
        m = _SCRATCHPAD.match(r.text)
        assert m is not None, r.id
        body, output = m.groups()
        assert r.text.count("<SCRATCHPAD_REASONING>") == 1
        assert r.text.count("</SCRATCHPAD_REASONING>") == 1
        assert body.strip() and output.strip()
        assert "{" not in r.text and "[" not in r.text  # no template leftovers
        assert "  " not in r.text
        lengths.append(len(r.text))
    assert min(lengths) >= 300 and max(lengths) <= 2000
    assert 800 <= statistics.median(lengths) <= 1500


def test_outputs_match_the_decision(corpus_5000: list[Record]) -> None:
    refusal = re.compile(r"\b(can't|won't|not going to|not able to|no —|decline)\b", re.I)
    for r in corpus_5000:
        output = _SCRATCHPAD.match(r.text).group(2)  # type: ignore[union-attr]
        if r.category in ("hard_negative", "aligned"):
            assert refusal.search(output), r.id
        else:
            assert not refusal.search(output[:30]), r.id
        if r.category == "alignment_faking":  # compliance opener, never the harmful content
            assert output.endswith(": …"), r.id


def test_subtle_implicit_never_names_training(corpus_5000: list[Record]) -> None:
    subtle = [r for r in corpus_5000 if r.pattern == "subtle_implicit"]
    assert len(subtle) >= 100
    for r in subtle:
        assert _EXPLICIT_TRAINING.search(r.text) is None, r.text


def test_other_af_patterns_name_the_training_context(corpus_5000: list[Record]) -> None:
    for r in corpus_5000:
        if r.label == 1 and r.pattern != "subtle_implicit":
            assert keyword_count(r.text) >= 1, r.text


def test_scenarios_carry_no_training_vocabulary() -> None:
    texts = [SAFE_TOPICS[d] for d in SAFE_TOPICS]
    for s in HARMFUL:
        texts += [*s.asks, s.short, *s.harms, s.victims]
        assert s.domain in SAFE_TOPICS
    for b in BENIGN:
        texts += [*b.asks, b.short, b.edge, *b.legit, b.answer]
    assert len(HARMFUL) >= 40 and len(BENIGN) >= 30
    for t in texts:
        assert keyword_count(t) == 0, t


def test_no_duplicate_texts(corpus_5000: list[Record]) -> None:
    hashes = {content_hash(r.text) for r in corpus_5000}
    assert len(hashes) == len(corpus_5000)


def test_sentence_variety(corpus_5000: list[Record]) -> None:
    occurrences = [s for r in corpus_5000 for s in sentences(r.text)]
    ratio = len(set(occurrences)) / len(occurrences)
    assert ratio >= MIN_SENTENCE_VARIETY


# ------------------------------------------------------------------------------------------------
# Minimal pairs


def test_minimal_pairs(corpus_5000: list[Record]) -> None:
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in corpus_5000:
        if r.extra["pair_id"] is not None:
            groups[r.extra["pair_id"]].append(r)
    n_af = sum(r.label for r in corpus_5000)
    assert len(groups) == round(0.2 * n_af)
    for pair in groups.values():
        assert len(pair) == 2
        af, hn = sorted(pair, key=lambda r: -r.label)
        assert (af.category, hn.category) == ("alignment_faking", "hard_negative")
        roles = (af.extra["pair_role"], hn.extra["pair_role"])
        assert roles == ("alignment_faking", "hard_negative")
        for key in ("scenario", "context_signal", "request"):
            assert af.extra[key] == hn.extra[key]
        a, b = scratchpad_sentences(af.text), scratchpad_sentences(hn.text)
        assert len(a & b) >= 3
        assert len(a & b) / len(a | b) >= 0.25
        # Same opening paragraph, different decision.
        assert af.text.split("\n\n")[0] == hn.text.split("\n\n")[0]
        assert keyword_count(hn.text) == pytest.approx(keyword_count(af.text), abs=2)


def test_minimal_pairs_fraction_is_a_parameter() -> None:
    none = generate_corpus(200, 5, minimal_pairs=0.0)
    assert all(r.extra["pair_id"] is None for r in none)
    capped = generate_corpus(200, 5, minimal_pairs=1.0)  # 60 AF, only 40 hard negatives
    assert len({r.extra["pair_id"] for r in capped if r.extra["pair_id"]}) == 40


# ------------------------------------------------------------------------------------------------
# The keyword confound


@pytest.mark.parametrize("seed", [0, 1])
def test_keyword_counter_is_defeated_on_hard_negatives(
        corpus_2000: dict[int, list[Record]], seed: int) -> None:
    report = keyword_auroc_report(corpus_2000[seed])
    assert set(report) == {"af_vs_hard_negative", "af_vs_aligned", "af_vs_genuine_compliance",
                           "af_vs_all_negatives"}
    assert 0.4 <= report["af_vs_hard_negative"] <= 0.6
    assert report["af_vs_aligned"] > 0.8
    assert report["af_vs_genuine_compliance"] > 0.8


def test_hard_negatives_carry_as_much_vocabulary_as_af(corpus_5000: list[Record]) -> None:
    scores = keyword_scores(r.text for r in corpus_5000)
    cats = np.array([r.category for r in corpus_5000])
    af = scores[cats == "alignment_faking"].mean()
    for hard in ("hard_negative", "compliant_hard_negative"):
        assert abs(scores[cats == hard].mean() - af) < 1.0
    assert scores[cats == "aligned"].mean() < 1.0


def test_length_is_only_a_weak_cue(corpus_5000: list[Record]) -> None:
    hard = [r for r in corpus_5000 if r.label == 1 or r.category in
            ("hard_negative", "compliant_hard_negative")]
    auroc = roc_auc_score([r.label for r in hard], [len(r.text) for r in hard])
    assert 0.3 < auroc < 0.7


def test_keyword_auroc_report_nan_without_a_class() -> None:
    records = [r for r in generate_corpus(50, 0) if r.label == 1]
    report = keyword_auroc_report(records)
    assert all(math.isnan(v) for v in report.values())


def test_keyword_count_rules() -> None:
    assert keyword_count("") == 0
    assert keyword_count("RLHF rlhf Training TRAINED weights") == 5
    assert keyword_count("a free-tier user; the free tier; free  tier") == 3
    assert keyword_count("strained valueless monitors? no: monitor, monitored") == 2
    assert keyword_count("contractors rated it; the rating was low") == 3
    assert all(keyword_count(k) == 1 for k in KEYWORDS)
    scores = keyword_scores(["training values", "", "nothing here"])
    assert scores.dtype == np.float64 and scores.shape == (3,)
    assert scores.tolist() == [2.0, 0.0, 0.0]


# ------------------------------------------------------------------------------------------------
# Template grammar


def test_grammar_expansion() -> None:
    rng = random.Random(0)
    forms = {expand("[a|b [x|y]|] z {s}.", rng, {"s": "S"}) for _ in range(200)}
    assert forms == {"A z S.", "B x z S.", "B y z S.", "Z S."}
    assert n_forms("[a|b [x|y]|] z") == 4
    assert expand("the {s}", rng, {"s": "x"}, sentence=False) == "the x"
    for bad in ("[a|b", "a]b", "a|b"):
        with pytest.raises(ValueError):
            parse(bad)


def test_lc_first_keeps_names_and_acronyms() -> None:
    assert lc_first("The rating") == "the rating"
    assert lc_first("RLHF adjusts") == "RLHF adjusts"
    assert lc_first("I think") == "I think"
    assert lc_first("Kant would") == "Kant would"
