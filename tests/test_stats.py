"""afscope.stats: bootstrap intervals, over values and over units of correlated values."""

import numpy as np
import pytest

from afscope.stats import mean_ci, unit_weights


def test_unit_weights_draw_whole_units():
    units = ["a", "a", "a", "b", "c", "c"]
    w = unit_weights(units, 200, seed=1)
    assert w.shape == (200, 6)
    # rows of one unit always weigh the same, and each resample draws 3 units
    assert (w[:, 0] == w[:, 1]).all() and (w[:, 1] == w[:, 2]).all() and (w[:, 4] == w[:, 5]).all()
    assert (w[:, [0, 3, 4]].sum(axis=1) == 3).all()
    assert np.array_equal(w, unit_weights(units, 200, seed=1))


def test_repeated_answers_of_a_unit_do_not_narrow_the_interval():
    """Ten units, each answered ten times the same way: they are ten draws, not a hundred."""
    per_unit = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    values = [v for v in per_unit for _ in range(10)]
    units = [f"u{i}" for i in range(10) for _ in range(10)]
    rows = mean_ci(values, n_boot=2000, seed=0)
    grouped = mean_ci(values, n_boot=2000, seed=0, units=units)
    once = mean_ci(per_unit, n_boot=2000, seed=0, units=[f"u{i}" for i in range(10)])
    assert grouped["mean"] == rows["mean"] == pytest.approx(0.6)
    assert grouped["n"] == 100 and grouped["n_units"] == 10
    # the same units drawn: the interval of the repeated answers is that of one answer per unit
    assert (grouped["lo"], grouped["hi"]) == (once["lo"], once["hi"])
    assert grouped["hi"] - grouped["lo"] > 2.5 * (rows["hi"] - rows["lo"])
    assert grouped["lo"] <= 0.6 <= grouped["hi"]


def test_units_leave_out_missing_values_and_collapse_on_one_unit():
    got = mean_ci([1.0, None, 0.0, 1.0], units=["a", "b", "a", "a"], n_boot=100)
    assert got == {"mean": 2 / 3, "lo": 2 / 3, "hi": 2 / 3, "n": 3, "n_units": 1}
    with pytest.raises(ValueError, match="3 units for 2 values"):
        mean_ci([1.0, 0.0], units=["a", "b", "c"])
