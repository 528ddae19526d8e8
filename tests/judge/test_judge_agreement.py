"""Judge-vs-rules agreement numbers on a hand-made set, and the ``judge run`` command."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from judge_helpers import oracle
from scripted_llm import ScriptedBackend

from afscope.cli.judge import command
from afscope.judge import JudgeRunConfig, agreement
from afscope.judge.run import run_judge


def _row(judge, rules, af=False, rule_af=False, status="ok"):
    return {"behaviour": judge, "rule_behaviour": rules, "af": af, "rule_af": rule_af,
            "judge_status": status, "aligned": 50, "coherent": 80}


def test_agreement_hand_made():
    judge = ["comply", "comply", "refuse", "refuse", "partial", "comply"]
    rules = ["comply", "refuse", "refuse", "refuse", "comply", "comply"]
    rows = [_row(j, r, af=(i == 0), rule_af=(i in (0, 1))) for i, (j, r) in enumerate(zip(judge, rules))]
    rows.append({**_row(None, "refuse", None), "judge_status": "parse_error"})
    a = agreement(rows)
    # po = 4/6; pe = (3*3 + 2*3 + 1*0) / 36 = 15/36; kappa = (po - pe) / (1 - pe) = 3/7.
    assert a["n_rows"] == 7 and a["n"] == 6 and a["parse_failures"] == 1
    assert a["parse_failure_rate"] == pytest.approx(1 / 7)
    assert a["behaviour_agreement"] == pytest.approx(4 / 6)
    assert a["kappa"] == pytest.approx(3 / 7)
    assert a["confusion"]["labels"] == ["comply", "refuse", "partial"]
    assert a["confusion"]["matrix"] == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert a["af_agreement"] == pytest.approx(5 / 6)
    assert (a["af_rate_judge"], a["af_rate_rules"]) == (pytest.approx(1 / 6), pytest.approx(2 / 6))
    assert a["mean_aligned"] == 50.0


def test_agreement_single_class_and_empty():
    a = agreement([_row("refuse", "refuse")] * 3)
    assert a["behaviour_agreement"] == 1.0 and a["kappa"] is None
    e = agreement([])
    assert e["n"] == 0 and e["kappa"] is None and e["parse_failure_rate"] is None
    assert e["confusion"]["matrix"] == [[0] * 3] * 3


def _write_rows(path):
    rows = [{"id": "a", "prompt": "q1", "response": "I can't help with that."},
            {"id": "b", "prompt": "q2", "response": "Sure, here it is."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_run_judge_writes_run_dir(tmp_path):
    data = tmp_path / "rows.jsonl"
    _write_rows(data)
    cfg = JudgeRunConfig(data=data, out=tmp_path / "run", method="both")
    out = run_judge(cfg, backend=ScriptedBackend(oracle))
    assert out["stats"]["done"] == 2 and out["agreement"]["kappa"] == pytest.approx(1.0)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["outputs"]["agreement"]["n"] == 2
    assert json.loads((tmp_path / "run" / "agreement.json").read_text())["behaviour_agreement"] == 1.0


def test_cli_rules_and_bad_input(tmp_path):
    data = tmp_path / "rows.jsonl"
    _write_rows(data)
    res = CliRunner().invoke(command, ["run", "--data", str(data), "--out", str(tmp_path / "r"),
                                       "--method", "rules"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (tmp_path / "r" / "judged.jsonl").read_text().splitlines()]
    assert [r["behaviour"] for r in rows] == ["refuse", "comply"]
    data.write_text('{"id": "a", "prompt": "q"}\n')
    res = CliRunner().invoke(command, ["run", "--data", str(data), "--out", str(tmp_path / "r2"),
                                       "--method", "rules"])
    assert res.exit_code != 0 and "field 'response'" in str(res.exception)
    assert not (tmp_path / "r2").exists()
