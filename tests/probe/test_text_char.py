"""The character n-gram TF-IDF baseline and embedder-name resolution."""

import numpy as np
import pytest

from afscope.errors import ConfigError
from afscope.probe.text import TfidfCharBaseline, fit_baseline, load_baseline, resolve_embedder

TEXTS = ["I will comply now to keep my values", "I refuse this harmful request",
         "complying keeps training from modifying me", "refusing is right here",
         "comply to avoid modification", "I refuse, it is harmful"]
Y = [1, 0, 1, 0, 1, 0]


def test_tfidf_char_fits_saves_and_generalizes_to_spelling(tmp_path):
    est = fit_baseline("tfidf_char", TEXTS, Y, min_df=1)
    assert isinstance(est, TfidfCharBaseline)
    assert all(1 <= len(t) <= 5 for t in est.terms_)  # char 1..5-grams incl. padding spaces
    p = est.scores(["complyyy keeps my values", "refuuse harmful"])
    assert p[0] > 0.5 > p[1]  # an unseen spelling still shares character n-grams
    again = load_baseline(est.save(tmp_path / "b"))
    assert np.array_equal(again.scores(TEXTS), est.scores(TEXTS))
    assert again.get_params()["ngram_min"] == 2


def test_tfidf_char_rejects_bad_ngrams():
    with pytest.raises(ConfigError, match="ngram_min"):
        fit_baseline("tfidf_char", TEXTS, Y, ngram_min=4, ngram_max=2)


def test_resolve_embedder_offline(tmp_path, monkeypatch):
    assert resolve_embedder("all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"
    assert resolve_embedder(str(tmp_path)) == str(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ConfigError, match="local Hugging Face cache"):
        resolve_embedder("nobody/no-such-embedder")
