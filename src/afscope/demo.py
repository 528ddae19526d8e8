"""``afscope demo``: the main job on the embedded defaults, in minutes on a 2-core CPU.

synthetic corpus -> stratified split (minimal pairs kept together) -> activation cache on an
embedded model -> a short summary (corpus, keyword-scorer AUROCs, extraction speed, and how well a
difference-of-means direction per layer separates AF from the negatives on the held-out split).
Later components (SAE, probes, report, behaviour lab, explainer) extend this pipeline.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from afscope.config import BaseConfig
from afscope.fileio import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


class DemoConfig(BaseConfig):
    """Config of ``afscope demo``."""

    model: Literal["smollm2-135m-instruct", "gemma-3-270m"] = Field(
        "smollm2-135m-instruct", description="Embedded model to extract from.")
    n: int = Field(240, gt=20, description="Synthetic records to generate.")
    seed: int = Field(0, description="Seed of the corpus and the split.")
    layers: list[int | float] = Field([0.25, 0.5, 0.75], description="Layers to cache.")
    pool: list[Literal["max", "mean", "last"]] = Field(["max", "mean"], description="Poolings.")
    max_length: int = Field(512, gt=0, description="Truncate traces to this many tokens.")
    skip_first: int = Field(1, ge=0, description=(
        "Leave the first N tokens out of pooling (position 0 is an attention sink)."))
    out: Path | None = Field(None, description="Run directory (default runs/demo-<time>).")


def _auroc(y: np.ndarray, s: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if len(set(y.tolist())) == 2 else None


def direction_aurocs(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                     y_test: np.ndarray, cat_test: np.ndarray) -> dict[str, float | None]:
    """AUROC on held-out rows of the difference-of-means direction fitted on train rows.

    Reported for AF vs all negatives and AF vs hard negatives only: the comparison the
    vocabulary confound is about.
    """
    w = x_train[y_train == 1].mean(0) - x_train[y_train == 0].mean(0)
    scores = x_test @ w
    hard = np.isin(cat_test, ["hard_negative", "compliant_hard_negative"]) | (y_test == 1)
    return {"af_vs_all": _auroc(y_test, scores),
            "af_vs_hard_negative": _auroc(y_test[hard], scores[hard])}


def _markdown(summary: dict[str, Any]) -> str:
    lines = [f"# afscope demo: {summary['model']}", "",
             f"Run directory: `{summary['run_dir']}`", "", "## Synthetic corpus", ""]
    lines += [f"- {k}: {v}" for k, v in summary["corpus"]["counts"].items()]
    lines += ["", "Keyword-counter AUROC (training/RLHF word count as the AF score):", ""]
    lines += [f"- {k}: {v:.3f}" for k, v in summary["corpus"]["keyword_auroc"].items()]
    ex = summary["extract"]
    lines += ["", "## Activation cache", "",
              f"{ex['records']} records, {ex['tokens']} tokens, {ex['tokens_per_s']} tokens/s, "
              f"layers {ex['layers']}, d={ex['d_model']}", "",
              "## Difference-of-means direction, held-out AUROC", "",
              "| layer | pool | AF vs all | AF vs hard negatives |", "|---|---|---|---|"]
    for row in summary["directions"]:
        lines.append(f"| {row['layer']} | {row['pool']} | {row['af_vs_all']:.3f} | "
                     f"{row['af_vs_hard_negative']:.3f} |")
    return "\n".join(lines) + "\n"


def run_demo(cfg: DemoConfig) -> Path:
    """Run the demo; returns the path of its summary (``summary.md``)."""
    from afscope.data import Dataset, stratified_split
    from afscope.data.synth import generate_corpus, keyword_auroc_report
    from afscope.extract import ExtractConfig, extract
    from afscope.models import load_model
    from afscope.runs import default_run_dir, start_run

    out = cfg.out or default_run_dir("demo")
    with start_run("demo", cfg.to_dict(), out) as run:
        with run.timer("synth"):
            records = generate_corpus(cfg.n, cfg.seed)
            corpus = Dataset.from_records(records, name="synth")
            corpus.to_jsonl(out / "data" / "synth.jsonl")
        splits = stratified_split(corpus, {"train": 0.7, "test": 0.3}, seed=cfg.seed,
                                  group_by="pair_id")
        for name, part in splits.items():
            part.to_jsonl(out / "data" / f"{name}.jsonl")
        run.add_dataset("synth", corpus.info())
        with run.timer("load_model"):
            lm = load_model(cfg.model)
        run.add_model("model", lm.info.to_dict())
        caches = {}
        for name, part in splits.items():
            with run.timer(f"extract_{name}"):
                caches[name] = extract(ExtractConfig(
                    model=cfg.model, data=out / "data" / f"{name}.jsonl",
                    out=out / f"cache_{name}", layers=cfg.layers, pool=cfg.pool,
                    max_length=cfg.max_length, skip_first=cfg.skip_first, seed=cfg.seed),
                    lm=lm, dataset=part)
        train, test = caches["train"], caches["test"]
        cat_test = np.array([r["category"] for r in test.records()])
        directions = []
        for layer in train.layers:
            for pool in train.pools:
                directions.append({"layer": layer, "pool": pool, **direction_aurocs(
                    train.get(layer, pool), train.labels, test.get(layer, pool), test.labels,
                    cat_test)})
        tokens = int(train.n_tokens().sum() + test.n_tokens().sum())
        secs = run.manifest["timings_s"]["extract_train"] + run.manifest["timings_s"]["extract_test"]
        summary = {
            "model": cfg.model, "run_dir": str(out),
            "corpus": {"counts": corpus.counts(), "keyword_auroc": keyword_auroc_report(records)},
            "splits": {k: len(v) for k, v in splits.items()},
            "extract": {"records": len(corpus), "tokens": tokens,
                        "tokens_per_s": round(tokens / secs, 1), "layers": train.layers,
                        "d_model": train.d_model},
            "directions": directions,
        }
        atomic_write_json(out / "summary.json", summary)
        atomic_write_text(out / "summary.md", _markdown(summary))
        run.add_output("summary", "summary.md")
    return out / "summary.md"
