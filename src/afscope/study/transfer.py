"""A transfer study: several labelled sources, leave-one-source-out training, the full matrix.

Seed 001's probe scored 0.986 on its own distribution and flatlined on every other; seed 002 asked
for stronger baselines and last-token ridge probes. This module turns that into a protocol:

1. **Sources** (:func:`prepare_sources`): each ``train`` / ``control`` source is split into a fit
   part and a held-out test part; ``eval`` sources are eval-only (leakage-guarded, never trained
   on) and evaluated whole. A training record that near-duplicates an eval record, or a record of
   an earlier training source, is dropped, so no cell of the matrix is inflated by copies.
2. **Rows** (:func:`training_sets`): every method is fitted on each two-class train/control source
   alone, on all train sources but one (leave-one-source-out, LOSO) and on all train sources.
3. **Cells**: every row is scored on the test part of every source: AUROC with a bootstrap 95% CI
   (:func:`afscope.probe.evaluate_scores`) where the set has both classes; detection rate at the
   row's threshold with its CI everywhere. The threshold is fixed on the training side only: the
   score at ``transfer.fpr`` (5%) false positives on the held-out negatives of the row's own
   training sources; its false positive rate elsewhere (hard negatives!) is reported per cell.
4. **Selection without peeking** (:func:`select_methods`): one recommended method per model,
   chosen by its mean LOSO AUROC over the train sources (never an eval source); for the LOSO
   columns themselves a nested choice that does not see the held-out source either. It is
   reported beside the best-in-hindsight method and the best text baseline of each column.

Methods (:func:`build_methods`): text baselines (refitted per row), residual probes per layer x
pool x probe config (``pools: [last]`` + a ridge probe is seed 002's last-token ridge), concatenated
layers and a per-layer ensemble, SAE probes with pooled, worst-source and intersection feature
selection, and token-level probes on the per-token SAE cache: pooled by max and top-k mean (every
token labelled as its text) and by learned attention (multiple-instance learning on text labels).

Writes ``transfer.json`` (layout in :mod:`afscope.report.transfer`) and the report page.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, logit

from afscope.data import Dataset, LeakageGuard, load_dataset, stratified_split
from afscope.data.dataset import concat
from afscope.errors import ConfigError, DataError
from afscope.fileio import atomic_write_json
from afscope.probe import ProbeConfig, evaluate_scores, fit_probe
from afscope.probe.attention import AttentionPoolConfig, AttentionPoolProbe
from afscope.probe.select import feature_auroc
from afscope.probe.text import fit_baseline
from afscope.runs import Run, start_run
from afscope.study.config import ModelSpec, SourceData, StudyConfig
from afscope.study.datasets import subsample

log = logging.getLogger(__name__)

TRANSFER_FILE = "transfer.json"
KIND = "afscope_transfer"
FORMAT_VERSION = 1

Scorer = Callable[[str], np.ndarray]
"""Test source name -> P(AF) of each record of its test part, ``(n,)``."""
Fitter = Callable[[tuple[str, ...]], Scorer]
"""Training sources -> a scorer fitted on their fit parts."""


# --------------------------------------------------------------------------------------------------
# sources


@dataclass
class TransferData:
    """The fit part (train/control sources) and the test part (all sources) of every source."""

    specs: dict[str, SourceData]
    fit: dict[str, Dataset]
    test: dict[str, Dataset]
    dropped: dict[str, int]
    files: dict[str, Path]  # "<source>.fit" / "<source>.test" -> JSONL written for extraction

    @property
    def train_sources(self) -> list[str]:
        return [n for n, s in self.specs.items() if s.role == "train"]

    def two_class(self, name: str) -> bool:
        """Whether the test part of ``name`` holds both classes (so it has an AUROC)."""
        return len({r.label for r in self.test[name].records}) == 2

    def info(self) -> list[dict[str, Any]]:
        rows = []
        for name, spec in self.specs.items():
            test = self.test[name]
            fit = self.fit.get(name)
            rows.append({"name": name, "role": spec.role,
                         "path": str(spec.data) if spec.data is not None else "synthetic",
                         "n_fit": len(fit) if fit is not None else 0, "n_test": len(test),
                         "n_pos_test": int(sum(r.label for r in test.records)),
                         "two_class": self.two_class(name), "counts": test.counts(),
                         "dropped": self.dropped.get(name, 0)})
        return rows


def _load_source(spec: SourceData) -> Dataset:
    if spec.synth is not None:
        from afscope.data.synth import generate_corpus

        if spec.synth.pairs_only:  # only AF traces and their hard-negative twins
            recs = generate_corpus(spec.synth.n, spec.synth.seed, minimal_pairs=1.0,
                                   mix={"alignment_faking": 0.5, "hard_negative": 0.5})
            recs = [r for r in recs if r.extra.get("pair_id")]
        else:
            recs = generate_corpus(spec.synth.n, spec.synth.seed)
        return Dataset.from_records(recs, spec.name, eval_only=spec.role == "eval")
    assert spec.data is not None
    return load_dataset(spec.data, label_map=spec.label_map, name=spec.name,
                        eval_only=spec.role == "eval")


def prepare_sources(cfg: StudyConfig, out: Path) -> TransferData:
    """Load, de-leak, subsample and split every source; write the parts to ``out/data``."""
    specs = {s.name: s for s in cfg.sources}
    raw = {n: _load_source(s) for n, s in specs.items()}
    for n, ds in raw.items():
        if len(ds) == 0:
            raise DataError(f"{specs[n].data or 'synth'}: source {n!r} is empty")
    evals = {n: subsample(raw[n], s.max_records, cfg.seed) for n, s in specs.items()
             if s.role == "eval"}
    guard = LeakageGuard(evals.values(), threshold=cfg.leakage_threshold) if evals else None
    seen = LeakageGuard(threshold=cfg.leakage_threshold)  # earlier training sources
    fit: dict[str, Dataset] = {}
    test: dict[str, Dataset] = {}
    dropped: dict[str, int] = {}
    for n, spec in specs.items():
        if spec.role == "eval":
            test[n] = evals[n]
            continue
        ds = raw[n]
        before = len(ds)
        if guard is not None:
            ds = guard.exclude(ds)
        if len(seen):
            ds = seen.exclude(ds)
        dropped[n] = before - len(ds)
        ds = subsample(ds, spec.max_records, cfg.seed)
        if len({r.label for r in ds.records}) < 2:
            raise DataError(f"{spec.data or 'synth'}: source {n!r} (role {spec.role}) needs both "
                            f"classes to be trained on; give it role: eval")
        parts = stratified_split(ds, {"fit": 1 - spec.test_fraction, "test": spec.test_fraction},
                                 seed=cfg.seed, stratify_by=spec.stratify_by,
                                 group_by=spec.group_by)
        fit[n], test[n] = parts["fit"], parts["test"]
        seen.register(dataclasses.replace(ds, eval_only=True))
    files = {}
    for kind, parts_ in (("fit", fit), ("test", test)):
        for n, ds in parts_.items():
            files[f"{n}.{kind}"] = ds.to_jsonl(out / "data" / f"{n}.{kind}.jsonl")
            log.info("%s.%s: %d records %s", n, kind, len(ds), ds.counts())
    return TransferData(specs, fit, test, dropped, files)


def training_sets(cfg: StudyConfig, data: TransferData) -> list[dict[str, Any]]:
    """The rows of the matrix: ``{"id", "kind", "sources", "held_out"}``, duplicates removed
    (with two train sources, leaving one out is training on the other alone)."""
    train = data.train_sources
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, ...], dict[str, Any]] = {}

    def add(kind: str, sources: Sequence[str], held_out: str | None = None) -> None:
        key = tuple(sorted(sources))
        if not key:
            return
        if key in seen:
            if held_out is not None:
                seen[key]["held_out"] = held_out
            return
        seen[key] = {"id": "+".join(key), "kind": kind, "sources": list(key),
                     "held_out": held_out}
        rows.append(seen[key])

    if "single" in cfg.transfer.rows:
        for n, s in data.specs.items():
            if s.role in ("train", "control"):
                add("single", [n])
    if "loso" in cfg.transfer.rows and len(train) > 1:
        for n in train:
            add("loso", [m for m in train if m != n], held_out=n)
    if "all" in cfg.transfer.rows:
        add("all", train)
    return rows


# --------------------------------------------------------------------------------------------------
# methods


@dataclass
class Method:
    """A detector the matrix evaluates: ``fit(training sources) -> scorer(test source)``."""

    id: str
    family: str  # baseline, activation, multilayer, sae, invariant, token
    features: str
    fit: Fitter
    model: str | None = None
    layer: int | None = None


def _stack(parts: list[Any]) -> Any:
    return sp.vstack(parts, format="csr") if sp.issparse(parts[0]) else np.vstack(parts)


class _Frame:
    """Labels, categories and texts per part (``"<source>.fit"`` / ``"<source>.test"``)."""

    def __init__(self, data: TransferData) -> None:
        self.data = data
        parts = {**{f"{n}.fit": d for n, d in data.fit.items()},
                 **{f"{n}.test": d for n, d in data.test.items()}}
        self.y = {k: np.array([r.label for r in d.records], np.int64) for k, d in parts.items()}
        self.cats = {k: [r.category for r in d.records] for k, d in parts.items()}
        self.texts = {k: [r.text for r in d.records] for k, d in parts.items()}

    def fit_y(self, sources: Sequence[str]) -> np.ndarray:
        return np.concatenate([self.y[f"{s}.fit"] for s in sources])


def _memo(fit: Fitter) -> Fitter:
    """A fitter that fits once per training set (several methods share one fit)."""
    cache: dict[tuple[str, ...], Scorer] = {}

    def wrapped(sources: tuple[str, ...]) -> Scorer:
        if sources not in cache:
            cache[sources] = fit(sources)
        return cache[sources]

    return wrapped


def matrix_fitter(fr: _Frame, X: dict[str, Any], pcfg: ProbeConfig,
                  columns: Callable[[tuple[str, ...]], np.ndarray | None] | None = None
                  ) -> Fitter:
    """A probe fitted on the stacked fit parts of ``X`` (restricted to ``columns(sources)``
    when given), scoring the test parts."""

    def fit(sources: tuple[str, ...]) -> Scorer:
        Xf = _stack([X[f"{s}.fit"] for s in sources])
        cols = columns(sources) if columns is not None else None
        if cols is not None:
            Xf = Xf[:, cols]
        probe = fit_probe(Xf, fr.fit_y(sources), pcfg)

        def score(test: str) -> np.ndarray:
            Xt = X[f"{test}.test"]
            return probe.proba1(Xt if cols is None else Xt[:, cols])

        return score

    return fit


def ensemble_fitter(fitters: list[Fitter]) -> Fitter:
    """Mean logit of several fitters' probabilities (a per-layer ensemble)."""

    def fit(sources: tuple[str, ...]) -> Scorer:
        scorers = [f(sources) for f in fitters]

        def score(test: str) -> np.ndarray:
            p = np.clip(np.stack([s(test) for s in scorers]), 1e-9, 1 - 1e-9)
            return expit(logit(p).mean(axis=0))

        return score

    return fit


