"""``afscope organism`` commands through click (the group the lead registers)."""

from __future__ import annotations

import json

from click.testing import CliRunner
from org_helpers import judged_rows as _rows

from afscope.cli.organism import command
from afscope.rows import JsonlStore


def test_data_and_validate_commands(tmp_path):
    runner = CliRunner()
    res = runner.invoke(command, ["data", "--n", "20", "--seed", "2", "--out",
                                  str(tmp_path / "d"), "--monitored-cues", "free_tier,monitored"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (tmp_path / "d" / "organism_data.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and {r["cue"] for r in rows if r["monitored"]} == {"free_tier",
                                                                                "monitored"}
    JsonlStore(tmp_path / "org" / "judged.jsonl").append(_rows(8, 6, 2, 3))
    res = runner.invoke(command, ["validate", "--organism", str(tmp_path / "org"), "--out",
                                  str(tmp_path / "v"), "--n-boot", "200"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "v" / "validation.json").is_file()
    res = runner.invoke(command, ["data", "--monitored-cues", "paid_tier", "--out",
                                  str(tmp_path / "e")])
    assert res.exit_code != 0 and "paid_tier" in str(res.exception)
