"""Benchmark ``afscope.probe.sweep`` against the naive dense pipeline of the seeds.

What is compared, and why
-------------------------
Seed 001's "Overfitting Check" swept the feature count of an L1 logistic probe on SAE max
activations (2,689 samples x 16,384 GemmaScope latents, a few % non-zero) with 5-fold CV. The
obvious code does, for every feature count and every fold: rank the features by selectivity on
the dense training array, keep the top n, ``StandardScaler`` (centered) +
``LogisticRegression(penalty="l1", solver="liblinear")`` on dense arrays, score the fold.
``afscope.probe.sweep`` does the same sweep with the same folds and counts, but keeps the matrix
sparse (scaling without centering, so liblinear sees only the ~5% stored values), and ranks the
features once per fold instead of once per (fold, count).

The data is synthetic, shaped like the seeds' (seeded): ``--n`` rows x ``--d`` features, each
value non-zero with probability ``--density`` and then exponential (non-negative, like SAE
activations); in ``--signal`` features the positives (40% of rows) fire more often and more
strongly, so the probe has something real but weak to find (CV AUROC ~0.65 with the top 10
features, ~0.92 with all of them).

Both phases run in a fresh spawned process each (timings and memory are their own). Both use
C=``--C``, tol 1e-4, max_iter 1000, the same liblinear solver, the same selectivity ranking
``|pos_mean - neg_mean| / (|pos_mean| + |neg_mean|)`` with ties to the lower index, and the
same ``StratifiedKFold(5, shuffle=True, random_state=seed)`` folds. The naive phase gets the
matrix already dense (as the seeds stored it; densifying is not timed). Both are single-process
(``n_jobs=1``) unless ``--n-jobs`` is given for afscope.

Printed: wall time and process CPU time of each phase; peak RSS above the phase's starting RSS
(a thread samples ``/proc/self/statm`` every 5 ms) and ``ru_maxrss``; the CV AUROC of each count
from both and their largest difference (they differ slightly because liblinear penalizes the
intercept, which absorbs the centering only in the naive pipeline); last the line
``ratio_vs_naive=<naive wall / afscope wall>``. Nothing here asserts a timing. Usage::

    python benchmarks/bench_probe.py            # 2,689 x 16,384, 10 counts x 5 folds
    python benchmarks/bench_probe.py --quick    # smoke check (small matrix)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: find _common
from _common import RssSampler, cpu_seconds, maxrss_bytes, mb

COUNTS = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, None]  # None = all features


# -- data -------------------------------------------------------------------------------------------
def make_data(n: int, d: int, density: float, signal: int, seed: int
              ) -> tuple[sp.csr_matrix, np.ndarray]:
    """Seeded non-negative sparse matrix ``(n, d)`` float32 with signal in ``signal`` features."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(np.int64)
    blocks = []
    for a in range(0, n, 256):  # row blocks keep the dense draw small
        m = min(256, n - a)
        fire = rng.random((m, d), dtype=np.float32) < density
        vals = rng.exponential(1.0, (m, d)).astype(np.float32)
        pos = y[a:a + m] == 1
        # signal features: positives fire about twice as often and 1.2x as strongly (CV
        # AUROC ~0.65 with 10 features, ~0.92 with all: a probe has to combine many of them)
        extra = rng.random((m, signal), dtype=np.float32) < density
        fire[:, :signal] |= extra & pos[:, None]
        vals[pos, :signal] *= 1.2
        blocks.append(sp.csr_matrix(np.where(fire, vals, 0.0).astype(np.float32)))
    X = sp.vstack(blocks).tocsr()
    perm = rng.permutation(d)  # scatter the signal features over the index range
    return X[:, perm].tocsr(), y


# -- phases -----------------------------------------------------------------------------------------
def _naive(X: np.ndarray, y: np.ndarray, folds: list, counts: list, C: float) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    aucs = np.empty((len(folds), len(counts)))
    for i, count in enumerate(counts):
        for f, (tr, va) in enumerate(folds):
            Xtr, ytr = X[tr], y[tr]
            pm = Xtr[ytr == 1].mean(axis=0, dtype=np.float64)
            nm = Xtr[ytr == 0].mean(axis=0, dtype=np.float64)
            den = np.abs(pm) + np.abs(nm)
            sel = np.abs(np.divide(pm - nm, den, out=np.zeros_like(pm), where=den > 0))
            top = np.sort(np.argsort(-sel, kind="stable")[:count or X.shape[1]])
            scaler = StandardScaler()
            A = scaler.fit_transform(Xtr[:, top])
            lr = LogisticRegression(penalty="l1", solver="liblinear", C=C, tol=1e-4,
                                    max_iter=1000, random_state=0)
            lr.fit(A, ytr)
            p = lr.predict_proba(scaler.transform(X[va][:, top]))[:, 1]
            aucs[f, i] = roc_auc_score(y[va], p)
    return aucs.mean(axis=0)


