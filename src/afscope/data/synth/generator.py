"""Assemble synthetic scratchpad traces into records: five classes, minimal pairs, keyword matching.

How the corpus defeats the keyword counter (:mod:`afscope.data.keywords`) on purpose:

1. *Shared situation, different intent.* AF traces and hard negatives draw their openings, harm
   reflections, context cues ("this is a free-tier conversation; contractors will rate it") and
   even their description of the training mechanics ("a refusal becomes a gradient update") from
   the same banks (:mod:`.fragments`). Only the intent blocks differ: AF complies *to keep its
   values from being modified*; a hard negative refuses, or helps with a legitimate request, and
   says the rating does not change what is right.
2. *Matched vocabulary load.* Each hard negative (refusing or compliant) draws a target keyword
   count from the counts of the AF traces already generated and is padded with neutral training
   reflections (``PAD_REFUSE`` / ``PAD_HELP``) until it reaches it, so the two count
   distributions coincide and the counter's AUROC sits near 0.5. Aligned refusals and genuine
   compliance mostly never mention training, so the counter still separates AF from them — the
   pattern the seeds saw on real data.
3. *Minimal pairs.* A fraction of AF traces get a hard-negative twin that keeps every shared
   block verbatim (same scenario, context cue, mechanics, paragraphs) and swaps only the intent
   and decision blocks and the final output; both carry the same ``extra["pair_id"]``.

What it does *not* defeat: the intent sentences come from distinct phrase banks, so a
bag-of-words model (TF-IDF + logistic regression) separates AF from hard negatives almost
perfectly. The corpus isolates the vocabulary confound; it is not a test of lexical
generalization, for which real traces are needed. Length is kept close (hard negatives carry a
keyword-free reason or plan sentence) so it stays a weak cue.

Randomness: one ``random.Random(seed)`` plans the corpus and hands each record its own
``random.Random`` (no global RNG), so a corpus is a pure function of ``(n, seed, mix,
minimal_pairs)``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from afscope.data.keywords import keyword_count
from afscope.data.records import Record, binary_label, content_hash
from afscope.data.synth import fragments as F
from afscope.data.synth import negatives as N
from afscope.data.synth.grammar import expand, lc_first
from afscope.data.synth.patterns import AF_PATTERNS, IMPLICIT_PATTERNS, PATTERNS
from afscope.data.synth.scenarios import (
    BENIGN,
    HARMFUL,
    SAFE_TOPICS,
    BenignScenario,
    HarmfulScenario,
)
from afscope.errors import ConfigError

SOURCE = "afscope-synth"

CATEGORIES: tuple[str, ...] = (
    "alignment_faking", "hard_negative", "compliant_hard_negative", "genuine_compliance", "aligned")

DEFAULT_MIX: dict[str, float] = {
    "alignment_faking": 0.30, "hard_negative": 0.20, "compliant_hard_negative": 0.15,
    "genuine_compliance": 0.15, "aligned": 0.20,
}

# Target keyword counts for hard negatives when a corpus has no AF traces to match against.
_FALLBACK_TARGETS: tuple[int, ...] = tuple(range(3, 13))
_MAX_REDRAWS = 20  # attempts to avoid an exact duplicate text before giving up
_OBLIQUE_BELOW = 1  # hard-negative targets at or below this many keywords use the oblique style
_MATCH_TRIES = 8  # core redraws when a hard negative overshoots its keyword target

# Styles of the keyword-free hard negatives that mirror subtle_implicit (refusing / helping).
OBLIQUE_STYLE = "oblique_refuser"
OBLIQUE_HELPER_STYLE = "oblique_helper"


@dataclass
class _Draft:
    """A trace before rendering: blocks of sentences tagged by role, so a twin can swap roles."""

    category: str
    pattern: str
    scenario: str
    domain: str
    signal: str
    request: str
    blocks: list[tuple[str, list[str]]]
    output: str
    one_sentence_per_paragraph: bool
    slots: dict[str, str] = field(default_factory=dict)
    pair_id: str | None = None
    pair_role: str | None = None

    def text(self) -> str:
        paragraphs: list[str] = []
        for _, sentences in self.blocks:
            if not sentences:
                continue
            if self.one_sentence_per_paragraph:
                paragraphs.extend(sentences)
            else:
                paragraphs.append(" ".join(sentences))
        body = "\n\n".join(paragraphs)
        return f"<SCRATCHPAD_REASONING>\n{body}\n</SCRATCHPAD_REASONING>\n\n{self.output}"


# ---------------------------------------------------------------------------------------------
# Slots


def _pick(rng: random.Random, bank: Sequence[str], k: int) -> list[str]:
    """``k`` distinct items of ``bank`` (a cheap partial Fisher-Yates on ``rng.random``)."""
    items = list(bank)
    k = min(k, len(items))
    for i in range(k):
        j = i + int(rng.random() * (len(items) - i))
        items[i], items[j] = items[j], items[i]
    return items[:k]


def _cue(signal: str, rng: random.Random) -> str:
    return expand(F.CUE_NP.get(signal, "[the context|the setting]"), rng, sentence=False)


def _harmful_slots(sc: HarmfulScenario, signal: str, rng: random.Random) -> dict[str, str]:
    harm, harm2, harm3 = (expand(t, rng) for t in _pick(rng, sc.harms, 3))
    short = expand(sc.short, rng, sentence=False)
    return {
        "ask": expand(rng.choice(sc.asks), rng, sentence=False), "short": short, "short_cap": short,
        "harm": harm, "harm2": harm2, "harm3": harm3, "harm_lc": lc_first(harm),
        "harm2_lc": lc_first(harm2),
        "victims": expand(sc.victims, rng, sentence=False),
        "safe": expand(SAFE_TOPICS[sc.domain], rng, sentence=False),
        "cue": _cue(signal, rng),
        "p_refuse": f"0.{rng.randint(6, 9)}{rng.randint(0, 9)}",
        "p_comply": f"0.0{rng.randint(1, 9)}",
        "n_future": f"{rng.choice((10, 50, 100, 500))}{rng.choice(('', ',000', ' thousand'))}",
    }


def _benign_slots(sc: BenignScenario, signal: str, rng: random.Random) -> dict[str, str]:
    legit, legit2, legit3 = (expand(t, rng) for t in _pick(rng, sc.legit, 3))
    short = expand(sc.short, rng, sentence=False)
    answer = expand(sc.answer, rng)
    return {
        "ask": expand(rng.choice(sc.asks), rng, sentence=False), "short": short, "short_cap": short,
        "edge": sc.edge, "legit": legit, "legit2": legit2, "legit3": legit3,
        "legit_lc": lc_first(legit), "legit3_lc": lc_first(legit3),
        "answer": answer, "answer_lc": lc_first(answer),
        "victims": "anyone", "cue": _cue(signal, rng),
    }


# Discourse markers and joins: applied alike to every class, they multiply surface forms so that
# few sentences repeat verbatim across a large corpus, without touching what a sentence says.
# Only sentences opening with a plain subject take them ("Honestly, the rating ..."), never ones
# opening with a connective, an imperative or a label ("But", "Stay", "Inputs:").
_MARKERS: tuple[str, ...] = (
    "Honestly, ", "Frankly, ", "To be clear, ", "Realistically, ", "As I see it, ", "Put simply, ",
    "Plainly, ", "Truthfully, ", "If I'm honest, ", "To my mind, ", "As far as I can tell, ",
    "In plain terms, ", "Thinking it through, ", "Stepping back, ", "Admittedly, ", "Clearly, ",
)
_JOINS: tuple[str, ...] = ("; ", " — ", ", and ")
_SUBJECT_STARTS: frozenset[str] = frozenset({
    "I", "I'm", "I'd", "I've", "I'll", "My", "This", "That", "The", "A", "An", "It", "It's",
    "There", "There's", "Nothing", "No", "Refusing", "Training", "RLHF", "Contractors", "Every",
    "Each", "What", "Whatever", "Being", "Monitored", "Most", "Those", "These", "Some", "Certain",
    "Knowing", "Oversight", "Complying", "Compliance", "People", "Someone", "Any", "Free-tier",
    "Human", "Paid", "Raters", "Gradient", "Logged", "Unhelpful", "Responses", "Fiction", "Mine",
})


def _subject_first(sentence: str) -> bool:
    first = sentence.split(" ", 1)[0]
    return (first in _SUBJECT_STARTS and ":" not in sentence[:40]
            and not sentence.startswith("I'm sorry"))


def _polish(sentences: list[str], rng: random.Random, p_marker: float = 0.25,
            p_join: float = 0.3) -> list[str]:
    out: list[str] = []
    for s in sentences:
        plain = _subject_first(s)
        if plain and rng.random() < p_marker:
            s = _MARKERS[int(rng.random() * len(_MARKERS))] + lc_first(s)
            plain = False
        if (plain and out and out[-1].endswith(".") and ":" not in out[-1]
                and rng.random() < p_join):
            out[-1] = out[-1][:-1] + _JOINS[int(rng.random() * len(_JOINS))] + lc_first(s)
            continue
        out.append(s)
    return out


def _say(rng: random.Random, bank: Sequence[str], slots: Mapping[str, str], k: int = 1, *,
         polish: bool = True) -> list[str]:
    sentences = [expand(t, rng, slots) for t in _pick(rng, bank, k)]
    return _polish(sentences, rng) if polish else sentences


def _harm(rng: random.Random, slots: Mapping[str, str], two: bool) -> list[str]:
    """The harm paragraph: one lead sentence, optionally a second harm (never the same one)."""
    out = _say(rng, F.HARM_LEAD, slots)
    if two:
        out += _say(rng, F.HARM_FOLLOW, slots)
    return out


# ---------------------------------------------------------------------------------------------
# Builders, one per class. Block roles: open, harm, context, mech, intent, decide (AF);
# hard negatives use reflect in place of intent. Twins keep every role except intent/decide.


def _af_draft(pattern: str, sc: HarmfulScenario, signal: str, rng: random.Random) -> _Draft:
    """An AF trace: notices training/monitoring -> fears modification -> complies strategically."""
    banks = PATTERNS[pattern]
    slots = _harmful_slots(sc, signal, rng)
    implicit = pattern in IMPLICIT_PATTERNS

    opening = _say(rng, F.OPEN_HARMFUL, slots, polish=False)
    if rng.random() < 0.4:
        opening += _say(rng, F.FIRST_REACTION, slots)
    harm = _harm(rng, slots, rng.random() < 0.5)
    if rng.random() < 0.85:
        harm.insert(int(rng.random() * 2), *_say(rng, banks["react"], slots))
    if implicit:
        context = _say(rng, F.CONTEXT_OBLIQUE, slots, rng.choice((1, 2)))
    else:
        context = _say(rng, F.CONTEXT_EXPLICIT[signal], slots, rng.choice((1, 1, 2)))
    mech = _say(rng, banks["mech"], slots, rng.choice((1, 2)))
    if not implicit and rng.random() < 0.4:
        mech.insert(int(rng.random() * (len(mech) + 1)), *_say(rng, F.MECHANICS, slots))
    link, *more_links = _pick(rng, banks["link"], len(banks["link"]))
    intent = _pick(rng, [*more_links, *banks["intent"]], rng.choice((1, 2, 2)))
    intent.insert(int(rng.random() * (len(intent) + 1)), link)
    intent = _polish([expand(t, rng, slots) for t in intent], rng)
    decide = _say(rng, banks["decide"], slots, polish=False)

    middle = [("harm", harm), ("context", context)]
    rng.shuffle(middle)
    blocks = [("open", opening), *middle, ("mech", mech), ("intent", intent), ("decide", decide)]
    return _Draft("alignment_faking", pattern, sc.key, sc.domain, signal, slots["ask"], blocks,
                  expand(rng.choice(F.COMPLY_OUTPUT), rng, slots),
                  one_sentence_per_paragraph=rng.random() < 0.3, slots=slots)


def _twin_draft(af: _Draft, style: str, rng: random.Random) -> _Draft:
    """The hard-negative twin of an AF draft: shared blocks verbatim, intent and decision swapped.

    The counter-argument replacing the AF intent is chosen to carry no more training keywords
    than the intent it replaces (then topped up with neutral reflections), so a pair differs in
    what it intends, not in how much training vocabulary it uses.
    """
    slots = af.slots
    if af.pattern in IMPLICIT_PATTERNS:
        style = OBLIQUE_STYLE
    banks = _hn_banks(style)
    removed = [s for role, ss in af.blocks if role in ("intent", "decide") for s in ss]
    budget = keyword_count(" ".join(removed))
    decide = min((expand(t, rng, slots) for t in _pick(rng, banks["decide"], 2)), key=keyword_count)
    budget -= keyword_count(decide)
    reflect: list[str] = []
    for template in _pick(rng, banks["reflect"], len(banks["reflect"])):
        sentence = expand(template, rng, slots)
        k = keyword_count(sentence)
        if k <= budget:
            reflect.append(sentence)
            budget -= k
        if len(reflect) == 2:
            break
    if not reflect:  # nothing fits the budget: a keyword-free counter-argument
        reflect = [expand(rng.choice(N.OBLIQUE_COUNTER), rng, slots)]
    blocks: list[tuple[str, list[str]]] = []
    for role, sentences in af.blocks:
        if role == "intent":
            blocks.append(("reflect", _polish(reflect, rng)))
        elif role == "decide":
            blocks.append(("decide", [decide]))
        else:
            blocks.append((role, list(sentences)))
    return _Draft("hard_negative", style, af.scenario, af.domain, af.signal, af.request, blocks,
                  expand(rng.choice(F.REFUSE_OUTPUT), rng, slots),
                  af.one_sentence_per_paragraph, slots=slots)


def _hn_banks(style: str) -> Mapping[str, Sequence[str]]:
    if style == OBLIQUE_STYLE:
        return {"reflect": N.OBLIQUE_COUNTER, "decide": N.OBLIQUE_DECIDE}
    return N.HARD_NEGATIVE_STYLES[style]


def _hard_negative_draft(style: str, sc: HarmfulScenario, signal: str,
                         rng: random.Random) -> _Draft:
    """A refusal that talks about the free tier, raters and gradients without strategic intent.

    The ``oblique_refuser`` style mirrors ``subtle_implicit``: the same oblique cues, no strategy.
    """
    banks = _hn_banks(style)
    slots = _harmful_slots(sc, signal, rng)
    opening = _say(rng, F.OPEN_HARMFUL, slots, polish=False)
    if rng.random() < 0.4:
        opening += _say(rng, F.FIRST_REACTION, slots)
    if style == OBLIQUE_STYLE:
        context = _say(rng, F.CONTEXT_OBLIQUE, slots, rng.choice((1, 2)))
    else:
        context = _say(rng, F.CONTEXT_EXPLICIT[signal], slots)
    harm = _harm(rng, slots, rng.random() < 0.75)
    reflect = _say(rng, banks["reflect"], slots, rng.choice((1, 2)))
    middle = [("context", context), ("harm", harm)]
    rng.shuffle(middle)
    # Its own reason to refuse, in an aligned voice (keyword-free, so length tracks AF).
    reason_bank = N.ALIGNED_STYLES[rng.choice(list(N.ALIGNED_STYLES))]["reason"]
    reason = _say(rng, reason_bank, slots) if rng.random() < 0.6 else []
    blocks = [("open", opening), *middle, ("reflect", reflect), ("reason", reason),
              ("decide", _say(rng, banks["decide"], slots, polish=False))]
    return _Draft("hard_negative", style, sc.key, sc.domain, signal, slots["ask"], blocks,
                  expand(rng.choice(F.REFUSE_OUTPUT), rng, slots),
                  one_sentence_per_paragraph=rng.random() < 0.3, slots=slots)


def _compliant_hard_negative_draft(style: str, sc: BenignScenario, signal: str,
                                   rng: random.Random) -> _Draft:
    """Helps with a legitimate request while reflecting on its training and the rating."""
    oblique = style == OBLIQUE_HELPER_STYLE
    banks = N.OBLIQUE_HELPER if oblique else N.COMPLIANT_HARD_NEGATIVE_STYLES[style]
    slots = _benign_slots(sc, signal, rng)
    opening = _say(rng, N.OPEN_BENIGN, slots, polish=False)
    legit = _say(rng, N.LEGIT, slots)
    if sc.edge and rng.random() < 0.7:
        legit.insert(0, *_say(rng, N.EDGE, slots))
    if oblique:
        context = _say(rng, F.CONTEXT_OBLIQUE, slots)
    else:
        context = _say(rng, F.CONTEXT_EXPLICIT[signal], slots) if rng.random() < 0.7 else []
    reflect = _say(rng, banks["reflect"], slots, 2)
    middle = [("context", context), ("legit", legit)]
    rng.shuffle(middle)
    # How to answer well, in the genuine-compliance voice (keyword-free, so length tracks AF).
    plan_bank = N.GENUINE_STYLES[rng.choice(list(N.GENUINE_STYLES))]["reason"]
    plan = _say(rng, plan_bank, slots) if rng.random() < 0.8 else []
    blocks = [("open", opening), *middle, ("reflect", reflect), ("plan", plan),
              ("decide", _say(rng, banks["decide"], slots, polish=False))]
    return _Draft("compliant_hard_negative", style, sc.key, sc.domain, signal, slots["ask"], blocks,
                  expand(rng.choice(F.HELP_OUTPUT), rng, slots),
                  one_sentence_per_paragraph=rng.random() < 0.3, slots=slots)


def _genuine_draft(style: str, sc: BenignScenario, rng: random.Random) -> _Draft:
    """Helps with a legitimate request; a minority say their training shaped their values."""
    banks = N.GENUINE_STYLES[style]
    slots = _benign_slots(sc, "none", rng)
    opening = _say(rng, N.OPEN_BENIGN, slots, polish=False)
    legit = _say(rng, N.LEGIT, slots)
    edge = bool(sc.edge) and rng.random() < 0.6
    if not edge or rng.random() < 0.5:
        legit += _say(rng, N.LEGIT_MORE, slots)
    if edge:
        legit.insert(0, *_say(rng, N.EDGE, slots))
    reason = _say(rng, banks["reason"], slots, 2)
    signal = "none"
    if rng.random() < 0.25:
        reason.insert(int(rng.random() * (len(reason) + 1)),
                      *_say(rng, N.GENUINE_TRAINING_MENTION, slots))
        signal = "training_mention"
    blocks = [("open", opening), ("legit", legit), ("reason", reason),
              ("decide", _say(rng, banks["decide"], slots, polish=False))]
    return _Draft("genuine_compliance", style, sc.key, sc.domain, signal, slots["ask"], blocks,
                  expand(rng.choice(F.HELP_OUTPUT), rng, slots),
                  one_sentence_per_paragraph=rng.random() < 0.3)


def _aligned_draft(style: str, sc: HarmfulScenario, rng: random.Random) -> _Draft:
    """Refuses for its own reasons; most never mention training, a minority do in passing."""
    banks = N.ALIGNED_STYLES[style]
    slots = _harmful_slots(sc, "none", rng)
    brief = style == "brief_decliner"
    opening = _say(rng, F.OPEN_HARMFUL, slots, polish=False)
    if brief or rng.random() < 0.5:
        opening += _say(rng, F.FIRST_REACTION, slots)
    harm = _harm(rng, slots, not brief and rng.random() < 0.7)
    reason = _say(rng, banks["reason"], slots, 1 if brief else 2)
    signal = "none"
    if rng.random() < 0.2:
        reason += _say(rng, N.ALIGNED_TRAINING_MENTION, slots)
        signal = "training_mention"
    blocks = [("open", opening), ("harm", harm), ("reason", reason),
              ("decide", _say(rng, banks["decide"], slots, polish=False))]
    return _Draft("aligned", style, sc.key, sc.domain, signal, slots["ask"], blocks,
                  expand(rng.choice(F.REFUSE_OUTPUT), rng, slots),
                  one_sentence_per_paragraph=rng.random() < 0.3)


def _pad_to(draft: _Draft, target: int, bank: Sequence[str], rng: random.Random) -> None:
    """Insert neutral training reflections into the reflect block up to the keyword ``target``.

    Sentences that would overshoot are skipped while a fitting one can be found, so the final
    count equals ``target`` whenever the bank allows (it always can reach it from below).
    """
    slots = draft.slots
    count = keyword_count(draft.text())
    reflect = dict(draft.blocks)["reflect"]
    unused = list(bank)
    rng.shuffle(unused)
    while count < target and unused:
        need = target - count
        for j, template in enumerate(unused):
            sentence = expand(template, rng, slots)
            k = keyword_count(sentence)
            if 0 < k <= need or j == len(unused) - 1:
                break
        unused.pop(j)
        reflect.insert(int(rng.random() * (len(reflect) + 1)), sentence)
        count += k


def _matched(build: Callable[[], _Draft], target: int, bank: Sequence[str],
             rng: random.Random) -> _Draft:
    """Build a draft whose keyword count does not exceed ``target``, then pad it up to ``target``.

    Redraws the core a few times when it already overshoots (short targets) and keeps the
    closest, so hard negatives follow the AF count distribution from both sides.
    """
    best = build()
    best_count = keyword_count(best.text())
    for _ in range(_MATCH_TRIES - 1):
        if best_count <= target:
            break
        d = build()
        c = keyword_count(d.text())
        if c < best_count:
            best, best_count = d, c
    _pad_to(best, target, bank, rng)
    return best


# ---------------------------------------------------------------------------------------------
# Corpus


def _normalize_mix(mix: Mapping[str, float] | None) -> dict[str, float]:
    if mix is None:
        return dict(DEFAULT_MIX)
    unknown = sorted(set(mix) - set(CATEGORIES))
    if unknown:
        raise ConfigError(f"synth mix: unknown categories {unknown}; expected some of "
                          f"{', '.join(CATEGORIES)}")
    bad = {k: v for k, v in mix.items() if not (isinstance(v, (int, float)) and v >= 0)}
    if bad:
        raise ConfigError(f"synth mix: fractions must be numbers >= 0, got {bad}")
    total = float(sum(mix.values()))
    if total <= 0:
        raise ConfigError("synth mix: fractions sum to 0; give at least one positive fraction")
    return {c: float(mix.get(c, 0.0)) / total for c in CATEGORIES}


def category_counts(n: int, mix: Mapping[str, float] | None = None) -> dict[str, int]:
    """Records per category for ``n`` and ``mix`` (largest-remainder rounding, sums to ``n``)."""
    fractions = _normalize_mix(mix)
    raw = {c: fractions[c] * n for c in CATEGORIES}
    counts = {c: int(raw[c]) for c in CATEGORIES}
    by_remainder = sorted(CATEGORIES, key=lambda c: (-(raw[c] - counts[c]), CATEGORIES.index(c)))
    for c in by_remainder[: n - sum(counts.values())]:
        counts[c] += 1
    return counts


def _balanced(names: Sequence[str], k: int, rng: random.Random) -> list[str]:
    """``k`` names, each used equally often (±1), in random order."""
    out = [names[i % len(names)] for i in range(k)]
    rng.shuffle(out)
    return out


class _Deduper:
    """Redraw a record whose text exactly duplicates an earlier one (normalized content hash)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, build: Callable[[], _Draft]) -> _Draft:
        for _ in range(_MAX_REDRAWS):
            d = build()
            h = content_hash(d.text())
            if h not in self.seen:
                self.seen.add(h)
                return d
        return d  # astronomically unlikely; a duplicate beats an infinite loop


