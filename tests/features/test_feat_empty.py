"""No feature passes selection: autointerp ends cleanly with nothing described (no LLM call)."""

import numpy as np
import scipy.sparse as sp

from afscope.features import AutointerpConfig, run_autointerp


class _NoCalls:
    def complete(self, *a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("the backend must not be called")


def test_zero_candidates_returns_no_rows(tmp_path):
    rng = np.random.default_rng(0)
    X = sp.csr_matrix(rng.random((20, 8)).astype(np.float32))  # dense-ish: selectivity ~ 0
    y = np.array([0, 1] * 10)
    stats: dict = {}
    rows = run_autointerp(X, y, ["t"] * 20, [str(i) for i in range(20)], ["c"] * 20, _NoCalls(),
                          tmp_path, AutointerpConfig(min_selectivity=0.9), stats=stats)
    assert rows == [] and stats["select"]["candidates"] == 0
    assert (tmp_path / "features.json").is_file()