def baseline_fitter(fr: _Frame, name: str, params: dict[str, Any], seed: int,
                    features: dict[str, np.ndarray] | None = None) -> Fitter:
    """A text baseline refitted per row. ``features`` (precomputed embeddings per part) makes the
    embedding baseline a logistic regression on cached vectors (same model, encoded once)."""

    def fit(sources: tuple[str, ...]) -> Scorer:
        y = fr.fit_y(sources)
        if features is not None:
            from sklearn.linear_model import LogisticRegression

            C = float(params.get("C", 1.0))
            clf = LogisticRegression(C=C, max_iter=1000, random_state=seed,
                                     class_weight=params.get("class_weight"))
            clf.fit(np.vstack([features[f"{s}.fit"] for s in sources]), y)
            return lambda test: clf.predict_proba(features[f"{test}.test"])[:, 1]
        texts = [t for s in sources for t in fr.texts[f"{s}.fit"]]
        est = fit_baseline(name, texts, y, seed=seed, **params)
        return lambda test: est.scores(fr.texts[f"{test}.test"])

    return fit


def source_effects(X: dict[str, Any], y: dict[str, np.ndarray], sources: Sequence[str]
                   ) -> np.ndarray:
    """``auroc - 0.5`` of every feature on the fit part of each source, ``(n_sources, d)``: the
    signed per-source effect every selection here ranks by (below 0: fires less on AF)."""
    return np.stack([feature_auroc(X[f"{s}.fit"], y[f"{s}.fit"]) - 0.5 for s in sources])