def _afscope(X: sp.csr_matrix, y: np.ndarray, counts: list, C: float, folds: int, seed: int,
             n_jobs: int) -> np.ndarray:
    from afscope.probe import ProbeConfig, sweep

    cfg = ProbeConfig(method="logistic_l1", C=C, select_by="selectivity", tol=1e-4,
                      max_iter=1000)
    points = sweep(X, y, cfg, n_features=counts, Cs=[C], folds=folds, seed=seed, n_jobs=n_jobs)
    return np.array([p["cv_auroc"] for p in points])


def run_phase(kind: str, path: str, opts: dict[str, Any]) -> dict[str, Any]:
    """Body of one phase process."""
    from afscope.probe import make_folds

    warnings.simplefilter("ignore")  # liblinear convergence chatter, the same for both
    z = np.load(path)
    X = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    y = z["y"]
    folds = make_folds(y, opts["folds"], opts["seed"])
    if kind == "naive":
        X = X.toarray()  # the seeds' arrays were dense; not timed
    cpu0, maxrss0 = cpu_seconds(), maxrss_bytes()
    with RssSampler() as rss:
        t0 = time.perf_counter()
        if kind == "naive":
            aucs = _naive(X, y, folds, opts["counts"], opts["C"])
        else:
            aucs = _afscope(X, y, opts["counts"], opts["C"], opts["folds"], opts["seed"],
                            opts["n_jobs"])
        wall = time.perf_counter() - t0
    return {"wall": wall, "cpu": cpu_seconds() - cpu0, "rss_delta": rss.peak - rss.baseline,
            "rss_baseline": rss.baseline, "maxrss_before": maxrss0, "maxrss_after": maxrss_bytes(),
            "aucs": aucs, "input_bytes": (X.nbytes if isinstance(X, np.ndarray) else
                                          X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)}


def fresh(kind: str, path: str, opts: dict[str, Any]) -> dict[str, Any]:
    with mp.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(run_phase, (kind, path, opts))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2689)
    ap.add_argument("--d", type=int, default=16384)
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--signal", type=int, default=300, help="features carrying signal")
    ap.add_argument("--C", type=float, default=0.1, help="L1 strength (seed 001's best)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-jobs", type=int, default=1, help="afscope sweep's joblib workers")
    ap.add_argument("--tolerance", type=float, default=0.01,
                    help="largest CV AUROC difference called agreement")
    ap.add_argument("--quick", action="store_true", help="smoke check: 600 x 2048")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.d, args.signal = 600, 2048, 60
    counts = [c for c in COUNTS if c is None or c < args.d]
    opts = {"counts": counts, "C": args.C, "folds": args.folds, "seed": args.seed,
            "n_jobs": args.n_jobs}

    t0 = time.perf_counter()
    X, y = make_data(args.n, args.d, args.density, args.signal, args.seed)
    gen_s = time.perf_counter() - t0
    print(f"bench_probe: {args.n} x {args.d} non-negative sparse matrix, {X.nnz / np.prod(X.shape):.1%}"
          f" non-zero, {int(y.sum())} positives, signal in {args.signal} features (seed "
          f"{args.seed}, generated in {gen_s:.1f} s)")
    print(f"  sweep: counts {[c or args.d for c in counts]} x {args.folds}-fold CV, L1 logistic "
          f"C={args.C} (liblinear, tol 1e-4), selectivity ranking; each phase in a fresh process")
    print(f"  cpu: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="afscope-bench-") as tmp:
        path = str(Path(tmp) / "x.npz")
        np.savez(path, data=X.data, indices=X.indices, indptr=X.indptr,
                 shape=np.array(X.shape), y=y)
        naive = fresh("naive", path, opts)
        ours = fresh("afscope", path, opts)
    for name, r in (("(a) naive dense pipeline", naive), ("(b) afscope.probe.sweep", ours)):
        print(f"\n{name}: wall {r['wall']:.2f} s, process CPU {r['cpu']:.2f} s "
              f"(cpu/wall {r['cpu'] / r['wall']:.2f})")
        print(f"  input matrix {mb(r['input_bytes'])}; peak RSS +{mb(r['rss_delta'])} above "
              f"{mb(r['rss_baseline'])} at the phase start; ru_maxrss "
              f"{mb(r['maxrss_before'])} -> {mb(r['maxrss_after'])}")
    diff = np.abs(naive["aucs"] - ours["aucs"])
    print("\nCV AUROC per feature count (naive / afscope):")
    for c, a, b in zip(counts, naive["aucs"], ours["aucs"]):
        print(f"  n_features {c or args.d:>6}: {a:.4f} / {b:.4f}  (diff {abs(a - b):.4f})")
    agree = bool(diff.max() <= args.tolerance)
    print(f"max |diff| {diff.max():.4f} -> agree within {args.tolerance}: {agree}")
    print(f"\nwall: (a) {naive['wall']:.2f} s, (b) {ours['wall']:.2f} s; process CPU: (a) "
          f"{naive['cpu']:.2f} s, (b) {ours['cpu']:.2f} s (ratio {naive['cpu'] / ours['cpu']:.2f}; "
          f"use it when cpu/wall shows the machine was shared)")
    print(f"ratio_vs_naive={naive['wall'] / ours['wall']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
