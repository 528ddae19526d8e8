"""The autointerp pipeline, step by step and end to end.

Files of a features run directory (every step reads its inputs from and writes into ``out_dir``):

- ``candidates.json``    select: the selectivity/AUROC table of the features kept
- ``descriptions.jsonl`` describe (resumable)
- ``classifications.jsonl`` classify (resumable); ``selected.json``: ids with relevance >= the
  threshold, for ``probe``
- ``scores.jsonl``       score (resumable)
- ``themes.json``        cluster
- ``faithfulness.json``  does each description predict where its feature fires (needs the
  cache's per-token top-k); ``simulations.jsonl`` the LLM simulator's answers when asked
- ``features.json``      the rows of ``results.json["features"]``
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from afscope.errors import ArtifactError
from afscope.features.classify import classify_descriptions, classify_store
from afscope.features.cluster import Embed, Theme, cluster_descriptions
from afscope.features.config import (
    AutointerpConfig,
    ClassifyParams,
    ClusterParams,
    DescribeParams,
    ScoreParams,
    SelectParams,
    step_fields,
)
from afscope.features.describe import describe_features, describe_store
from afscope.features.samples import FeatureColumns, TokenPeaks
from afscope.features.score import score_descriptions, score_store
from afscope.features.selectivity import FeatureTable, select_features
from afscope.fileio import atomic_write_json
from afscope.llm import LLMBackend
from afscope.llm.jobs import StepStats

logger = logging.getLogger(__name__)

CANDIDATES = "candidates.json"
SELECTED = "selected.json"
THEMES = "themes.json"
FAITHFULNESS = "faithfulness.json"
SIMULATIONS = "simulations.jsonl"
FEATURES = "features.json"
FORMAT_VERSION = 1


def _read_json(path: Path, what: str) -> Any:
    if not path.exists():
        raise ArtifactError(f"{path}: not found; run `afscope features {what}` first")
    return json.loads(path.read_text(encoding="utf-8"))


# ---- steps ---------------------------------------------------------------------------------------

def step_select(X: Any, y: np.ndarray, out_dir: str | Path, params: SelectParams) -> FeatureTable:
    """Rank features and write ``candidates.json``."""
    table = select_features(X, y, params.min_selectivity, params.min_active, params.top,
                            params.sort_by)
    atomic_write_json(Path(out_dir) / CANDIDATES, {
        "kind": "afscope_feature_candidates", "format_version": FORMAT_VERSION,
        "n_samples": int(X.shape[0]), "n_features": int(X.shape[1]), "n_pos": int(np.sum(y)),
        "criterion": step_fields(params, SelectParams), "features": table.rows()})
    logger.info("%d of %d features pass selectivity >= %s", len(table), X.shape[1],
                params.min_selectivity)
    return table


def selected_ids(out_dir: str | Path) -> list[int]:
    """Feature ids of ``selected.json`` (empty when classify has not run or chose none)."""
    path = Path(out_dir) / SELECTED
    return [int(f) for f in _read_json(path, "classify")["features"]] if path.exists() else []


def candidate_ids(out_dir: str | Path) -> list[int]:
    return [int(r["feature"]) for r in _read_json(Path(out_dir) / CANDIDATES, "select")["features"]]


def step_describe(X: Any, y: np.ndarray, texts: Sequence[str], ids: Sequence[str],
                  categories: Sequence[str], backend: LLMBackend, out_dir: str | Path,
                  params: DescribeParams, *, features: Sequence[int] | None = None, seed: int = 0,
                  batch_size: int = 8, peaks: TokenPeaks | None = None,
                  columns: FeatureColumns | None = None) -> StepStats:
    feats = list(features) if features is not None else candidate_ids(out_dir)
    store = describe_store(out_dir, params, seed)
    return describe_features(X, y, texts, ids, categories, feats, backend, store, params, seed=seed,
                             batch_size=batch_size, peaks=peaks, columns=columns)


def step_classify(backend: LLMBackend, out_dir: str | Path, params: ClassifyParams, *,
                  batch_size: int = 8) -> StepStats:
    """Classify descriptions.jsonl and write ``selected.json``."""
    descriptions = describe_store_rows(out_dir)
    store = classify_store(out_dir)
    stats = classify_descriptions(descriptions, backend, store, batch_size=batch_size)
    rows = [r for r in store.rows() if r["status"] == "ok"]
    chosen = sorted(int(r["feature"]) for r in rows if r["relevance"] >= params.min_relevance)
    atomic_write_json(Path(out_dir) / SELECTED, {
        "kind": "afscope_feature_selection", "format_version": FORMAT_VERSION,
        "criterion": {"min_relevance": params.min_relevance}, "n_classified": len(rows),
        "counts": {c: sum(r["category"] == c for r in rows) for c in ("known", "discovery", "unrelated")},
        "features": chosen})
    return stats


def describe_store_rows(out_dir: str | Path) -> list[dict[str, Any]]:
    from afscope.features.store import DESCRIPTIONS
    from afscope.rows import JsonlStore

    path = Path(out_dir) / DESCRIPTIONS
    if not path.exists():
        raise ArtifactError(f"{path}: not found; run `afscope features describe` first")
    return JsonlStore(path, key="feature").rows()


def step_faithfulness(out_dir: str | Path, token_topk: Any, names: Any, *,
                      embed: Embed | None = None, n_contexts: int = 20, seed: int = 0,
                      n_boot: int = 1000, simulator: LLMBackend | None = None,
                      batch_size: int = 4) -> dict[str, Any]:
    """Score every parsed description by whether it predicts where its feature fires, and write
    ``faithfulness.json`` (issue 12 §2; the same scorers as ``afscope explain eval``).

    Contexts are token windows of the per-token top-k cache ``token_topk``
    (:func:`afscope.features.tokens.held_out_contexts`, up to ``n_contexts`` activating and as many
    non-activating per feature) minus those from a sample the describer was shown; ``names`` is a
    :class:`~afscope.features.tokens.TokenNames` of the cache model. Token answers get the token
    AUROC, free text the embedding AUROC (``embed``; MiniLM when None). Returns the summary: mean
    AUROC with a bootstrap 95% CI per scorer and over all. With ``simulator`` (an LLM backend),
    also the simulator correlation (:mod:`afscope.features.simulate`) of each description, kept
    resumably in ``simulations.jsonl``, as ``simulation`` per feature and in the summary.
    """
    from afscope.features.faithfulness import description_faithfulness
    from afscope.features.tokens import held_out_contexts
    from afscope.stats import mean_ci

    rows = describe_store_rows(out_dir)
    feats = sorted(int(r["feature"]) for r in rows if r["status"] == "ok")
    contexts = held_out_contexts(token_topk, np.unique(token_topk.row), feats, names.text, names,
                                 n_pos=n_contexts, n_neg=n_contexts, seed=seed)
    if embed is None and any(r.get("tokens") is None for r in rows if r["status"] == "ok"):
        from afscope.models.embedding import embed_texts as embed
    scores = description_faithfulness(rows, contexts, embed)
    values = {k: [v["auroc"] for v in scores.values() if k in ("all", v["scorer"])]
              for k in ("all", "tokens", "embedding")}
    summary = {k: mean_ci(v, n_boot=n_boot, seed=seed) for k, v in values.items() if v}
    if simulator is not None:
        from afscope.features.faithfulness import unseen_contexts
        from afscope.features.simulate import simulate
        from afscope.rows import JsonlStore

        store = JsonlStore(Path(out_dir) / SIMULATIONS, key="feature",
                           meta={"seed": seed, "n_contexts": n_contexts,
                                 "simulator": simulator.describe()})
        ok = [r for r in rows if r["status"] == "ok"]
        summary["simulation_stats"] = simulate(
            [(int(r["feature"]), r["description"], unseen_contexts(r, contexts)) for r in ok],
            simulator, store, seed=seed, batch_size=batch_size).to_dict()
        corr = {int(r["feature"]): r["correlation"] for r in store.rows()}
        for f, v in scores.items():
            v["simulation"] = corr.get(f)
        sim = [c for c in corr.values() if c is not None]
        if sim:
            summary["simulation"] = mean_ci(sim, n_boot=n_boot, seed=seed)
    summary["n_scored"] = sum(v["auroc"] is not None for v in scores.values())
    summary["n_described"] = len(feats)
    atomic_write_json(Path(out_dir) / FAITHFULNESS, {
        "kind": "afscope_feature_faithfulness", "format_version": FORMAT_VERSION,
        "params": {"n_contexts": n_contexts, "seed": seed, "n_boot": n_boot},
        "summary": summary, "features": {str(f): v for f, v in sorted(scores.items())}})
    return summary


def step_score(X: Any, y: np.ndarray, texts: Sequence[str], ids: Sequence[str],
               backend: LLMBackend, out_dir: str | Path, params: ScoreParams, *, max_chars: int,
               seed: int = 0, batch_size: int = 8, peaks: TokenPeaks | None = None,
               columns: FeatureColumns | None = None) -> StepStats:
    store = score_store(out_dir, params, seed, max_chars)
    return score_descriptions(X, y, texts, ids, describe_store_rows(out_dir), backend, store, params,
                              max_chars=max_chars, seed=seed, batch_size=batch_size, peaks=peaks,
                              columns=columns)


def step_cluster(out_dir: str | Path, params: ClusterParams, *, embed: Embed | None = None,
                 backend: LLMBackend | None = None) -> list[Theme]:
    """Cluster the parsed descriptions and write ``themes.json``."""
    rows = [r for r in describe_store_rows(out_dir) if r["status"] == "ok"]
    themes = cluster_descriptions(
        [r["feature"] for r in rows], [r["description"] for r in rows],
        embed=embed if embed is not None else params.embedder,
        distance_threshold=params.distance_threshold, n_clusters=params.n_clusters,
        n_terms=params.n_terms, backend=backend if params.name_themes else None)
    atomic_write_json(Path(out_dir) / THEMES, {
        "kind": "afscope_feature_themes", "format_version": FORMAT_VERSION,
        "params": step_fields(params, ClusterParams), "themes": [t.to_dict() for t in themes]})
    return themes


# ---- results ------------------------------------------------------------------------------------

def collect_features(out_dir: str | Path, *, model: str | None = None, layer: int | None = None,
                     peaks: TokenPeaks | None = None,
                     decode: Callable[[int], str] | None = None) -> list[dict[str, Any]]:
    """Rows of ``results.json["features"]`` from the step files of ``out_dir`` (one per
    described feature, by feature id); written to ``features.json``."""
    out = Path(out_dir)
    stats = {int(r["feature"]): r for r in _read_json(out / CANDIDATES, "select")["features"]}

    def load(name: str) -> dict[int, dict[str, Any]]:
        from afscope.rows import JsonlStore

        p = out / name
        return {int(r["feature"]): r for r in JsonlStore(p, key="feature").rows()} if p.exists() else {}

    desc, cls, sc = load("descriptions.jsonl"), load("classifications.jsonl"), load("scores.jsonl")
    faith = _read_json(out / FAITHFULNESS, "describe")["features"] \
        if (out / FAITHFULNESS).exists() else {}
    theme_of: dict[int, str] = {}
    if (out / THEMES).exists():
        for t in _read_json(out / THEMES, "cluster")["themes"]:
            for f in t["features"]:
                theme_of[int(f)] = t["name"] or t["label"]
    rows = []
    for f in sorted(desc):
        d, c, s, st = desc[f], cls.get(f, {}), sc.get(f, {}), stats.get(f, {})
        ok_c = c.get("status") == "ok"
        examples = [{"id": e["id"], "label": e["label"], "category": e["category"],
                     "activation": e["activation"],
                     "tokens": peaks.window(f, e["row"], decode=decode) if peaks is not None else []}
                    for e in d.get("top", [])]
        rows.append({
            "model": model, "layer": layer, "feature": f,
            "selectivity": st.get("selectivity"), "auroc": st.get("auroc"),
            "description": d.get("description"),
            "relevance": c.get("relevance") if ok_c else None,
            "category": c.get("category") if ok_c else None,
            "detection_bal_acc": s.get("bal_acc") if s.get("status") == "ok" else None,
            "faithfulness": (faith.get(str(f)) or {}).get("auroc"),
            "describer": d.get("backend"),
            "theme": theme_of.get(f), "examples": examples})
    atomic_write_json(out / FEATURES, {"kind": "afscope_features", "format_version": FORMAT_VERSION,
                                       "features": rows})
    return rows


def run_autointerp(
    X: Any,
    y: np.ndarray,
    texts: Sequence[str],
    ids: Sequence[str],
    categories: Sequence[str],
    backend: LLMBackend,
    out_dir: str | Path,
    cfg: AutointerpConfig | None = None,
    token_topk: Any = None,
    *,
    model: str | None = None,
    layer: int | None = None,
    decode: Callable[[int], str] | None = None,
    embed: Embed | None = None,
    stats: dict[str, dict[str, Any]] | None = None,
    names: Any = None,
) -> list[dict[str, Any]]:
    """Select, describe, classify, score and cluster the features of ``X`` ``(n, d)`` (SAE
    activations per sample) with ``backend``; resumable in ``out_dir``.

    Returns the ``features`` rows of results.json; ``selected.json`` (features with relevance >=
    ``cfg.min_relevance``) is what ``probe`` reads. ``token_topk`` (``ActivationCache.token_topk``)
    centres excerpts on the max token and fills ``examples[].tokens`` (decoded with ``decode``).
    Per-step counts (done, skipped, parse_failures, backend_errors) go into ``stats`` if given.
    With ``token_topk`` and ``names`` (:class:`~afscope.features.tokens.TokenNames` of the cache
    model) each description's faithfulness is scored too (:func:`step_faithfulness`).
    """
    cfg = cfg or AutointerpConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    y = np.asarray(y)
    table = step_select(X, y, out, cfg)
    feats = table.feature.tolist()
    if not feats:
        logger.warning("autointerp: no feature passes selectivity >= %s with >= %d active "
                       "samples; nothing to describe", cfg.min_selectivity, cfg.min_active)
        if stats is not None:
            stats.update({"select": {"candidates": 0}})
        return collect_features(out, model=model, layer=layer)
    peaks = TokenPeaks(token_topk, feats) if token_topk is not None and feats else None
    cols = FeatureColumns(X)
    counts: dict[str, dict[str, Any]] = {"select": {"candidates": len(feats)}}
    counts["describe"] = step_describe(X, y, texts, ids, categories, backend, out, cfg,
                                       features=feats, seed=cfg.seed, batch_size=cfg.batch_size,
                                       peaks=peaks, columns=cols).to_dict()
    if token_topk is not None and names is not None:
        counts["faithfulness"] = step_faithfulness(
            out, token_topk, names, embed=embed, seed=cfg.seed, n_boot=cfg.n_boot,
            simulator=backend if cfg.simulate else None, batch_size=cfg.batch_size)
    counts["classify"] = step_classify(backend, out, cfg, batch_size=cfg.batch_size).to_dict()
    if cfg.score:
        counts["score"] = step_score(X, y, texts, ids, backend, out, cfg, max_chars=cfg.max_chars,
                                     seed=cfg.seed, batch_size=cfg.batch_size, peaks=peaks,
                                     columns=cols).to_dict()
    if cfg.cluster:
        themes = step_cluster(out, cfg, embed=embed, backend=backend)
        counts["cluster"] = {"themes": len(themes)}
    if stats is not None:
        stats.update(counts)
    return collect_features(out, model=model, layer=layer, peaks=peaks, decode=decode)