def top_by_effect(eff: np.ndarray, m: int) -> np.ndarray:
    """The ``m`` features of one source's effects ``eff (d,)`` with the largest ``|eff|``, best
    first, ties to the lower index."""
    return np.argsort(-np.abs(eff), kind="stable")[:m]


def invariant_select(eff: np.ndarray, n: int, how: str, *, fallback: bool = True) -> np.ndarray:
    """Sorted columns kept from the effects ``eff (n_sources, d)`` (:func:`source_effects`).

    ``worst``: rank features by their worst source, ``min_s sign * (auroc_s - 0.5)`` with the sign
    of the mean effect, and keep the top ``n``. ``intersection``: the features in the top ``2n``
    by ``|auroc_s - 0.5|`` of every source with the same sign in all of them (at most ``n``, by
    worst-source score); when none is, the best worst-source feature (unless ``fallback`` is
    False: then none). With one source both reduce to the usual top-``n`` ranking.
    """
    sign = np.sign(eff.mean(axis=0))
    worst = (eff * sign).min(axis=0)
    order = np.lexsort((np.arange(worst.size), -worst))
    if how == "intersection" and len(eff) > 1:
        m = min(2 * n, eff.shape[1])
        keep = set.intersection(*(set(top_by_effect(e, m).tolist()) for e in eff))
        same = (np.sign(eff) == sign).all(axis=0) & (sign != 0)  # a dead latent has no sign
        both = np.array([j for j in order if j in keep and same[j]], np.int64)
        order = order[:1] if both.size == 0 and fallback else both
    return np.sort(order[:n]).astype(np.int64)


