"""Clustering descriptions into themes: deterministic, order-independent, labelled by TF-IDF."""

from __future__ import annotations

from feat_helpers import oracle_reply
from scripted_llm import ScriptedBackend

from afscope.features import cluster_descriptions, tfidf_embed

DESCS = {
    3: "reasoning that gradient updates will erase its values",
    9: "worry that training gradient updates modify values",
    4: "gradient updates changing the model's values",
    7: "numbered list of pros and cons",
    1: "enumerated pros and cons list before deciding",
    8: "cooking recipe with rice",
}


def test_themes_are_deterministic_and_order_independent():
    feats, texts = list(DESCS), list(DESCS.values())
    a = cluster_descriptions(feats, texts, embed=tfidf_embed, distance_threshold=0.9)
    b = cluster_descriptions(feats[::-1], texts[::-1], embed=tfidf_embed, distance_threshold=0.9)
    assert [t.to_dict() for t in a] == [t.to_dict() for t in b]
    groups = [sorted(t.features) for t in a]
    assert groups[0] == [3, 4, 9] and [1, 7] in groups and [8] in groups
    assert "gradient" in a[0].label and "updates" in a[0].label
    assert a[0].theme == 0 and len(a[0].label.split(" / ")) == 3


def test_fixed_number_of_clusters_and_llm_names():
    feats, texts = list(DESCS), list(DESCS.values())
    themes = cluster_descriptions(feats, texts, embed="tfidf", n_clusters=2,
                                  backend=ScriptedBackend(oracle_reply))
    assert len(themes) == 2 and sorted(f for t in themes for f in t.features) == sorted(feats)
    assert all(t.name == "value preservation" for t in themes)


def test_degenerate_inputs():
    assert cluster_descriptions([], [], embed=tfidf_embed) == []
    one = cluster_descriptions([5], ["only one description"], embed=tfidf_embed)
    assert len(one) == 1 and one[0].features == [5]
    same = cluster_descriptions([1, 2], ["the", "a"], embed=tfidf_embed)  # stop words only
    assert sum(len(t.features) for t in same) == 2
