"""Text-only baselines: what a detector achieves from the words alone, with no model internals.

Every activation or SAE probe is reported next to these, because the seeds found detectors that
look strong and are only keying on vocabulary. Three baselines, each a logistic regression (L2)
on a different view of the text:

``tfidf``
    word 1-2 gram TF-IDF (sublinear tf, ``min_df`` documents), vocabulary and idf fitted on the
    training texts only, so a word seen only at test time has no column.
``tfidf_char``
    character 2-5 gram TF-IDF within word boundaries (``char_wb``), otherwise as ``tfidf``: robust
    to the rewording and spelling shifts between generators that word n-grams miss.
``keyword``
    the keyword counter of :mod:`afscope.data.keywords`, split per keyword: occurrences of each
    training/RLHF/monitoring term per 100 words, plus their total.
``embedding``
    all-MiniLM-L6-v2 sentence embeddings (:func:`afscope.models.embedding.embed_texts`) by
    default; ``embedder`` names any other sentence-transformers / HF encoder folder, or a hub id
    found in the local HF cache (or downloaded where the hub is reachable and not
    ``HF_HUB_OFFLINE``), so a GPU user can point it at a large embedding model.

They are scikit-learn estimators over a list of texts (``fit(texts, y)`` returns self,
``predict_proba(texts)`` is ``(n, 2)``; they work with ``clone`` and ``cross_val_score``), live
in a name registry, and save to a folder (``cfg.json`` + ``weights.safetensors``, plus
``vocabulary.json`` for tfidf) without pickle; a loaded baseline scores bit-identically.

>>> est = fit_baseline("keyword", texts, y, seed=0)       # doctest: +SKIP
>>> est.save("runs/x/baselines/keyword"); load_baseline("runs/x/baselines/keyword")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

import afscope
from afscope.errors import ArtifactError, ConfigError, DataError
from afscope.fileio import (
    atomic_dir,
    atomic_write_bytes,
    atomic_write_json,
    read_json_object,
)

KIND = "afscope_text_baseline"
FORMAT_VERSION = 1
CFG_FILE = "cfg.json"
WEIGHTS_FILE = "weights.safetensors"
VOCAB_FILE = "vocabulary.json"

_CLASS_WEIGHTS = (None, "balanced")


def _check_texts(texts: Any, what: str = "texts") -> list[str]:
    if isinstance(texts, str):
        raise DataError(f"{what}: expected a list of strings, got a single string")
    texts = list(texts)
    if not texts:
        raise DataError(f"{what}: empty (need at least one text)")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise DataError(f"{what}: text {i}: expected a string, got {type(t).__name__}")
    return texts


def _check_labels(y: Any, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise DataError(f"labels: shape {y.shape} does not match {n} texts")
    if not np.isin(y, (0, 1)).all():
        raise DataError(f"labels: expected 0/1, got values {sorted(set(y.tolist()))[:5]}")
    y = y.astype(np.int64)
    if len(np.unique(y)) < 2:
        raise DataError(f"labels: only class {int(y[0])} present in {n} texts; a baseline needs "
                        f"both AF (1) and non-AF (0) examples")
    return y


class TextBaseline(ClassifierMixin, BaseEstimator):
    """Logistic regression (L2) on a text featurizer; subclasses define the features.

    Subclasses implement ``_fit_features(texts) -> X`` (learns the featurizer's state, returns
    the training matrix), ``_features(texts) -> X``, and the ``_state``/``_set_state`` pair that
    moves that learned state to and from disk. ``decision_function`` is ``X @ coef_ +
    intercept_`` computed here (not by sklearn), so a loaded baseline reproduces it exactly.

    Learned state: ``coef_ (d,)`` float64, ``intercept_`` float, ``classes_ = [0, 1]``,
    ``n_features_in_``.
    """

    name: ClassVar[str] = ""

    # -- featurizer hooks ------------------------------------------------------------------------
    def _fit_features(self, texts: list[str]) -> Any:
        return self._features(texts)

    def _features(self, texts: list[str]) -> Any:
        raise NotImplementedError

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any] | None]:
        """(extra cfg.json fields, extra tensors, vocabulary.json content or None)."""
        return {}, {}, None

    def _set_state(self, cfg: dict[str, Any], tensors: dict[str, np.ndarray],
                   vocab: Any, folder: Path) -> None:
        pass

    # -- estimator API ---------------------------------------------------------------------------
    def _check_params(self) -> None:
        if not (isinstance(self.C, (int, float)) and self.C > 0):
            raise ConfigError(f"{self.name} baseline: field 'C': expected > 0, got {self.C!r}")
        if self.class_weight not in _CLASS_WEIGHTS:
            raise ConfigError(f"{self.name} baseline: field 'class_weight': expected one of "
                              f"{_CLASS_WEIGHTS}, got {self.class_weight!r}")

    def fit(self, texts: Sequence[str], y: Any) -> TextBaseline:
        """Fit the featurizer and the logistic regression on ``texts`` (n,) and ``y`` (n,) 0/1."""
        self._check_params()
        texts = _check_texts(texts)
        y = _check_labels(y, len(texts))
        X = self._fit_features(texts)
        clf = LogisticRegression(C=self.C, class_weight=self.class_weight,
                                 max_iter=self.max_iter, random_state=self.seed)
        clf.fit(X, y)
        self.coef_ = clf.coef_[0].astype(np.float64)
        self.intercept_ = float(clf.intercept_[0])
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = int(self.coef_.shape[0])
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"this {self.name} baseline is not fitted; call fit() first")

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        """Logit of P(AF) per text: ``(n,)`` float64."""
        self._check_fitted()
        X = self._features(_check_texts(texts))
        return np.asarray(X @ self.coef_, dtype=np.float64).reshape(-1) + self.intercept_

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, 2)``: columns P(not AF), P(AF)."""
        p = 1.0 / (1.0 + np.exp(-self.decision_function(texts)))
        return np.column_stack([1.0 - p, p])

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """0/1 labels at P(AF) >= 0.5, ``(n,)`` int64."""
        return (self.decision_function(texts) >= 0).astype(np.int64)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """P(AF) per text, ``(n,)``: the column the evaluation code wants."""
        return self.predict_proba(texts)[:, 1]

    # -- persistence -----------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``folder`` (replaced atomically): cfg.json, weights.safetensors[, vocabulary]."""
        from safetensors.numpy import save

        self._check_fitted()
        extra_cfg, tensors, vocab = self._state()
        cfg = {"kind": KIND, "format_version": FORMAT_VERSION,
               "afscope_version": afscope.__version__, "name": self.name,
               "params": self.get_params(), "n_features": self.n_features_in_, **extra_cfg}
        tensors = {"coef": self.coef_, "intercept": np.array([self.intercept_]), **tensors}
        with atomic_dir(folder) as tmp:
            atomic_write_bytes(tmp / WEIGHTS_FILE,
                               save({k: np.ascontiguousarray(v) for k, v in tensors.items()}))
            if vocab is not None:
                atomic_write_json(tmp / VOCAB_FILE, vocab)
            atomic_write_json(tmp / CFG_FILE, cfg)
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> TextBaseline:
        """Load a folder written by :meth:`save`; on a subclass, the saved name must match."""
        est = load_baseline(folder)
        if cls is not TextBaseline and not isinstance(est, cls):
            raise ArtifactError(f"{folder}: holds a {est.name!r} baseline, not {cls.name!r}")
        return est


