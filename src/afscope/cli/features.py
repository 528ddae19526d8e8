"""``afscope features select|describe|classify|score|cluster|run``: autointerp of SAE features.

Every step reads and writes one run directory (``--out``) and records its own manifest there
(``manifest.<step>.json``); the LLM steps are resumable: rerun the same command after a kill.
"""

from __future__ import annotations

from typing import Any

import click

from afscope.cli import console
from afscope.cli.options import config_command
from afscope.features.config import (
    ClassifyConfig,
    ClusterConfig,
    DescribeConfig,
    RunConfig,
    ScoreConfig,
    SelectConfig,
)


@click.group("features")
def command() -> None:
    """Describe SAE features with an LLM (seed 001): select, describe, classify, score, cluster."""


def _manifest(step: str) -> str:
    return f"manifest.{step}.json"


def _inputs(cfg: Any, run: Any, with_texts: bool = True) -> Any:
    from afscope.features.inputs import load_inputs

    inp = load_inputs(cfg.cache, cfg.layer, cfg.stat, cfg.data, with_texts=with_texts)
    if inp.dataset_info:
        run.add_dataset("data", inp.dataset_info)
    run.add_model("cache", {"path": str(cfg.cache), "model": inp.model, "layer": cfg.layer,
                            "stat": cfg.stat, "shape": list(inp.X.shape)})
    return inp


def _backend(cfg: Any, run: Any) -> Any:
    from afscope.llm import make_backend

    llm_cfg = cfg.llm_config()
    run.add_model("llm", {"backend": llm_cfg.backend, "model": llm_cfg.model})
    return make_backend(llm_cfg)


def _peaks(inp: Any, features: list[int]) -> Any:
    from afscope.features.samples import TokenPeaks

    return TokenPeaks(inp.token_topk, features) if inp.token_topk is not None and features else None


def _report(step: str, stats: dict[str, Any]) -> None:
    console.print(f"{step}: " + ", ".join(f"{k} {v}" for k, v in stats.items() if k != "errors"))


@command.command("select")
@config_command(SelectConfig)
def select(cfg: SelectConfig) -> None:
    """Rank features by selectivity/AUROC; write candidates.json."""
    from afscope.features.pipeline import step_select
    from afscope.runs import start_run

    with start_run("features select", cfg.to_dict(), cfg.out, manifest_name=_manifest("select")) as run:
        inp = _inputs(cfg, run, with_texts=cfg.data is not None)
        table = step_select(inp.X, inp.y, cfg.out, cfg)
        run.add_output("candidates", len(table))
    console.print(f"{len(table)} of {inp.X.shape[1]} features selected -> {cfg.out}/candidates.json")


@command.command("describe")
@config_command(DescribeConfig)
def describe(cfg: DescribeConfig) -> None:
    """Differential descriptions of the candidates (resumable)."""
    from afscope.features.pipeline import candidate_ids, step_describe
    from afscope.runs import start_run

    with start_run("features describe", cfg.to_dict(), cfg.out, manifest_name=_manifest("describe")) as run:
        inp = _inputs(cfg, run, with_texts=cfg.explainer is None)
        feats = cfg.features if cfg.features is not None else candidate_ids(cfg.out)
        if cfg.explainer is not None:
            from afscope.explain.describe import describe_with_explainer

            run.add_model("explainer", {"run": str(cfg.explainer), "sae": str(cfg.sae),
                                        "question": cfg.question})
            with run.timer("describe (explainer)"):
                stats = describe_with_explainer(
                    cfg.explainer, cfg.sae, inp, feats, cfg, cfg.out, question=cfg.question,
                    seed=cfg.seed, batch_size=cfg.batch_size, dtype=cfg.dtype,
                    device=cfg.device).to_dict()
        else:
            stats = step_describe(inp.X, inp.y, inp.texts, inp.ids, inp.categories,
                                  _backend(cfg, run), cfg.out, cfg, features=feats, seed=cfg.seed,
                                  batch_size=cfg.batch_size, peaks=_peaks(inp, feats)).to_dict()
        run.add_output("describe", stats)
        faith = _faithfulness(cfg, inp, run)
    _report("describe", stats)
    if faith:
        _report("faithfulness", faith)


