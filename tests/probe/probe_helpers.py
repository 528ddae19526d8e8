"""Shared builders of the probe tests (imported as ``probe_helpers``; pytest puts tests/probe on
sys.path)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def sparse_data(n: int = 160, d: int = 60, density: float = 0.15, signal: int = 6,
                seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
    """Non-negative sparse ``(n, d)`` float32 (like SAE activations) with signal in the first
    ``signal`` features; ~40% positives."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(np.int64)
    fire = rng.random((n, d)) < density
    fire[:, :signal] |= (rng.random((n, signal)) < 0.5) & (y[:, None] == 1)
    vals = np.round(rng.exponential(1.0, (n, d)), 2) + 0.01
    return sp.csr_matrix(np.where(fire, vals, 0.0).astype(np.float32)), y


def dense_data(n: int = 120, d: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Signed dense ``(n, d)`` float32 (like pooled residual activations) with signal in col 0."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(np.int64)
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[:, 0] += 1.5 * y
    return X, y