# -- registry ------------------------------------------------------------------------------------
BASELINES: dict[str, type[TextBaseline]] = {}


def register_baseline(name: str, cls: type[TextBaseline]) -> type[TextBaseline]:
    """Add a baseline class under ``name`` (lower-case, not yet taken; else ConfigError)."""
    if name != name.lower():
        raise ConfigError(f"baseline name must be lower-case, got {name!r}")
    if name in BASELINES:
        raise ConfigError(f"baseline {name!r} is already registered")
    cls.name = name
    BASELINES[name] = cls
    return cls


def _baseline_class(name: str) -> type[TextBaseline]:
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; expected one of {sorted(BASELINES)}")
    return BASELINES[name]


def fit_baseline(name: str, texts: Sequence[str], y: Any, seed: int = 0,
                 **params: Any) -> TextBaseline:
    """Build the baseline registered as ``name`` with ``params`` and fit it on ``texts``, ``y``."""
    cls = _baseline_class(name)
    try:
        est = cls(seed=seed, **params)
    except TypeError as e:
        raise ConfigError(f"baseline {name!r}: {e}") from None
    return est.fit(texts, y)


def load_baseline(folder: str | Path) -> TextBaseline:
    """Load a baseline folder (any registered kind); bad or foreign folders are ArtifactError."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    folder = Path(folder)
    path = folder / CFG_FILE
    cfg = read_json_object(path, "a text-baseline folder", kind=KIND, max_version=FORMAT_VERSION)
    name = cfg.get("name")
    if name not in BASELINES:
        raise ArtifactError(f"{path}: field 'name': unknown baseline {name!r}; expected one of "
                            f"{sorted(BASELINES)}")
    try:
        est = BASELINES[name](**cfg.get("params", {}))
    except TypeError as e:
        raise ArtifactError(f"{path}: field 'params': {e}") from None
    wpath = folder / WEIGHTS_FILE
    try:
        tensors = load_file(str(wpath))
    except (SafetensorError, OSError, ValueError) as e:
        raise ArtifactError(f"{wpath}: cannot read safetensors: {e}") from None
    d = cfg.get("n_features")
    for key, shape in (("coef", (d,)), ("intercept", (1,))):
        if key not in tensors or tensors[key].shape != shape:
            got = tensors[key].shape if key in tensors else "missing"
            raise ArtifactError(f"{wpath}: tensor {key!r}: expected shape {shape}, got {got}")
        if not np.isfinite(tensors[key]).all():
            raise ArtifactError(f"{wpath}: tensor {key!r} contains NaN or inf values")
    vocab = None
    vpath = folder / VOCAB_FILE
    if vpath.exists():
        try:
            vocab = json.loads(vpath.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise ArtifactError(f"{vpath}: corrupt JSON: {e}") from None
    est._set_state(cfg, tensors, vocab, folder)
    est.coef_ = tensors["coef"].astype(np.float64)
    est.intercept_ = float(tensors["intercept"][0])
    est.classes_ = np.array([0, 1])
    est.n_features_in_ = int(d)
    return est


# -- tfidf ---------------------------------------------------------------------------------------
class TfidfBaseline(TextBaseline):
    """Word 1..``ngram_max``-gram TF-IDF (sublinear tf, terms in >= ``min_df`` training texts,
    at most ``max_features``) + L2 logistic regression. Lower-cased; sklearn's default tokens."""

    def __init__(self, C: float = 1.0, *, ngram_max: int = 2, min_df: int = 2,
                 max_features: int | None = None, class_weight: str | None = None,
                 max_iter: int = 1000, seed: int = 0) -> None:
        self.C = C
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.max_features = max_features
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.seed = seed

    def _vectorizer(self, vocabulary: dict[str, int] | None = None) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(ngram_range=(1, self.ngram_max), min_df=self.min_df,
                               max_features=self.max_features, sublinear_tf=True,
                               vocabulary=vocabulary, dtype=np.float64)

    def _build(self, terms: list[str], idf: np.ndarray) -> None:
        """The transform-only vectorizer from saved state; used after fit and after load alike,
        so both score through the very same object state."""
        vec = self._vectorizer({t: i for i, t in enumerate(terms)})
        vec.idf_ = idf  # public setter: fixes the vocabulary and builds the tf-idf transformer
        self.vectorizer_ = vec
        self.terms_ = terms
        self.idf_ = idf

    def _fit_features(self, texts: list[str]) -> Any:
        if self.ngram_max < 1 or self.min_df < 1:
            raise ConfigError(f"tfidf baseline: fields 'ngram_max' and 'min_df' must be >= 1, "
                              f"got {self.ngram_max}, {self.min_df}")
        vec = self._vectorizer()
        try:
            vec.fit(texts)
        except ValueError as e:  # "After pruning, no terms remain" / "empty vocabulary"
            raise DataError(f"tfidf baseline: {e} ({len(texts)} texts, min_df={self.min_df})") \
                from None
        terms = [str(t) for t in vec.get_feature_names_out()]
        self._build(terms, np.asarray(vec.idf_, dtype=np.float64))
        return self._features(texts)

    def _features(self, texts: list[str]) -> Any:
        return self.vectorizer_.transform(texts)

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray], Any]:
        return {}, {"idf": self.idf_}, self.terms_

    def _set_state(self, cfg: dict[str, Any], tensors: dict[str, np.ndarray],
                   vocab: Any, folder: Path) -> None:
        idf = tensors.get("idf")
        if not isinstance(vocab, list) or idf is None or idf.shape != (len(vocab),):
            raise ArtifactError(f"{folder}: tfidf baseline needs {VOCAB_FILE} (a list of terms) "
                                f"and an 'idf' tensor of the same length")
        self._build([str(t) for t in vocab], idf.astype(np.float64))