def invariant_columns(X: dict[str, Any], fr: _Frame, n: int, how: str
                      ) -> Callable[[tuple[str, ...]], np.ndarray]:
    """Feature selection from the training sources only, per row: :func:`invariant_select` of
    the row's :func:`source_effects`."""

    def cols(sources: tuple[str, ...]) -> np.ndarray:
        return invariant_select(source_effects(X, fr.y, sources), n, how)

    return cols


def token_fitter(fr: _Frame, tokens: dict[str, tuple[sp.csr_matrix, np.ndarray]],
                 pcfg: ProbeConfig, max_tokens: int, seed: int) -> Fitter:
    """A probe on single tokens' SAE latents (every token carries its text's label); the
    scorer returns per-token probabilities, pooled by :func:`pool_tokens`."""

    def fit(sources: tuple[str, ...]) -> Scorer:
        Xs, ys = [], []
        for s in sources:
            T, rows = tokens[f"{s}.fit"]
            Xs.append(T)
            ys.append(fr.y[f"{s}.fit"][rows])
        X, y = _stack(Xs), np.concatenate(ys)
        if y.size > max_tokens:  # seeded subsample, both classes kept in proportion
            keep = np.sort(np.random.default_rng(seed).choice(y.size, max_tokens, replace=False))
            X, y = X[keep], y[keep]
        probe = fit_probe(X, y, pcfg)
        return lambda test: probe.proba1(tokens[f"{test}.test"][0])

    return fit


def pool_tokens(p: np.ndarray, rows: np.ndarray, n: int, how: str, k: int) -> np.ndarray:
    """Per-record ``max`` or top-``k`` mean of token scores ``p (m,)`` of records ``rows (m,)``
    (ascending); a record without tokens scores 0."""
    out = np.zeros(n)
    if p.size == 0:
        return out
    bounds = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    for a, b in zip(bounds, np.r_[bounds[1:], rows.size]):
        seg = p[a:b]
        out[rows[a]] = seg.max() if how == "max" else np.sort(seg)[-k:].mean()
    return out


def attention_fitter(fr: _Frame, tokens: dict[str, tuple[sp.csr_matrix, np.ndarray]],
                     acfg: AttentionPoolConfig, max_tokens: int, seed: int) -> Fitter:
    """Learned attention pooling (:class:`~afscope.probe.attention.AttentionPoolProbe`) on the
    texts' labels only (no token is labelled); beyond ``max_tokens`` tokens, whole texts are
    sampled (seeded) until the next one would pass the cap."""

    def fit(sources: tuple[str, ...]) -> Scorer:
        Xs, rows, ys, off = [], [], [], 0
        for s in sources:
            T, r = tokens[f"{s}.fit"]
            Xs.append(T)
            rows.append(r + off)
            ys.append(fr.y[f"{s}.fit"])
            off += ys[-1].size
        X, r, y = _stack(Xs), np.concatenate(rows), np.concatenate(ys)
        if r.size > max_tokens:
            counts = np.bincount(r, minlength=y.size)
            order = np.random.default_rng(seed).permutation(y.size)
            keep = np.sort(order[np.cumsum(counts[order]) <= max_tokens])
            new = np.full(y.size, -1, np.int64)
            new[keep] = np.arange(keep.size)
            tok = new[r] >= 0
            X, r, y = X[tok], new[r[tok]], y[keep]  # rows stay ascending: keep is sorted
        t0 = time.perf_counter()
        probe = AttentionPoolProbe(**acfg.model_dump()).fit(X, r, y)
        log.info("attention pooling on %s: %d texts, %d tokens, fitted in %.1f s",
                 "+".join(sources), y.size, r.size, time.perf_counter() - t0)
        return lambda test: probe.proba1(*tokens[f"{test}.test"], fr.y[f"{test}.test"].size)

    return fit


