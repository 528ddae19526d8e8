"""Bytes on disk: the sparse per-sample SAE store of ``afscope extract --sae`` vs dense ``.npy``.

The seeds kept, per dataset and layer, three dense ``(n_samples, 16384)`` arrays: the max of every
latent over the sample's tokens, its mean, and the token index of the max (``*_activations.npy``,
``*_mean_activations.npy``, ``*_top_token_indices.npy``). A latent that never fires on a sample
still costs 12 bytes there. ``afscope`` stores the same three statistics as CSR inside the cache's
safetensors chunks (``extract/latents.py``): per non-zero latent an int32 id, float32 max, float32
mean and int32 position (16 bytes), plus one int64 row pointer per sample.

This script builds a seeded synthetic latent matrix shaped like the seeds' (default 2,689 x 16,384
at 5% density; non-negative, heavy-tailed like SAE activations), writes it both ways with the real
writers (``afscope.extract.store.save_chunk`` in chunks of 256 rows; ``numpy.save``), reads the
sparse store back through the same code path ``ActivationCache`` uses and checks it equals the dense
arrays exactly, and prints sizes, write/read times and peak RSS. The last line is
``compression=<dense bytes / sparse bytes>``.

    python benchmarks/bench_sae_store.py                 # 2689 x 16384 at 5%
    python benchmarks/bench_sae_store.py --density 0.01  # sparser (L40-like: ~850 of 16k active)
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from safetensors import safe_open
from scipy import sparse

from afscope.extract import store
from afscope.extract.latents import SampleLatents, pack_csr


def synthetic(n: int, d: int, density: float, seed: int) -> tuple[sparse.csr_matrix, ...]:
    rng = np.random.default_rng(seed)
    mx = sparse.random(n, d, density=density, format="csr", dtype=np.float32, random_state=rng,
                       data_rvs=lambda k: rng.lognormal(0.0, 1.5, k).astype(np.float32))
    mx.sort_indices()
    mean = mx.copy()
    mean.data = (mx.data * rng.uniform(0.05, 1.0, mx.nnz)).astype(np.float32)
    arg = mx.copy()
    arg.data = rng.integers(1, 1024, mx.nnz).astype(np.float32)
    return mx, mean, arg


def write_sparse(path: Path, mx, mean, arg, chunk: int) -> None:
    for k, lo in enumerate(range(0, mx.shape[0], chunk)):
        rows = []
        for i in range(lo, min(lo + chunk, mx.shape[0])):
            s = slice(mx.indptr[i], mx.indptr[i + 1])
            rows.append(SampleLatents(indices=mx.indices[s].astype(np.int32), max=mx.data[s],
                                      mean=mean.data[s], argmax=arg.data[s].astype(np.int32)))
        tensors = {store.sae_key(0, name): a for name, a in pack_csr(rows).items()}
        store.save_chunk(path, k, tensors, "bench")


def read_sparse(path: Path, d: int, name: str) -> sparse.csr_matrix:
    blocks = []
    for f in sorted((path / store.CHUNK_DIR).glob("chunk-*.safetensors")):
        with safe_open(str(f), framework="np") as fh:
            indptr = fh.get_tensor(store.sae_key(0, "indptr"))
            blocks.append(sparse.csr_matrix((fh.get_tensor(store.sae_key(0, name)),
                                             fh.get_tensor(store.sae_key(0, "indices")), indptr),
                                            shape=(len(indptr) - 1, d)))
    return sparse.vstack(blocks, format="csr")


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2689)
    ap.add_argument("--d", type=int, default=16384)
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--chunk-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    mx, mean, arg = synthetic(args.n, args.d, args.density, args.seed)
    print(f"latents: {args.n} x {args.d}, nnz {mx.nnz} ({mx.nnz / (args.n * args.d):.2%})")
    with tempfile.TemporaryDirectory() as tmp:
        sp, dn = Path(tmp) / "sparse", Path(tmp) / "dense"
        dn.mkdir()
        t0 = time.perf_counter()
        write_sparse(sp, mx, mean, arg, args.chunk_size)
        t_sparse = time.perf_counter() - t0
        t0 = time.perf_counter()
        for name, m, dtype in (("activations", mx, np.float32), ("mean_activations", mean,
                                                                 np.float32),
                               ("top_token_indices", arg, np.int32)):
            np.save(dn / f"{name}.npy", m.toarray().astype(dtype), allow_pickle=False)
        t_dense = time.perf_counter() - t0
        t0 = time.perf_counter()
        back = {name: read_sparse(sp, args.d, name) for name in ("max", "mean", "argmax")}
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        dense_back = np.load(dn / "activations.npy", allow_pickle=False)
        t_read_dense = time.perf_counter() - t0
        assert (back["max"] != mx).nnz == 0 and (back["mean"] != mean).nnz == 0
        assert np.array_equal(back["argmax"].toarray(), arg.toarray())
        assert np.array_equal(dense_back, mx.toarray())
        b_sparse, b_dense = tree_bytes(sp), tree_bytes(dn)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"sparse store : {b_sparse / 2**20:8.1f} MiB  write {t_sparse:6.2f} s  "
          f"read max+mean+argmax {t_read:5.2f} s")
    print(f"dense .npy x3: {b_dense / 2**20:8.1f} MiB  write {t_dense:6.2f} s  "
          f"read max only {t_read_dense:5.2f} s")
    print("round trip: sparse store == dense arrays (exact)")
    print(f"peak RSS of this process: {peak:.0f} MiB (includes the dense arrays built for "
          f"the comparison)")
    print(f"compression={b_dense / b_sparse:.2f}")


if __name__ == "__main__":
    main()