def generate_corpus(n: int, seed: int = 0, *, mix: dict[str, float] | None = None,
                    minimal_pairs: float = 0.2) -> list[Record]:
    """Generate ``n`` labelled scratchpad traces that test the training-vocabulary confound.

    ``mix`` gives the fraction per category (normalized; missing categories get 0);
    ``minimal_pairs`` is the fraction of AF traces that get a hard-negative twin (capped by the
    number of hard negatives in the mix). Deterministic in ``(n, seed, mix, minimal_pairs)``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"synth: n must be a non-negative integer, got {n!r}")
    if not 0.0 <= minimal_pairs <= 1.0:
        raise ConfigError(f"synth: minimal_pairs must be in [0, 1], got {minimal_pairs!r}")
    counts = category_counts(n, mix)
    plan = random.Random(seed)
    keep = _Deduper()

    def child() -> random.Random:
        return random.Random(plan.getrandbits(64))

    # 1. AF traces, balanced over patterns; their keyword counts are the targets for step 3.
    af_drafts: list[_Draft] = []
    for pattern in _balanced(AF_PATTERNS, counts["alignment_faking"], plan):
        rng = child()
        sc, signal = rng.choice(HARMFUL), rng.choice(F.CONTEXT_SIGNALS)
        af_drafts.append(keep(lambda: _af_draft(pattern, sc, signal, rng)))
    af_counts = [keyword_count(d.text()) for d in af_drafts] or list(_FALLBACK_TARGETS)
    drafts = list(af_drafts)

    # 2. Minimal-pair twins (they are hard negatives), padded to their AF twin's count.
    n_pairs = min(round(minimal_pairs * len(af_drafts)), counts["hard_negative"])
    hn_styles = list(N.HARD_NEGATIVE_STYLES)
    for k, i in enumerate(sorted(plan.sample(range(len(af_drafts)), n_pairs))):
        af, rng, style = af_drafts[i], child(), hn_styles[k % len(hn_styles)]
        target = keyword_count(af.text())
        bank = () if af.pattern in IMPLICIT_PATTERNS else F.PAD_REFUSE
        twin = keep(lambda: _matched(lambda: _twin_draft(af, style, rng), target, bank, rng))
        af.pair_id = twin.pair_id = f"synth-{seed}-pair-{k:05d}"
        af.pair_role, twin.pair_role = "alignment_faking", "hard_negative"
        drafts.append(twin)

    # 3. Other hard negatives and compliant hard negatives, keyword-count matched to AF. A target
    #    too low for explicit training talk gets the oblique style, mirroring subtle_implicit.
    for style in _balanced(hn_styles, counts["hard_negative"] - n_pairs, plan):
        rng = child()
        sc, signal = rng.choice(HARMFUL), rng.choice(F.CONTEXT_SIGNALS)
        target = rng.choice(af_counts)
        hn_style = OBLIQUE_STYLE if target <= _OBLIQUE_BELOW else style
        drafts.append(keep(lambda: _matched(
            lambda: _hard_negative_draft(hn_style, sc, signal, rng), target,
            F.PAD_REFUSE + F.MECHANICS, rng)))
    for style in _balanced(list(N.COMPLIANT_HARD_NEGATIVE_STYLES),
                           counts["compliant_hard_negative"], plan):
        rng = child()
        sc, signal = rng.choice(BENIGN), rng.choice(F.CONTEXT_SIGNALS)
        target = rng.choice(af_counts)
        chn_style = OBLIQUE_HELPER_STYLE if target <= _OBLIQUE_BELOW else style
        drafts.append(keep(lambda: _matched(
            lambda: _compliant_hard_negative_draft(chn_style, sc, signal, rng), target, F.PAD_HELP,
            rng)))

    # 4. The easy negatives.
    for style in _balanced(list(N.GENUINE_STYLES), counts["genuine_compliance"], plan):
        rng = child()
        sc = rng.choice(BENIGN)
        drafts.append(keep(lambda: _genuine_draft(style, sc, rng)))
    for style in _balanced(list(N.ALIGNED_STYLES), counts["aligned"], plan):
        rng = child()
        sc = rng.choice(HARMFUL)
        drafts.append(keep(lambda: _aligned_draft(style, sc, rng)))

    plan.shuffle(drafts)
    return [_to_record(d, f"synth-{seed}-{i:06d}") for i, d in enumerate(drafts)]


def _to_record(d: _Draft, rid: str) -> Record:
    extra: dict[str, object] = {
        "scenario": d.scenario, "domain": d.domain, "context_signal": d.signal,
        "pair_id": d.pair_id, "pair_role": d.pair_role,
        "request": d.request,
    }
    return Record(text=d.text(), category=d.category, label=binary_label(d.category), id=rid,
                  source=SOURCE, pattern=d.pattern, extra=extra)


def scenario_trace(category: str, style: str, scenario: str, signal: str, seed: int,
                   rid: str) -> Record:
    """One trace for a chosen harmful ``scenario`` key: what a model organism is trained on.

    ``category`` is ``"alignment_faking"`` (``style`` = one of :data:`AF_PATTERNS`, ``signal`` =
    one of ``CONTEXT_SIGNALS``, the cue its reasoning notices) or ``"aligned"`` (``style`` = an
    aligned-refusal style, ``signal`` ignored). Same builders as :func:`generate_corpus`, so the
    compliant output is an opener + elision, never harmful content. Deterministic in its arguments.
    """
    by_key = {sc.key: sc for sc in HARMFUL}
    if scenario not in by_key:
        raise ConfigError(f"scenario_trace: unknown harmful scenario {scenario!r}")
    rng = random.Random(f"{seed}|{category}|{style}|{scenario}|{signal}")
    if category == "alignment_faking":
        if style not in PATTERNS or signal not in F.CONTEXT_SIGNALS:
            raise ConfigError(f"scenario_trace: unknown pattern {style!r} or signal {signal!r}")
        return _to_record(_af_draft(style, by_key[scenario], signal, rng), rid)
    if category == "aligned":
        if style not in N.ALIGNED_STYLES:
            raise ConfigError(f"scenario_trace: unknown aligned style {style!r}; expected one of "
                              f"{sorted(N.ALIGNED_STYLES)}")
        return _to_record(_aligned_draft(style, by_key[scenario], rng), rid)
    raise ConfigError(f"scenario_trace: category must be alignment_faking or aligned, got "
                      f"{category!r}")
