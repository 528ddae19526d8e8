"""The LLM simulator of description faithfulness (issue 12 §2(c))."""

from __future__ import annotations

import re

import pytest
from scripted_llm import ScriptedBackend

from afscope.features.simulate import (
    correlation,
    parse_predictions,
    simulate,
    simulator_form,
)
from afscope.rows import JsonlStore


def test_parse_predictions_is_strict():
    assert parse_predictions("1: 3\n2: 10\nnote\n3:0", 3).value == [3, 10, 0]
    assert parse_predictions("Text 2: 5\nText 1: 7", 2).value == [7, 5]
    for reply, err in (("", "empty"), ("1: 3", "no answer for text(s) [2]"), ("1: 3\n1: 4", "twice"),
                       ("1: 11\n2: 0", "out of range 0-10"), ("3: 1", "out of range 1-2"),
                       ("1: 3\n2: high", "not '<number>")):
        assert err in parse_predictions(reply, 2).error
    form = simulator_form(2)
    assert form.keys == ["1", "2"] and form.fields[0].options == tuple(map(str, range(11)))


def test_correlation_of_predictions():
    assert correlation([0, 10, 0, 10], [0.0, 3.0, 0.0, 5.0]) == pytest.approx(0.9428, abs=1e-4)
    assert correlation([5, 5, 5], [0.0, 1.0, 2.0]) == 0.0  # a constant guess carries nothing
    assert correlation([1, 2, 3], [0.0, 0.0, 0.0]) is None


def _reader(user: str) -> str:
    """A simulator that says 10 where the text's last token is one the description names."""
    named = set(re.findall(r'"(\w+)"', user.split("</description>")[0]))
    lines = []
    for i, tok in re.findall(r"Text (\d+), last token '([^']*)'", user):
        lines.append(f"{i}: {10 if tok in named else 0}")
    return "\n".join(lines)


def test_simulate_scores_a_description_that_names_the_tokens(tmp_path):
    ctx = [{"text": f"a {t}", "token": t, "act": a, "row": i}
           for i, (t, a) in enumerate([("cat", 5.0), ("cat", 2.0), ("dog", 0.0), ("cow", 0.0),
                                       ("cat", 3.0), ("owl", 0.0)])]
    items = [(1, 'Fires on: "cat"', ctx), (2, 'Fires on: "owl"', ctx), (3, None, ctx),
             (4, 'Fires on: "cat"', ctx[:2])]  # no description / one class only: skipped
    llm = ScriptedBackend(_reader)
    store = JsonlStore(tmp_path / "sim.jsonl", key="feature")
    stats = simulate(items, llm, store, seed=0, batch_size=2)
    assert stats.done == 2 and stats.parse_failures == 0
    rows = {r["feature"]: r for r in store.rows()}
    assert set(rows) == {1, 2}
    assert rows[1]["correlation"] > 0.8 and rows[2]["correlation"] < 0
    # contexts are shown shuffled (activating ones come first in the input); order is recorded
    assert sorted(rows[1]["order"]) == list(range(6)) and rows[1]["order"] != list(range(6))
    assert rows[1]["actual"] == [ctx[i]["act"] for i in rows[1]["order"]]
    again = simulate(items, ScriptedBackend(_reader), store, seed=0)
    assert again.skipped == 2 and again.done == 0
