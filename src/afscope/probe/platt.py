"""Platt scaling: ``p = sigmoid(a * s + b)`` fitted to a 1-D score by Newton's method.

Used by the probes whose decision values are not log-odds (ridge, diffmean). Targets are Platt's
smoothed labels ``(n_pos + 1) / (n_pos + 2)`` and ``1 / (n_neg + 2)`` (Platt 1999; Lin, Lin & Weng
2007), which keep ``a`` finite when the training projections separate the classes perfectly, as
they often do with more features than samples.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit


def _loss(z: np.ndarray, t: np.ndarray) -> float:
    return float(np.sum(np.logaddexp(0.0, z) - t * z))


def fit_platt(scores: np.ndarray, y: np.ndarray, max_iter: int = 100) -> tuple[float, float]:
    """``(a, b)`` minimizing the cross-entropy of ``sigmoid(a * scores + b)`` on smoothed ``y``."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(y)
    n_pos = float(y.sum())
    n_neg = float(y.size - n_pos)
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    a, b = 0.0, float(np.log((n_pos + 1) / (n_neg + 1)))
    loss = _loss(a * s + b, t)
    for _ in range(max_iter):
        p = expit(a * s + b)
        g = np.array([np.dot(p - t, s), np.sum(p - t)])
        if np.max(np.abs(g)) < 1e-10 * max(1.0, s.size):
            break
        w = p * (1 - p)
        H = np.array([[np.dot(w, s * s), np.dot(w, s)], [np.dot(w, s), np.sum(w)]])
        H[np.diag_indices(2)] += 1e-12
        step = np.linalg.solve(H, g)
        lr = 1.0
        while lr > 1e-10:  # backtracking: accept the first step that lowers the loss
            na, nb = a - lr * step[0], b - lr * step[1]
            new = _loss(na * s + nb, t)
            if new < loss + 1e-4 * lr * float(np.dot(g, -step)) or new <= loss:
                break
            lr /= 2
        else:
            break
        if abs(loss - new) < 1e-12 * max(1.0, abs(loss)):
            a, b, loss = na, nb, new
            break
        a, b, loss = na, nb, new
    return float(a), float(b)
