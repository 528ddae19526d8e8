import json

import pytest
from click.testing import CliRunner

from afscope.cli import main


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["-q", "demo", "--n", "60", "--layers", "0.5",
                                       "--max-length", "256", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("summary.md")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["extract"]["records"] == 60 and summary["extract"]["d_model"] == 576
    assert sum(summary["splits"].values()) == 60
    assert {r["pool"] for r in summary["directions"]} == {"max", "mean"}
    for row in summary["directions"]:
        assert 0.0 <= row["af_vs_all"] <= 1.0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["models"]["model"]["weights_sha256"]
    assert (out / "cache_train" / "index.json").exists()