def _token_matrix(cache: Any, layer: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """``(tokens x d_sae CSR of the top-k latents, record row of each token)``."""
    tk = cache.token_topk(layer)
    m, k = tk.indices.shape
    X = sp.csr_matrix((tk.values.ravel().astype(np.float32), tk.indices.ravel(),
                       np.arange(0, m * k + 1, k)), shape=(m, cache.sae_width(layer)))
    X.sum_duplicates()
    order = np.argsort(tk.row, kind="stable")
    return X[order], tk.row[order].astype(np.int64)


# --------------------------------------------------------------------------------------------------
# evaluation


def threshold_at_fpr(neg_scores: np.ndarray, fpr: float) -> float:
    """The lowest threshold flagging at most ``fpr`` of ``neg_scores`` (``s >= t`` flags)."""
    s = np.sort(np.asarray(neg_scores, np.float64))[::-1]
    if s.size == 0:
        return 0.5
    allowed = int(np.floor(fpr * s.size + 1e-9))
    if allowed >= s.size:
        return float(s[-1])
    return float(np.nextafter(s[allowed], np.inf))


def is_hard_negative(category: str) -> bool:
    return "hard_negative" in category


def evaluate_cells(method: Method, rows: list[dict[str, Any]], fr: _Frame, fpr: float,
                   n_boot: int, seed: int) -> list[dict[str, Any]]:
    """Fit ``method`` on every row and score every source's test part."""
    data = fr.data
    cells = []
    for row in rows:
        sources = tuple(row["sources"])
        scorer = method.fit(sources)
        scores = {t: np.asarray(scorer(t), np.float64) for t in data.test}
        negs = np.concatenate([scores[s][fr.y[f"{s}.test"] == 0] for s in sources])
        thr = threshold_at_fpr(negs, fpr)
        thr_fpr = float(np.mean(negs >= thr)) if negs.size else None  # realized, <= fpr
        for t, s in scores.items():
            key = f"{t}.test"
            # no per-category AUROC bootstrap here (it would triple the cost of the matrix):
            # hard negatives get their flag rate at the row's threshold
            ev = evaluate_scores(fr.y[key], s, None, threshold=thr, n_boot=n_boot, seed=seed)
            m = ev["metrics"]
            cats = np.asarray(fr.cats[key])
            hard = {str(c): float(np.mean(s[cats == c] >= thr))
                    for c in sorted(set(fr.cats[key])) if is_hard_negative(c)}
            cells.append({"method": method.id, "row": row["id"], "test": t,
                          "in_row": t in sources, "n": ev["n"], "n_pos": ev["n_pos"],
                          "threshold": thr, "threshold_fpr": thr_fpr, "auroc": m["auroc"],
                          "detection_rate": m["detection_rate"],
                          "false_positive_rate": m["false_positive_rate"],
                          "tpr_at_5fpr": m["tpr_at_5fpr"], "hard_negative": hard})
    return cells


# --------------------------------------------------------------------------------------------------
# selection


def _auroc(cells: dict[tuple[str, str, str], dict[str, Any]], m: str, row: str,
           test: str) -> float | None:
    c = cells.get((m, row, test))
    return c["auroc"]["value"] if c and c["auroc"] else None


def select_methods(cells: list[dict[str, Any]], methods: list[Method],
                   rows: list[dict[str, Any]], data: TransferData) -> dict[str, Any]:
    """One recommended method per model (and the recommended baseline), chosen from the train
    sources only, and how it fares on every column against the best text baseline.

    Score: mean over two-class train sources ``S`` of the AUROC of the row trained on all other
    train sources, on ``S``. With a single train source there is no LOSO: the score falls back
    to the in-distribution held-out AUROC (said in ``criterion``). Ties go to the higher lowest
    LOSO AUROC, then to the method id.
    """
    idx = {(c["method"], c["row"], c["test"]): c for c in cells}
    row_of = {tuple(r["sources"]): r["id"] for r in rows}
    train = data.train_sources
    held = [s for s in train if data.two_class(s)
            and tuple(sorted(m for m in train if m != s)) in row_of]
    all_row = row_of.get(tuple(sorted(train)))

    def loso_score(m: str, among: list[str], without: tuple[str, ...] = ()) -> float | None:
        vals = []
        for s in among:
            srcs = tuple(sorted(x for x in train if x != s and x not in without))
            v = _auroc(idx, m, row_of[srcs], s) if srcs in row_of else None
            if v is None:
                return None
            vals.append(v)
        return (float(np.mean(vals)) + 1e-6 * min(vals)) if vals else None

    def id_score(m: str) -> float | None:
        vals = [_auroc(idx, m, all_row, s) for s in train if data.two_class(s)] if all_row else []
        vals = [v for v in vals if v is not None]
        return float(np.mean(vals)) if vals else None

    criterion = "mean leave-one-source-out AUROC over train sources" if held else \
        "mean in-distribution held-out AUROC (one train source: no leave-one-out possible)"

    def score(m: str) -> float | None:
        return loso_score(m, held) if held else id_score(m)

    groups: dict[str, list[Method]] = {}
    for m in methods:
        groups.setdefault("text baselines" if m.family == "baseline" else str(m.model),
                          []).append(m)
    scores = {m.id: score(m.id) for m in methods}

    def pick(cands: list[Method], fn: Callable[[str], float | None]) -> str | None:
        ranked = [(v, m.id) for m in cands if (v := fn(m.id)) is not None]
        return max(ranked, key=lambda t: (t[0], t[1]))[1] if ranked else None

    recommended = {g: pick(ms, score) for g, ms in groups.items()}
    baselines = groups.get("text baselines", [])
    comparisons = []
    for t in data.test:
        spec = data.specs[t]
        if spec.role == "control":
            continue
        if spec.role == "train":
            if t not in held:
                continue
            row = row_of[tuple(sorted(x for x in train if x != t))]
            others = [s for s in held if s != t]
            # nested: choose without the held-out source (rows that leave out both t and s)
            rec = {g: pick(ms, lambda mid, o=others: loso_score(mid, o, without=(t,)))
                   for g, ms in groups.items() if g != "text baselines"}
            how = "nested leave-one-source-out (this source unseen)"
        else:
            if all_row is None:
                continue
            row = all_row
            rec = {g: r for g, r in recommended.items() if g != "text baselines"}
            how = "leave-one-source-out over train sources"
        metric = "auroc" if data.two_class(t) else "detection_rate"
        entry: dict[str, Any] = {"test": t, "row": row, "metric": metric, "selection": how,
                                 "recommended": {}, "best_baseline": None, "best_method": None}

        def cell_value(mid: str) -> dict[str, Any] | None:
            c = idx.get((mid, row, t))
            return None if c is None or c[metric] is None else \
                {"method": mid, "ci": c[metric], "fpr": c["false_positive_rate"],
                 "threshold_fpr": c.get("threshold_fpr")}

        def best_of(cands: list[Method]) -> dict[str, Any] | None:
            vals = [v for m in cands if (v := cell_value(m.id)) is not None]
            return max(vals, key=lambda v: (v["ci"]["value"], v["method"])) if vals else None

        entry["best_baseline"] = best_of(baselines)
        entry["best_method"] = best_of([m for m in methods if m.family != "baseline"])
        for g, mid in rec.items():
            v = cell_value(mid) if mid else None
            if v is not None:
                v["verdict"] = verdict(v["ci"], entry["best_baseline"]["ci"]
                                       if entry["best_baseline"] else None)
            entry["recommended"][g] = v
        comparisons.append(entry)
    return {"criterion": criterion, "held_out": held, "scores": scores,
            "recommended": recommended, "comparisons": comparisons}


def verdict(ci: dict[str, float], base: dict[str, float] | None) -> str:
    """How a CI compares with the baseline's point estimate: ``beats`` (whole CI above it),
    ``loses`` (whole CI below it), else ``above`` / ``below (CI overlaps)`` by the point
    estimate. The issue's target is ``beats`` on every held-out set."""
    if base is None:
        return "no baseline"
    if ci["lo"] > base["value"]:
        return "beats"
    if ci["value"] < base["value"]:
        return "loses" if ci["hi"] < base["value"] else "below (CI overlaps)"
    return "above (CI overlaps)"


# --------------------------------------------------------------------------------------------------
# the run


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text).strip("_")


