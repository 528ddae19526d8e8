"""On the embedded smollm2: a short LoRA explainer with the token-lens projector names the tokens
held-out SAE latents fire on, beating the shuffled-vector control and the nearest neighbour.

This is the check that the explainer reads a real model's activations (issue: before the lens it
scored like the no-vector control). Margins measured when written are in the asserts' comments.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from afscope.cli import main
from afscope.data.dataset import Dataset
from afscope.data.synth import generate_corpus

LAYER = 7


def _run(*args: str) -> None:
    result = CliRunner().invoke(main, ["-q", *args])
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_explainer_reads_real_sae_latents(tmp_path):
    data = tmp_path / "synth.jsonl"
    Dataset.from_records(generate_corpus(120, seed=11), "synth").to_jsonl(data)
    _run("sae", "train", "--data", str(data), "--layer", str(LAYER), "--d-sae", "512",
         "--k", "16", "--max-tokens", "30000", "--max-length", "256", "--epochs", "10",
         "--out", str(tmp_path / "sae"))
    sae = tmp_path / "sae" / "sae"
    _run("extract", "--data", str(data), "--layers", str(LAYER), "--pool", "max",
         "--max-length", "256", "--sae", str(sae), "--token-topk", "8",
         "--out", str(tmp_path / "cache"))
    _run("explain", "data", "--task", "features", "--targets", "tokens",
         "--cache", str(tmp_path / "cache"), "--sae", str(sae), "--question-types", "fires_on",
         "--test-fraction", "0.2", "--out", str(tmp_path / "task"))
    _run("explain", "train", "--data", str(tmp_path / "task"), "--projection", "lens",
         "--max-steps", "24", "--batch-size", "8", "--lr", "1e-3", "--warmup-steps", "2",
         "--val-fraction", "0", "--out", str(tmp_path / "train"))
    _run("explain", "eval", "--explainers", str(tmp_path / "train"),
         "--conditions", "trained,nearest_neighbour,projector_readout,shuffled_vector",
         "--max-examples", "96", "--max-tokens", "24", "--batch-size", "16", "--n-boot", "500",
         "--out", str(tmp_path / "eval"))
    table = json.loads((tmp_path / "eval" / "metrics.json").read_text())["table"]
    f1 = {r["condition"]: r["metrics"]["subsets"]["all"]["token_f1"] for r in table}
    print({c: (round(v["mean"], 3), round(v["lo"], 3), round(v["hi"], 3)) for c, v in f1.items()})
    # measured when written (2-core CPU): trained 0.252 [0.194, 0.317], shuffled vector 0.005
    # [0.000, 0.016], nearest neighbour 0.000, projector read-out 0.377 [0.322, 0.422]
    assert f1["trained"]["mean"] > 0.12
    assert f1["trained"]["lo"] > f1["shuffled_vector"]["hi"]
    assert f1["trained"]["lo"] > f1["nearest_neighbour"]["hi"]
    assert f1["projector_readout"]["mean"] > 0.15
