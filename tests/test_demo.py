import json

import pytest
from click.testing import CliRunner

from afscope.cli import main


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    """The demo on the embedded instruct model: SAE, probes, baselines, autointerp, report."""
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["-q", "demo", "--n", "60", "--n-eval", "20",
                                       "--layers", "0.5", "--max-length", "192",
                                       "--sae-tokens", "4000", "--d-sae", "256",
                                       "--describe", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("index.html")
    results = json.loads((out / "results.json").read_text())
    families = {m["family"] for m in results["methods"]}
    assert families == {"activation", "sae", "baseline"}
    assert {d["name"] for d in results["datasets"]} == {"train", "test", "synth_fresh"}
    assert sum(d["n"] for d in results["datasets"] if d["role"] != "ood") == 60
    assert results["sae"][0]["d_sae"] == 256 and results["sae"][0]["layer"] == 14
    for e in results["evaluations"]:
        assert 0.0 <= e["metrics"]["auroc"]["value"] <= 1.0
    assert len(results["features"]) == 1  # described by the real smollm2 backend
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["models"]["smollm2-135m-instruct"]["weights_sha256"]
    assert "autointerp" in manifest["outputs"]
    assert (out / "report" / "index.html").is_file() and (out / "report" / "features.html").is_file()