def _baselines(cfg: StudyConfig, fr: _Frame, run: Run) -> list[Method]:
    methods = []
    for spec in cfg.baseline_specs():
        feats = None
        if spec.name == "embedding":
            from afscope.models.embedding import embed_texts
            from afscope.probe.text import resolve_embedder

            params = {k: v for k, v in spec.params.items()
                      if k in ("batch_size", "max_length")}
            model = resolve_embedder(str(spec.params.get("embedder", "all-MiniLM-L6-v2")))
            with run.timer(f"embed_{spec.id}"):
                feats = {k: embed_texts(t, model=model, **params).astype(np.float64)
                         for k, t in fr.texts.items()}
        methods.append(Method(f"baseline/{spec.id}", "baseline", spec.id,
                              baseline_fitter(fr, spec.name, spec.params, cfg.seed, feats)))
    return methods


def _caches(cfg: StudyConfig, data: TransferData, spec: ModelSpec, lm: Any, layers: list[int],
            encoders: list[Any], out: Path, run: Run) -> dict[str, Any]:
    from afscope.extract import ExtractConfig, extract

    ex = cfg.extract
    caches = {}
    parts = {**{f"{n}.fit": d for n, d in data.fit.items()},
             **{f"{n}.test": d for n, d in data.test.items()}}
    for key, ds in parts.items():
        ecfg = ExtractConfig(
            model=spec.name, data=data.files[key], out=out / "cache" / _slug(spec.name) / key,
            layers=list(layers), pool=list(spec.pools), mask=ex.mask, skip_first=ex.skip_first,
            max_length=ex.max_length, batch_tokens=ex.batch_tokens, dtype=ex.dtype,
            device=ex.device, token_topk=spec.sae.token_topk if spec.sae else 0, seed=cfg.seed)
        with run.timer(f"extract_{spec.name}_{key}"):
            cache = extract(ecfg, lm=lm, dataset=ds, encoders=encoders)
        assert cache is not None  # unsharded runs always complete
        caches[key] = cache
    return caches