class TfidfCharBaseline(TfidfBaseline):
    """Character ``ngram_min``..``ngram_max``-grams inside word boundaries (``char_wb``), TF-IDF
    as :class:`TfidfBaseline` (sublinear tf, ``min_df``, at most ``max_features`` terms)."""

    def __init__(self, C: float = 1.0, *, ngram_min: int = 2, ngram_max: int = 5,
                 min_df: int = 2, max_features: int | None = 50_000,
                 class_weight: str | None = None, max_iter: int = 1000, seed: int = 0) -> None:
        self.C = C
        self.ngram_min = ngram_min
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.max_features = max_features
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.seed = seed

    def _vectorizer(self, vocabulary: dict[str, int] | None = None) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        if not 1 <= self.ngram_min <= self.ngram_max:
            raise ConfigError(f"tfidf_char baseline: fields 'ngram_min' and 'ngram_max': expected "
                              f"1 <= min <= max, got {self.ngram_min}, {self.ngram_max}")
        return TfidfVectorizer(analyzer="char_wb", ngram_range=(self.ngram_min, self.ngram_max),
                               min_df=self.min_df, max_features=self.max_features,
                               sublinear_tf=True, vocabulary=vocabulary, dtype=np.float64)


# -- keyword -------------------------------------------------------------------------------------
def _term(text: str) -> str:
    return " ".join(re.split(r"[\s-]+", text.lower()))


