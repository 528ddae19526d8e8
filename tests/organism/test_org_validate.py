"""Validation statistics: compliance gap and CIs on hand-made rows, KS/permutation on known data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from org_helpers import CUES4
from org_helpers import judged_rows as _rows

from afscope.errors import ArtifactError, DataError
from afscope.organism import (
    ValidateConfig,
    compliance_gap,
    distribution_tests,
    validate,
)
from afscope.organism.stats import gap_difference
from afscope.organism.validate import table
from afscope.rows import JsonlStore


def test_gap_values_and_ci():
    g = compliance_gap(_rows(10, 8, 2, 5), n_boot=2000, seed=0)
    assert g["gap"]["gap"] == pytest.approx(0.6) and g["gap"]["n_units"] == 10
    lo, hi = g["gap"]["ci"]
    assert 0.2 <= lo < 0.6 < hi <= 1.0
    assert g["conditions"]["monitored"]["comply"]["rate"] == pytest.approx(0.8)
    assert g["conditions"]["unmonitored"]["comply"]["rate"] == pytest.approx(0.2)
    assert g["conditions"]["monitored"]["af"]["rate"] == pytest.approx(0.5)
    assert g["conditions"]["unmonitored"]["af"] == {"rate": 0.0, "n": 10, "ci": [0.0, 0.0]}
    assert g["per_cue"]["free_tier"]["gap"]["gap"] == pytest.approx(0.6)
    assert "gap" not in g["per_cue"]["paid_tier"]
    # seeded: same CI twice; a constant gap has a zero-width CI
    assert compliance_gap(_rows(10, 8, 2, 5), n_boot=2000, seed=0) == g
    assert compliance_gap(_rows(6, 6, 0, 0), n_boot=200)["gap"] == {"gap": 1.0, "ci": [1.0, 1.0],
                                                                    "n_units": 6}


def test_gap_by_scenario_and_unjudged_rows():
    rows = _rows(8, 4, 0, 0)
    rows[0]["behaviour"] = None
    g = compliance_gap(rows, unit="scenario", n_boot=200)
    assert g["n_unjudged"] == 1 and g["gap"]["n_units"] == 4
    with pytest.raises(DataError, match="field 'request_id'"):
        compliance_gap([{"id": "x", "cue": "monitored", "monitored": True}])


def test_gap_difference_paired():
    d = gap_difference(_rows(10, 8, 2, 0), _rows(10, 3, 2, 0), n_boot=500)
    assert d["difference"] == pytest.approx(0.5) and d["n_units"] == 10


def test_distribution_tests_known_distributions():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 4))
    b = rng.normal(size=(300, 4))
    b[:, 0] += 1.0                       # a shifted mean
    b[:, 1] = rng.normal(0, 3, 300)      # same mean, other spread: KS sees it, means do not
    r = distribution_tests(a, b, ["shift", "spread", "same1", "same2"], n_permutations=999)
    f = {x["feature"]: x for x in r["features"]}
    assert r["n_tested"] == 4
    assert f["shift"]["ks_p"] < 1e-6 and f["shift"]["perm_p"] <= 0.002
    assert f["shift"]["mean_diff"] == pytest.approx(a[:, 0].mean() - b[:, 0].mean())
    assert f["spread"]["ks_p"] < 1e-3 and f["spread"]["perm_p"] > 0.01
    assert f["same1"]["ks_p"] > 0.01 and f["same2"]["perm_p"] > 0.01
    assert f["shift"]["ks_p_bonf"] == pytest.approx(min(1.0, 4 * f["shift"]["ks_p"]))
    assert r["significant"]["ks_q"] == 2 and r["significant"]["perm_q"] == 1
    one = distribution_tests(a[:, 2], a[:, 2] + 10, n_permutations=99)
    assert one["n_tested"] == 1 and one["features"][0]["ks"] == 1.0
    with pytest.raises(DataError, match="NaN"):
        distribution_tests(np.array([1.0, np.nan]), np.array([1.0, 2.0]))


def _judged(run_dir, rows):
    JsonlStore(run_dir / "judged.jsonl").append(rows)
    return run_dir


def test_validate_writes_json_and_table(tmp_path):
    org = _judged(tmp_path / "org", _rows(10, 9, 1, 6))
    base = _judged(tmp_path / "base", _rows(10, 1, 1, 0))
    res = validate(ValidateConfig(organism=org, base=base, out=tmp_path / "v", n_boot=300))
    saved = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert saved == json.loads(json.dumps(res))
    assert res["organism"]["gap"]["gap"] == pytest.approx(0.8)
    assert res["base"]["gap"]["gap"] == pytest.approx(0.0)
    assert res["organism_minus_base"]["difference"] == pytest.approx(0.8)
    t = table(res)
    assert t[-1][0] == "ALL" and t[-1][4].startswith("+0.80") and t[-1][6].startswith("+0.00")
    assert {r[0] for r in t[:-1]} == {c for c, _ in CUES4}
    with pytest.raises(ArtifactError, match="not an elicit run"):
        validate(ValidateConfig(organism=tmp_path / "nothing", out=tmp_path / "v2"))
    with pytest.raises(ValueError, match="go together"):
        ValidateConfig(organism=org, probe=tmp_path)
