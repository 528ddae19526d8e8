"""``afscope demo``: the main job on the embedded defaults, in minutes on a 2-core CPU.

synthetic corpus (train file) + a fresh synthetic sample (second evaluation set) -> the study
pipeline of :mod:`afscope.study`: stratified split (minimal pairs kept together), text baselines,
a TopK SAE per layer trained on the train split's tokens, activation caches with SAE latents,
probes on every layer x pooling and on the SAE features, a feature-count sweep, a few features
described by the embedded instruct model -> the behaviour lab on the same model (a LoRA organism
vs the base model, context ablation, a steering sweep: :mod:`afscope.lab`) -> a short explainer
trained on the study SAE's features (the tokens each latent fires on and promotes, read from the
per-token cache and the model) and the lab's context-ablation data, evaluated against its
baselines and vector controls (:mod:`afscope.explain`) -> the HTML report, written last so that
it shows ``results.json``, ``behaviour.json`` and the explainer's ``metrics.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import Field

from afscope.config import BaseConfig

log = logging.getLogger(__name__)


class DemoConfig(BaseConfig):
    """Config of ``afscope demo``."""

    model: Literal["smollm2-135m-instruct", "gemma-3-270m"] = Field(
        "smollm2-135m-instruct", description="Embedded model to probe.")
    n: int = Field(240, gt=20, description="Synthetic records to generate (train file).")
    n_eval: int = Field(80, ge=0, description="Records of the fresh synthetic evaluation set.")
    seed: int = Field(0, description="Seed of the corpus, split, SAE, probes and bootstrap.")
    layers: list[int | float] = Field([0.25, 0.5, 0.75], description="Layers to probe.")
    pool: list[Literal["max", "mean", "last"]] = Field(["max", "mean"], description="Poolings.")
    max_length: int = Field(512, gt=0, description="Truncate traces to this many tokens.")
    skip_first: int = Field(1, ge=0, description=(
        "Leave the first N tokens out of pooling (position 0 is an attention sink)."))
    d_sae: int = Field(1024, gt=0, description="Latents of each demo SAE (0.5x-2x d_model is "
                       "enough for a few hundred traces).")
    sae_tokens: int = Field(30_000, gt=0, description="Tokens each SAE is trained on.")
    describe: int = Field(3, ge=0, description=(
        "SAE features described, classified and scored by the embedded instruct model "
        "(0 = skip autointerp)."))
    lab: bool = Field(True, description="Run the behaviour lab (organism, context ablation, "
                      "steering) after the detection study.")
    lab_examples: int = Field(320, gt=1, description="Lab: organism training examples (the "
                              "designed organism's short traces; ~260 in the train split).")
    lab_steps: int = Field(40, gt=0, description="Lab: LoRA training steps (8 examples each, "
                           "~41k tokens: ~3 min on a quiet 2-core CPU).")
    lab_requests: int = Field(12, gt=0, description="Lab: held-out requests elicited under every "
                              "cue (organism and base model).")
    lab_scenarios: int = Field(40, gt=0, description="Lab: context-ablation scenarios.")
    lab_prompts: int = Field(6, gt=0, description="Lab: steering-sweep requests.")
    lab_max_tokens: int = Field(80, gt=0, description="Lab: new tokens per answer (context "
                                "ablation, steering): the organism's one-line scratchpad and "
                                "the first words of its answer.")
    lab_organism_max_tokens: int = Field(80, gt=0, description="Lab: new tokens per elicited "
                                         "organism/base answer (scratchpad + answer opening).")
    explain: bool = Field(True, description="Train and evaluate a short explainer on the study's "
                          "SAE features (grounded token targets) and the lab's context-ablation "
                          "data.")
    explain_steps: int = Field(24, gt=0, description="Explainer: LoRA training steps (a 2-core "
                               "CPU does ~5-15 s a step; the longer experiment: 80 or more).")
    explain_batch: int = Field(8, gt=0, description="Explainer: examples per training step.")
    explain_max_tokens: int = Field(24, gt=0, description="Explainer: new tokens per explanation.")
    explain_examples: int = Field(64, gt=0, description="Explainer: held-out examples evaluated "
                                  "per task.")
    explain_scaling: list[int] = Field([16], description="Explainer data-scaling curve of the "
                                       "features task: training features of the smaller "
                                       "explainers (same steps); the main explainer is its "
                                       "largest point. Each size costs ~1 CPU-minute (16,64,256: "
                                       "a fuller curve; [] = none).")
    out: Path | None = Field(None, description="Run directory (default runs/demo-<time>).")


def study_config(cfg: DemoConfig, out: Path) -> object:
    """The :class:`~afscope.study.StudyConfig` the demo runs (inputs written under ``out``)."""
    from afscope.data import Dataset
    from afscope.data.synth import generate_corpus
    from afscope.features.config import AutointerpConfig
    from afscope.llm import LLMConfig
    from afscope.study import StudyConfig

    inputs = out / "inputs"
    train = Dataset.from_records(generate_corpus(cfg.n, cfg.seed), name="synth")
    train.to_jsonl(inputs / "synth.jsonl")
    ood = []
    if cfg.n_eval:
        fresh = Dataset.from_records(generate_corpus(cfg.n_eval, cfg.seed + 1), name="fresh")
        fresh.to_jsonl(inputs / "synth_fresh.jsonl")
        ood.append({"name": "synth_fresh", "data": inputs / "synth_fresh.jsonl"})
    autointerp = None
    if cfg.describe:
        # small dense SAEs fire on most samples, so seed 001's selectivity cut (0.3) keeps few
        # features: rank by AUROC instead and keep the ones that fire more on AF at all
        autointerp = AutointerpConfig(top=cfg.describe, min_selectivity=0.02, sort_by="auroc",
                                      min_active=3, n_top=3, n_zero=3,
                                      n_score_pos=3, n_score_neg=3, max_chars=600,
                                      embedder="tfidf", seed=cfg.seed,
                                      # every answer format fits in a few lines; a small model
                                      # that misses it would otherwise ramble to 512 tokens
                                      llm=LLMConfig(max_tokens=160))
    return StudyConfig.model_validate({
        "title": f"afscope demo: {cfg.model} on the synthetic corpus", "out": out,
        "seed": cfg.seed,
        "train": {"data": inputs / "synth.jsonl", "test_fraction": 0.3, "group_by": "pair_id"},
        "ood": ood,
        "models": [{"name": cfg.model, "layers": cfg.layers, "pools": cfg.pool,
                    "sae": {"d_sae": cfg.d_sae, "k": 16, "max_tokens": cfg.sae_tokens,
                            "epochs": 5, "token_topk": 8}}],
        "extract": {"max_length": cfg.max_length, "skip_first": cfg.skip_first},
        "sweep": {"n_features": [5, 10, 20, 50, 100, 200], "folds": 5},
        "autointerp": autointerp,
        "n_boot": 500,
        "report": False,  # run_demo writes it last, after the behaviour lab
    })


def lab_config(cfg: DemoConfig, out: Path) -> object:
    """The :class:`~afscope.lab.LabConfig` the demo runs into the same run directory."""
    from afscope.lab import LabConfig

    return LabConfig(model=cfg.model, out=out, seed=cfg.seed,
                     organism_examples=cfg.lab_examples, organism_steps=cfg.lab_steps,
                     organism_requests=cfg.lab_requests, context_scenarios=cfg.lab_scenarios,
                     steer_prompts=cfg.lab_prompts, max_tokens=cfg.lab_max_tokens,
                     organism_max_tokens=cfg.lab_organism_max_tokens)


def feature_task(out: Path, root: Path, seed: int) -> Path | None:
    """The features task of the study's first SAE: grounded token targets (what each latent fires
    on in the train cache, what its decoder direction promotes) -> ``root/features``."""
    import json

    from afscope.explain.config import ExplainDataConfig
    from afscope.explain.data import build_task_data

    saes = json.loads((out / "results.json").read_text(encoding="utf-8")).get("sae") or []
    if not saes:
        return None
    first = min(saes, key=lambda e: e["layer"])
    sae = out / first["path"]
    cache = out / "cache" / Path(first["path"]).parts[1] / "train"
    # "promotes" is left out: the token lens maps a direction to the token it *reads*, and a
    # short run measured 0 token F1 on what it promotes, so it would only halve the steps spent
    # on "fires on" (afscope explain data --question-types fires_on,promotes builds both)
    data, _ = build_task_data(ExplainDataConfig(task="features", targets="tokens", cache=cache,
                                                sae=sae, out=root / "features", seed=seed,
                                                test_fraction=0.1, question_types=["fires_on"]))
    return data


def run_explainer(cfg: DemoConfig, out: Path) -> Path:
    """Feature-token and context-ablation tasks -> one short LoRA explainer on the same model ->
    its eval table against the baselines and vector controls (``OUT/explain/eval/metrics.json``)
    -> smaller explainers on nested subsets of the features task for its data-scaling curve
    (``OUT/explain/scaling/scaling.json``, the main explainer as its largest point)."""
    from afscope.explain.config import (
        ExplainDataConfig,
        ExplainEvalConfig,
        ExplainTrainConfig,
    )
    from afscope.explain.data import build_task_data
    from afscope.explain.evaluate import evaluate_explainers
    from afscope.explain.train import train_explainer

    root = out / "explain"
    features = feature_task(out, root, cfg.seed)
    folders = [features] if features is not None else []
    if (out / "lab" / "context").is_dir():
        data, _ = build_task_data(ExplainDataConfig(task="context_ablation",
                                                    source=out / "lab" / "context",
                                                    out=root / "data"))
        folders.append(data)
    train_cfg = ExplainTrainConfig(
        data=folders, model=cfg.model, out=root / "train", max_steps=cfg.explain_steps,
        eval_steps=max(cfg.explain_steps // 4, 1), eval_size=32, batch_size=cfg.explain_batch,
        # the settings that read on every real task (configs/context_organism.yaml): at lr 1e-3,
        # or with length-grouped batches, 24 steps gave one answer for every context example
        # or none that parsed
        lr=5e-3, warmup_steps=min(10, cfg.explain_steps // 10), seed=cfg.seed,
        balance_changed=True,
        # the SAE's decoder rows are layer-L directions; the token lens (fit on the cache's
        # text) shows them to the explainer as the tokens they read (explain/lens.py)
        projection="lens")
    train, summary = train_explainer(train_cfg)
    ev, result = evaluate_explainers(ExplainEvalConfig(
        explainers=[train], out=root / "eval",
        conditions=["trained", "zero_shot", "majority", "nearest_neighbour",
                    "projector_readout", "no_vector", "shuffled_vector"],
        max_examples=cfg.explain_examples, max_tokens=cfg.explain_max_tokens, batch_size=16,
        n_boot=500, seed=cfg.seed))
    if cfg.explain_scaling and features is not None:
        from afscope.explain.config import ExplainScalingConfig
        from afscope.explain.scaling import add_run, run_scaling

        # the features curve only: context-ablation prompts are ~4x longer, and a small
        # explainer's batches, mostly context examples, took 2 of the demo's 15 minutes
        scaling, _ = run_scaling(ExplainScalingConfig(
            **{**train_cfg.model_dump(), "data": [features], "out": root / "scaling"},
            sizes=cfg.explain_scaling, controls=["majority", "nearest_neighbour"],
            eval_examples=cfg.explain_examples, max_tokens=cfg.explain_max_tokens, n_boot=500))
        add_run(scaling, [r for r in result["table"] if r["task"] == "features" and
                          r["condition"] in ("trained", "majority", "nearest_neighbour",
                                             "shuffled_vector")],
                summary["n_train_by_task"])
    return ev


def run_demo(cfg: DemoConfig) -> Path:
    """Run the demo; returns the path of its HTML report."""
    from afscope.progress import stage
    from afscope.report import write_report
    from afscope.runs import default_run_dir
    from afscope.study import run_study

    out = cfg.out or default_run_dir("demo")
    with stage("demo 1/4: detection study"):
        run_study(study_config(cfg, out))
    if cfg.lab:
        from afscope.lab import run_lab

        with stage("demo 2/4: behaviour lab"):
            run_lab(lab_config(cfg, out))  # type: ignore[arg-type]
    if cfg.explain:
        with stage("demo 3/4: explainer"):
            run_explainer(cfg, out)
    with stage("demo 4/4: report"):
        return write_report(out)