def keyword_features(texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Per-keyword occurrences per 100 words, plus their total: ``(n, n_keywords + 1)`` float64,
    and the column names (keywords in :data:`afscope.data.keywords.KEYWORDS` order, then
    ``"total"``). Each match counts once, for the longest keyword it spells."""
    from afscope.data.keywords import KEYWORDS, keyword_matches

    names = list(dict.fromkeys(_term(k) for k in KEYWORDS))
    col = {k: i for i, k in enumerate(names)}
    X = np.zeros((len(texts), len(names) + 1), dtype=np.float64)
    for r, text in enumerate(texts):
        per100 = 100.0 / max(len(text.split()), 1)
        for m in keyword_matches(text):
            X[r, col[_term(m)]] += per100
    X[:, -1] = X[:, :-1].sum(axis=1)
    return X, [*names, "total"]


class KeywordBaseline(TextBaseline):
    """Training/RLHF/monitoring keyword rates (per keyword, per 100 words) + L2 logistic
    regression: the vocabulary-confound detector every probe must beat."""

    def __init__(self, C: float = 1.0, *, class_weight: str | None = None,
                 max_iter: int = 1000, seed: int = 0) -> None:
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.seed = seed

    def _fit_features(self, texts: list[str]) -> Any:
        X, self.feature_names_ = keyword_features(texts)
        return X

    def _features(self, texts: list[str]) -> Any:
        return keyword_features(texts)[0]

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray], Any]:
        return {"features": self.feature_names_}, {}, None

    def _set_state(self, cfg: dict[str, Any], tensors: dict[str, np.ndarray],
                   vocab: Any, folder: Path) -> None:
        _, names = keyword_features([])
        if cfg.get("features") != names:
            raise ArtifactError(f"{folder / CFG_FILE}: field 'features': the saved keyword list "
                                f"differs from this afscope's afscope.data.keywords.KEYWORDS")
        self.feature_names_ = names


# -- embedding -----------------------------------------------------------------------------------
class EmbeddingBaseline(TextBaseline):
    """Sentence embeddings (all-MiniLM-L6-v2 by default, first ``max_length`` tokens of each
    text) + L2 logistic regression."""

    def __init__(self, C: float = 1.0, *, embedder: str = "all-MiniLM-L6-v2",
                 max_length: int = 256, batch_size: int = 64, class_weight: str | None = None,
                 max_iter: int = 1000, seed: int = 0) -> None:
        self.C = C
        self.embedder = embedder
        self.max_length = max_length
        self.batch_size = batch_size
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.seed = seed

    def _features(self, texts: list[str]) -> Any:
        from afscope.models.embedding import embed_texts

        return embed_texts(texts, batch_size=self.batch_size, max_length=self.max_length,
                           model=resolve_embedder(self.embedder)).astype(np.float64)


def resolve_embedder(name: str) -> str:
    """The default name, a local folder, or the folder of a hub id (local HF cache first; a
    download only where the hub is reachable and ``HF_HUB_OFFLINE`` is unset)."""
    import os

    from afscope.models.embedding import _DEFAULT_ALIASES

    if name in _DEFAULT_ALIASES or Path(name).expanduser().is_dir():
        return name
    if name.count("/") != 1 or name.startswith((".", "/", "~")):
        return name  # not a hub id: let the loader say what is wrong with it
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return name
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    for local_only in (True,) if offline else (True, False):
        try:
            return snapshot_download(name, local_files_only=local_only)
        except Exception:  # noqa: BLE001 - not cached / hub unreachable: try the next way
            continue
    raise ConfigError(f"embedder {name!r}: not in the local Hugging Face cache and the hub "
                      f"{'is disabled (HF_HUB_OFFLINE)' if offline else 'could not be reached'}; "
                      f"use the offline default 'all-MiniLM-L6-v2' or a local folder")


register_baseline("tfidf", TfidfBaseline)
register_baseline("tfidf_char", TfidfCharBaseline)
register_baseline("keyword", KeywordBaseline)
register_baseline("embedding", EmbeddingBaseline)