def _faithfulness(cfg: Any, inp: Any, run: Any) -> dict[str, Any]:
    """Score the descriptions' faithfulness when the cache has per-token top-k (else say why not)."""
    from afscope.features.pipeline import step_faithfulness
    from afscope.features.tokens import TokenNames
    from afscope.models.loading import load_tokenizer

    if inp.token_topk is None or inp.model is None:
        console.print("faithfulness: skipped (the cache has no per-token top-k; extract with "
                      "--token-topk K)")
        return {}
    with run.timer("faithfulness"):
        summary = step_faithfulness(cfg.out, inp.token_topk, TokenNames(load_tokenizer(inp.model)),
                                    seed=cfg.seed,
                                    simulator=_backend(cfg, run) if cfg.simulate else None,
                                    batch_size=cfg.batch_size)
    run.add_output("faithfulness", summary)
    return {k: (f"{v['mean']:.3f} [{v['lo']:.3f}, {v['hi']:.3f}] n={v['n']}"
                if isinstance(v, dict) and "mean" in v else v) for k, v in summary.items()}


@command.command("classify")
@config_command(ClassifyConfig)
def classify(cfg: ClassifyConfig) -> None:
    """Relevance 0-10 and known/discovery/unrelated per description; write selected.json."""
    from afscope.features.pipeline import step_classify
    from afscope.runs import start_run

    with start_run("features classify", cfg.to_dict(), cfg.out, manifest_name=_manifest("classify")) as run:
        stats = step_classify(_backend(cfg, run), cfg.out, cfg, batch_size=cfg.batch_size).to_dict()
        run.add_output("classify", stats)
    _report("classify", stats)


@command.command("score")
@config_command(ScoreConfig)
def score(cfg: ScoreConfig) -> None:
    """Detection scoring of the descriptions on held-out samples (resumable)."""
    from afscope.features.pipeline import describe_store_rows, step_score
    from afscope.runs import start_run

    with start_run("features score", cfg.to_dict(), cfg.out, manifest_name=_manifest("score")) as run:
        inp = _inputs(cfg, run)
        feats = [int(r["feature"]) for r in describe_store_rows(cfg.out)]
        max_chars = _describe_max_chars(cfg.out)
        stats = step_score(inp.X, inp.y, inp.texts, inp.ids, _backend(cfg, run), cfg.out, cfg,
                           max_chars=max_chars, seed=cfg.seed, batch_size=cfg.batch_size,
                           peaks=_peaks(inp, feats)).to_dict()
        run.add_output("score", stats)
    _report("score", stats)


def _describe_max_chars(out: Any) -> int:
    """Score with the excerpt length the descriptions were written with."""
    import json
    from pathlib import Path

    from afscope.features.config import DescribeParams

    default = DescribeParams.model_fields["max_chars"].default
    meta = Path(out) / "descriptions.meta.json"
    if meta.exists():
        return int(json.loads(meta.read_text(encoding="utf-8")).get("max_chars", default))
    return default


@command.command("cluster")
@config_command(ClusterConfig)
def cluster(cfg: ClusterConfig) -> None:
    """Group the descriptions into themes; write themes.json and features.json."""
    from afscope.features.pipeline import collect_features, step_cluster
    from afscope.runs import start_run

    with start_run("features cluster", cfg.to_dict(), cfg.out, manifest_name=_manifest("cluster")) as run:
        backend = _backend(cfg, run) if cfg.name_themes else None
        themes = step_cluster(cfg.out, cfg, backend=backend)
        rows = collect_features(cfg.out)
        run.add_output("themes", len(themes))
    console.print(f"{len(themes)} themes over {len(rows)} features -> {cfg.out}/themes.json")


@command.command("run")
@config_command(RunConfig)
def run_all(cfg: RunConfig) -> None:
    """Every step in one go (resumable): select, describe, classify, score, cluster."""
    from afscope.features.pipeline import run_autointerp
    from afscope.runs import start_run

    with start_run("features run", cfg.to_dict(), cfg.out, manifest_name=_manifest("run")) as run:
        inp = _inputs(cfg, run)
        stats: dict[str, Any] = {}
        names = None
        if inp.token_topk is not None and inp.model is not None:
            from afscope.features.tokens import TokenNames
            from afscope.models.loading import load_tokenizer

            names = TokenNames(load_tokenizer(inp.model))
        rows = run_autointerp(inp.X, inp.y, inp.texts, inp.ids, inp.categories, _backend(cfg, run),
                              cfg.out, cfg, inp.token_topk, model=inp.model, layer=cfg.layer,
                              stats=stats, names=names)
        run.add_output("steps", stats)
    for step, s in stats.items():
        _report(step, s)
    console.print(f"{len(rows)} features described -> {cfg.out}/features.json")
