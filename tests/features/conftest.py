"""Fixtures of the features tests (helpers live in ``feat_helpers``)."""

from __future__ import annotations

import pytest
from feat_helpers import make_toy, oracle_reply
from scripted_llm import ScriptedBackend


@pytest.fixture
def toy():
    return make_toy()


@pytest.fixture
def oracle() -> ScriptedBackend:
    return ScriptedBackend(oracle_reply)
