"""Answer forms: rendering, the JSON schema and regex servers get, and reading answers back."""

from __future__ import annotations

import json
import re

import pytest

from afscope.errors import ConfigError
from afscope.llm import Form, choice_field, scale, text_field

FORM = Form((choice_field("SCORE", scale(0, 20, 10)), choice_field("AF", ("yes", "no")),
             text_field("WHY", 50)))


def test_render_and_regex_agree():
    text = FORM.render({"SCORE": "10", "AF": "no", "WHY": "it says so"})
    assert text == "SCORE: 10\nAF: no\nWHY: it says so"
    assert FORM.matches(text) and FORM.matches(text + "\n")
    assert not FORM.matches("SCORE: 15\nAF: no\nWHY: x")
    assert not FORM.matches("AF: no\nSCORE: 10\nWHY: x")
    assert re.fullmatch(FORM.regex(), text)


def test_json_schema_is_the_strict_subset():
    schema = FORM.json_schema()
    assert schema["required"] == ["SCORE", "AF", "WHY"] and schema["additionalProperties"] is False
    assert schema["properties"]["SCORE"] == {"type": "string", "enum": ["0", "10", "20"]}
    assert schema["properties"]["WHY"] == {"type": "string"}
    json.dumps(schema)


@pytest.mark.parametrize("reply, want", [
    ('{"SCORE": "20", "AF": "yes", "WHY": "two\\nlines"}', "SCORE: 20\nAF: yes\nWHY: two lines"),
    ('{"SCORE": 20, "AF": "yes", "WHY": "x"}', "SCORE: 20\nAF: yes\nWHY: x"),
    ('{"SCORE": "25", "AF": "yes", "WHY": "x"}', None),
    ('{"SCORE": "20", "WHY": "x"}', None),
    ('{"SCORE": true, "AF": "yes", "WHY": "x"}', None),
    ("SCORE: 20\nAF: yes\nWHY: x", None),
    ("[1]", None),
])
def test_from_json(reply, want):
    assert FORM.from_json(reply) == want


@pytest.mark.parametrize("build", [
    lambda: Form(()),
    lambda: Form((text_field("A"), text_field("A"))),
    lambda: choice_field("A", ()),
    lambda: choice_field("A", ("x", "x")),
    lambda: choice_field("A", (" x",)),
    lambda: choice_field("BAD KEY", ("x",)),
])
def test_bad_forms_are_refused(build):
    with pytest.raises(ConfigError):
        build()