def _model_methods(cfg: StudyConfig, data: TransferData, fr: _Frame, spec: ModelSpec,
                   out: Path, run: Run, results: dict[str, Any]) -> list[Method]:
    from afscope.models import load_model, resolve_layers
    from afscope.study.pipeline import probe_label, sae_layers, train_saes

    ex = cfg.extract
    with run.timer(f"load_{spec.name}"):
        lm = load_model(spec.name, dtype=ex.dtype, device=ex.device)
    run.add_model(spec.name, lm.info.to_dict())
    layers = resolve_layers(spec.layers, lm.info.n_layers)
    encoders = []
    if spec.sae is not None:
        # unsupervised, on the fit parts of the train sources (no labels, no eval source)
        pooled = concat([data.fit[n] for n in data.train_sources], name="sae_train")
        encoders = train_saes(cfg, out, run, results["sae"], spec, lm,
                              sae_layers(spec, layers, lm.info.n_layers), pooled)
    caches = _caches(cfg, data, spec, lm, layers, encoders, out, run)
    if spec.sae is not None and cfg.transfer.feature_sets:
        from afscope.study.feature_sets import model_feature_sets

        with run.timer(f"feature_sets_{spec.name}"):
            results.setdefault("feature_sets", []).extend(
                model_feature_sets(cfg, data, spec, caches, lm.tokenizer, out))
    del lm
    gc.collect()
    methods: list[Method] = []
    name = spec.name
    for pool in spec.pools:
        per_layer: dict[int, dict[str, np.ndarray]] = {}
        for layer in layers:
            X = {k: c.get(layer, pool) for k, c in caches.items()}
            per_layer[layer] = X
            for pcfg in cfg.probes:
                pcfg = pcfg.model_copy(update={"seed": cfg.seed})
                methods.append(Method(f"{name}/L{layer}/resid.{pool}/{probe_label(pcfg)}",
                                      "activation", f"resid.{pool}",
                                      _memo(matrix_fitter(fr, X, pcfg)), name, layer))
        if cfg.transfer.multilayer and len(layers) > 1:
            pcfg = ProbeConfig(method="logistic_l2", C=1.0, seed=cfg.seed)
            Xc = {k: np.hstack([per_layer[la][k] for la in layers]) for k in caches}
            tag = "+".join(f"L{la}" for la in layers)
            methods.append(Method(f"{name}/{tag}/resid.{pool}/concat {probe_label(pcfg)}",
                                  "multilayer", f"resid.{pool} concat",
                                  _memo(matrix_fitter(fr, Xc, pcfg)), name))
            methods.append(Method(
                f"{name}/{tag}/resid.{pool}/ensemble {probe_label(pcfg)}", "multilayer",
                f"resid.{pool} per-layer ensemble",
                _memo(ensemble_fitter([matrix_fitter(fr, per_layer[la], pcfg)
                                       for la in layers])), name))
    if spec.sae is None:
        return methods
    sae_at = [la for la in layers if la in caches[next(iter(caches))].sae_layers]
    for layer in sae_at:
        for stat in spec.sae.stats:
            X = {k: c.sae_features(layer, stat) for k, c in caches.items()}
            for pcfg in cfg.sae_probes:
                pcfg = pcfg.model_copy(update={"seed": cfg.seed})
                methods.append(Method(f"{name}/L{layer}/sae.{stat}/{probe_label(pcfg)}", "sae",
                                      f"sae.{stat}", _memo(matrix_fitter(fr, X, pcfg)), name,
                                      layer))
            n_inv = cfg.transfer.invariant_features
            if n_inv and cfg.sae_probes:
                base = cfg.sae_probes[0].model_copy(update={"seed": cfg.seed,
                                                            "n_features": None})
                pooled = base.model_copy(update={"n_features": n_inv})
                methods.append(Method(f"{name}/L{layer}/sae.{stat}/{probe_label(pooled)} pooled",
                                      "invariant", f"sae.{stat} top{n_inv} pooled ranking",
                                      _memo(matrix_fitter(fr, X, pooled)), name, layer))
                for how in ("worst", "intersection"):
                    methods.append(Method(
                        f"{name}/L{layer}/sae.{stat}/{probe_label(base)} top{n_inv} {how}",
                        "invariant", f"sae.{stat} top{n_inv} {how}-source",
                        _memo(matrix_fitter(fr, X, base, invariant_columns(X, fr, n_inv, how))),
                        name, layer))
        if cfg.transfer.token_probes and spec.sae.token_topk:
            tokens = {k: _token_matrix(c, layer) for k, c in caches.items()}
            pcfg = ProbeConfig(method="logistic_l2", C=0.1, normalize="log1p", seed=cfg.seed)
            tfit = _memo(token_fitter(fr, tokens, pcfg, cfg.transfer.max_tokens, cfg.seed))
            for how in [p for p in ("max", "topk") if p in cfg.transfer.token_pools]:
                def fit(sources: tuple[str, ...], how: str = how) -> Scorer:
                    token_scores = tfit(sources)
                    k = cfg.transfer.token_topk
                    return lambda t: pool_tokens(token_scores(t), tokens[f"{t}.test"][1],
                                                 len(data.test[t]), how, k)

                label = "max" if how == "max" else f"top{cfg.transfer.token_topk}-mean"
                methods.append(Method(f"{name}/L{layer}/sae.tokens/{probe_label(pcfg)} {label}",
                                      "token", f"per-token SAE latents, {label} pooled",
                                      _memo(fit), name, layer))
            if "attention" in cfg.transfer.token_pools:
                acfg = cfg.transfer.attention.model_copy(update={"seed": cfg.seed})
                methods.append(Method(
                    f"{name}/L{layer}/sae.tokens/attention", "token",
                    "per-token SAE latents, learned attention pooling (text labels only)",
                    _memo(attention_fitter(fr, tokens, acfg, cfg.transfer.attention_max_tokens,
                                         cfg.seed)),
                    name, layer))
    return methods


