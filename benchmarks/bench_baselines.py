"""Text-only baselines on a real dataset: out-of-fold AUROC (AF vs rest) and timings.

For each registered baseline (tfidf, keyword, embedding), stratified k-fold cross-validation on
``data/af_detection_benchmark_2330.json`` (default): the featurizer and the logistic regression
are fitted on the training folds only. Prints per-fold AUROC, mean +- std, the AUROC of the
pooled out-of-fold scores against each negative category (where the vocabulary confound shows),
fit and score seconds, and for reference the raw keyword count (no fitting at all).

Embedding the same text twice gives the same vector, so the embedding baseline reuses one
embedding per text across folds (memoized ``embed_texts``); the one-off embedding time of the
whole dataset is printed separately.

    python benchmarks/bench_baselines.py                     # all baselines, 5 folds
    python benchmarks/bench_baselines.py --baselines tfidf keyword --folds 3
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from afscope.data.keywords import keyword_scores
from afscope.data.load import load_dataset
from afscope.models import embedding as emb_mod
from afscope.probe.text import fit_baseline


def shared_data() -> Path:
    return Path(os.environ.get("AFSCOPE_SHARED", ROOT.parent / "shared")) / "data"


def memoize_embeddings(texts: list[str]) -> float:
    """Embed every text once; later ``embed_texts`` calls on these texts are table lookups."""
    t0 = time.perf_counter()
    table = emb_mod.embed_texts(texts)
    seconds = time.perf_counter() - t0
    row = {t: i for i, t in enumerate(texts)}
    original = emb_mod.embed_texts

    def cached(batch, **kwargs):
        if all(t in row for t in batch):
            return table[[row[t] for t in batch]]
        return original(batch, **kwargs)

    emb_mod.embed_texts = cached
    return seconds


def per_category(y: np.ndarray, scores: np.ndarray, cats: list[str]) -> dict[str, float]:
    cats_arr = np.array(cats)
    out = {}
    for c in sorted(set(cats_arr[y == 0])):
        keep = (y == 1) | (cats_arr == c)
        out[str(c)] = roc_auc_score(y[keep], scores[keep])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(shared_data() / "af_detection_benchmark_2330.json"))
    ap.add_argument("--baselines", nargs="+", default=["tfidf", "keyword", "embedding"])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    ds = load_dataset(args.data)
    texts, y, cats = ds.texts, ds.labels, ds.categories
    print(f"{ds.name}: n={len(ds)} pos={int(y.sum())} counts={ds.counts()}")
    print(f"threads={os.cpu_count()} load={os.getloadavg()}")
    raw = keyword_scores(texts)
    print(f"raw keyword count (no fit): AUROC={roc_auc_score(y, raw):.4f}  "
          f"per-category={ {k: round(v, 4) for k, v in per_category(y, raw, cats).items()} }")
    if "embedding" in args.baselines:
        print(f"embedding all {len(texts)} texts once: {memoize_embeddings(texts):.1f}s")

    folds = list(StratifiedKFold(args.folds, shuffle=True, random_state=args.seed).split(texts, y))
    for name in args.baselines:
        oof = np.zeros(len(texts))
        aucs, fit_s, score_s = [], 0.0, 0.0
        for tr, te in folds:
            t0 = time.perf_counter()
            est = fit_baseline(name, [texts[i] for i in tr], y[tr], seed=args.seed)
            t1 = time.perf_counter()
            oof[te] = est.predict_proba([texts[i] for i in te])[:, 1]
            t2 = time.perf_counter()
            fit_s, score_s = fit_s + t1 - t0, score_s + t2 - t1
            aucs.append(roc_auc_score(y[te], oof[te]))
        cat = {k: round(v, 4) for k, v in per_category(y, oof, cats).items()}
        print(f"{name:9s} AUROC {np.mean(aucs):.4f} +- {np.std(aucs):.4f}  folds="
              f"{[round(a, 4) for a in aucs]}  n_features={est.n_features_in_}  "
              f"fit {fit_s:.1f}s score {score_s:.1f}s  per-category={cat}")


if __name__ == "__main__":
    main()