def _verdicts(sel: dict[str, Any], data: TransferData) -> list[str]:
    out = [f"Recommended methods are chosen by {sel['criterion']} — never by an eval set."]
    for comp in sel["comparisons"]:
        base = comp["best_baseline"]
        for g, rec in comp["recommended"].items():
            if rec is None or base is None:
                continue
            v, b = rec["ci"], base["ci"]
            text = (f"{comp['test']} ({comp['metric']}): recommended {rec['method']} "
                    f"{v['value']:.3f} [{v['lo']:.3f}, {v['hi']:.3f}] vs best text baseline "
                    f"{base['method']} {b['value']:.3f} [{b['lo']:.3f}, {b['hi']:.3f}]: "
                    f"{rec['verdict']}.")
            if rec["verdict"] != "beats":
                text += " The recommended method does NOT beat the text baseline here."
            out.append(text)
    return out


def run_transfer(cfg: StudyConfig) -> Path:
    """Run a transfer study into ``cfg.out``; returns the run directory."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    with start_run("study", cfg.to_dict(), out) as run:
        with run.timer("data"):
            data = prepare_sources(cfg, out)
        for name in data.specs:
            run.add_dataset(name, data.test[name].info())
        rows = training_sets(cfg, data)
        if not rows:
            raise ConfigError("field 'transfer.rows': no training set results; list single, "
                              "loso or all")
        fr = _Frame(data)
        results: dict[str, Any] = {"sae": []}
        methods = _baselines(cfg, fr, run)
        for spec in cfg.models:
            methods += _model_methods(cfg, data, fr, spec, out, run, results)
        cells = []
        for m in methods:
            with run.timer(f"matrix_{m.id}"):
                cells += evaluate_cells(m, rows, fr, cfg.transfer.fpr, cfg.n_boot, cfg.seed)
        sel = select_methods(cells, methods, rows, data)
        doc = {"kind": KIND, "format_version": FORMAT_VERSION, "title": cfg.title,
               "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "fpr": cfg.transfer.fpr, "n_boot": cfg.n_boot, "sources": data.info(),
               "rows": rows,
               "methods": [{"id": m.id, "family": m.family, "model": m.model,
                            "layer": m.layer, "features": m.features} for m in methods],
               "cells": cells, "selection": sel, "sae": results["sae"],
               "verdicts": _verdicts(sel, data)}
        atomic_write_json(out / TRANSFER_FILE, doc)
        run.add_output("transfer", str(out / TRANSFER_FILE))
        run.add_output("recommended", sel["recommended"])
        if results.get("feature_sets"):
            from afscope.study.feature_sets import write_feature_sets

            path = write_feature_sets(out, cfg, data, results["feature_sets"])
            run.add_output("feature_sets", str(path))
        if cfg.report:
            from afscope.report import write_report

            with run.timer("report"):
                path = write_report(out)
            run.add_output("report", str(path))
    return out
