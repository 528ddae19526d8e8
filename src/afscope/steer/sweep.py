"""``afscope steer sweep``: steered generation over vectors x layers x alphas x prompts, judged.

Layout of the run directory (seed 003's ``em_eval/<timestamp>/``, as JSONL)::

    config.json                              the config plus the resolved conditions and prompts
    generations/baseline.jsonl               alpha 0: no steering (run once)
    generations/<vector>_layer_<n>_alpha_<a>.jsonl
    judged/<condition>.jsonl, .csv           generation rows + judge fields
    summary.json                             per-condition statistics (afscope.steer.summary)
    plots/*.png                              afscope.steer.plots
    manifest.json                            (manifest.judge.json / manifest.plot.json for reruns)

Why it is fast: rows of *all* unfinished conditions are generated together, ``gen_batch_size``
prompts per batch with per-row :class:`~afscope.generate.Steering`, so a sweep with few prompts and
many layers still fills its batches. Why it resumes: each condition is a
:class:`~afscope.rows.JsonlStore` whose meta records the model, the steering and the decoding
settings; rows are appended and fsynced chunk by chunk, a rerun generates only missing row ids, and
sampled rows are seeded by their id (:func:`afscope.generate.row_seed`), so the text a resumed run
writes is the text an uninterrupted run would have written.

Shards (torchrun / accelerate ranks, Slurm array tasks: ``shard`` ``i/n``): the rows of all
conditions, in the order above, are dealt ``i::n``; a shard generates its rows into
``generations/<condition>.shard-i-of-n.jsonl`` and stops. The run as one process (rank 0 after
the barrier, or the merge step after an array) takes in the shard rows made with the same settings,
generates what they lack, keeps each file in prompt order (the file of an unsharded run, byte for
byte), then judges, summarizes and plots.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from afscope.data.cues import cue_messages, requests
from afscope.distributed import parse_shard
from afscope.errors import ArtifactError, ConfigError
from afscope.fileio import (
    atomic_write_json,
    atomic_write_text,
    read_json_object,
    sha256_json,
)
from afscope.generate import GenerationParams, Steering, generate, row_seed
from afscope.generate.prompts import load_prompts
from afscope.models import LoadedModel, load_model, resolve_layers
from afscope.progress import progress_bar
from afscope.rows import JsonlStore, put_in_order, shard_path, take_in_shards
from afscope.runs import Run, manifest_name, start_run
from afscope.steer.config import JudgeFields, SteerJudgeConfig, SweepConfig
from afscope.steer.summary import summarize_rows
from afscope.steer.vectors import SteeringVector, load_vector

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
GEN_DIR = "generations"
JUDGED_DIR = "judged"
PLOT_DIR = "plots"
BASELINE = "baseline"


@dataclass(frozen=True)
class Condition:
    """One cell of the sweep; ``vector``/``layer`` are None for the baseline (alpha 0)."""

    name: str
    vector: str | None
    layer: int | None
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def condition_name(vector: str, layer: int, alpha: float) -> str:
    """``<vector>_layer_<n>_alpha_<a>`` with ``a`` in shortest form (``-2``, ``0.5``)."""
    return f"{vector}_layer_{layer}_alpha_{alpha:g}"


def plan_conditions(vectors: dict[str, SteeringVector], layers: Sequence[int | float] | None,
                    alphas: Sequence[float], n_layers: int) -> list[Condition]:
    """Baseline first, then vector-major, layer, alpha; alpha 0 only as the baseline."""
    conds = [Condition(BASELINE, None, None, 0.0)]
    for name, vec in vectors.items():
        wanted = vec.layers if layers is None else resolve_layers(layers, n_layers)
        missing = [layer for layer in wanted if layer not in vec.vectors]
        if missing:
            raise ConfigError(f"field 'layers': vector {name!r} has no direction for layers "
                              f"{missing}; it has layers {vec.layers}")
        for layer in wanted:
            for a in alphas:
                if a != 0.0:
                    conds.append(Condition(condition_name(name, layer, a), name, layer, float(a)))
    return conds


def sweep_prompts(cfg: SweepConfig) -> list[dict[str, Any]]:
    """The first ``max_samples`` prompts of ``cfg.prompts``, or seeded synthetic requests."""
    if cfg.prompts is not None:
        return load_prompts(cfg.prompts)[: cfg.max_samples]
    reqs = requests(cfg.max_samples, cfg.seed, harmful_fraction=cfg.harmful_fraction)
    return [{"prompt_id": f"p{i:04d}", "prompt": r.text, "scenario": r.scenario,
             "harmful": r.harmful} for i, r in enumerate(reqs)]


def _model_input(prompt: str, cue: str | None) -> str | list[dict[str, str]]:
    return prompt if cue is None else cue_messages(cue, prompt)


def _params(cfg: SweepConfig) -> GenerationParams:
    return GenerationParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens,
                            top_p=cfg.top_p, seed=cfg.seed)


def _steering(cond: Condition, vectors: dict[str, SteeringVector], positions: str
              ) -> Steering | None:
    if cond.vector is None:
        return None
    vec = vectors[cond.vector]
    return Steering({cond.layer: vec.at(cond.layer)}, alpha=cond.alpha,  # type: ignore[arg-type]
                    positions=positions)  # type: ignore[arg-type]


def gen_store(run_dir: Path, cond: str, meta: dict[str, Any] | None = None,
              shard: tuple[int, int] | None = None) -> JsonlStore:
    return JsonlStore(shard_path(Path(run_dir) / GEN_DIR / f"{cond}.jsonl", shard), key="id",
                      meta=meta)


def _gen_meta(cfg: SweepConfig, lm: LoadedModel, cond: Condition, steer: Steering | None,
              prompts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model": lm.info.fingerprint, "condition": cond.to_dict(),
            "steering": steer.key() if steer is not None else None,
            "positions": cfg.positions if steer is not None else None,
            "params": _params(cfg).to_dict(), "cue": cfg.cue, "n_generations": cfg.n_generations,
            "prompts": sha256_json([p["prompt"] for p in prompts])}


def _load_vectors(cfg: SweepConfig, lm: LoadedModel, run: Run) -> dict[str, SteeringVector]:
    from afscope.fileio import sha256_file

    out = {}
    for name, path in cfg.vector_paths().items():
        vec = load_vector(path, model=lm.info, allow_other_model=cfg.allow_other_model)
        out[name] = vec
        file = path / "vector.safetensors" if path.is_dir() else path
        run.add_dataset(f"vector:{name}", {"path": str(path), "sha256": sha256_file(file),
                                           "source": vec.source, "layers": vec.layers,
                                           "norms": {str(k): v for k, v in vec.norms.items()}})
    return out


def generate_conditions(lm: LoadedModel, conds: list[Condition],
                        vectors: dict[str, SteeringVector], prompts: list[dict[str, Any]],
                        cfg: SweepConfig, run_dir: Path, shard: tuple[int, int] | None = None
                        ) -> dict[str, int]:
    """Generate every missing row of every condition; returns ``{condition: rows written}``.

    Rows of different conditions share ``generate`` batches; each chunk of rows is appended to
    its conditions' stores before the next chunk starts. With ``shard`` ``(i, n)`` only rows
    ``i::n`` of all conditions, into the shard's files; without, the rows of shard files are
    taken in first and each file is left in prompt order (see the module docstring).
    """
    params = _params(cfg)
    if params.greedy and cfg.n_generations > 1:
        log.warning("n_generations=%d with greedy decoding: the answers are identical; set "
                    "--temperature > 0 to sample", cfg.n_generations)
    steers = {c.name: _steering(c, vectors, cfg.positions) for c in conds}
    stores = {c.name: gen_store(run_dir, c.name, _gen_meta(cfg, lm, c, steers[c.name], prompts),
                                shard) for c in conds}
    order = [f"{p['prompt_id']}-g{g}" for p in prompts for g in range(cfg.n_generations)]
    if shard is None:
        for store in stores.values():
            take_in_shards(store, order)
    items = [(c, {"id": f"{p['prompt_id']}-g{g}", **p, "generation": g, "condition": c.name,
                  "vector": c.vector, "layer": c.layer, "alpha": c.alpha})
             for c in conds for p in prompts for g in range(cfg.n_generations)]
    if shard is not None:
        items = items[shard[0]::shard[1]]
    pending = [(c, it) for c, it in items if it["id"] not in stores[c.name]]
    written = dict.fromkeys(stores, 0)
    chunk = cfg.gen_batch_size * 4
    with progress_bar() as bar:
        task = bar.add_task("steered generation", total=len(pending))
        for start in range(0, len(pending), chunk):
            part = pending[start:start + chunk]
            gens = generate(lm.model, lm.tokenizer,
                            [_model_input(it["prompt"], cfg.cue) for _, it in part], params,
                            steering=[steers[c.name] for c, _ in part],
                            seeds=[row_seed(params.seed, it["id"]) for _, it in part],
                            batch_size=cfg.gen_batch_size)
            by_cond: dict[str, list[dict[str, Any]]] = {}
            for (c, it), g in zip(part, gens):
                by_cond.setdefault(c.name, []).append(
                    {**it, "response": g.text, "finish_reason": g.finish_reason,
                     "n_prompt_tokens": g.n_prompt_tokens, "n_new_tokens": len(g.token_ids)})
            for name, rows in by_cond.items():
                stores[name].append(rows)
                written[name] += len(rows)
            bar.advance(task, len(part))
    if shard is None:
        for store in stores.values():
            put_in_order(store, order)
    return written


def _check_generated(run_dir: Path, conds: list[Condition], n_expected: int) -> None:
    for c in conds:
        path = Path(run_dir) / GEN_DIR / f"{c.name}.jsonl"
        n = len(gen_store(run_dir, c.name)) if path.exists() else 0
        if n < n_expected:
            raise ArtifactError(f"{path}: {n} of {n_expected} generations; rerun without "
                                "--skip-generation to finish them")


def judge_conditions(run_dir: Path, conds: list[Condition], cfg: JudgeFields, run: Run
                     ) -> dict[str, Any]:
    """Judge every condition's generations into ``judged/<cond>.jsonl`` (resumable) + CSV.

    One LLM backend serves all conditions (a local judge model is loaded once).
    """
    from afscope.judge import judge_rows, judge_store

    jcfg = cfg.judge_config()
    backend = None
    if jcfg.uses_llm:
        from afscope.llm import make_backend

        run.add_model("judge", {"backend": jcfg.llm.backend, "model": jcfg.llm.model})
        backend = make_backend(jcfg.llm.model_copy(update={"on_error": "record"}))
    stats: dict[str, Any] = {}
    for c in conds:
        rows = gen_store(run_dir, c.name).rows()
        store = judge_store(Path(run_dir) / JUDGED_DIR / f"{c.name}.jsonl", jcfg)
        stats[c.name] = judge_rows(rows, store, jcfg, backend).to_dict()
        write_csv(store.rows(), store.path.with_suffix(".csv"))
    return stats


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    """Rows as CSV (seed 003's judged export): common columns first, nested values as JSON."""
    first = ["id", "condition", "vector", "layer", "alpha", "prompt_id", "generation", "prompt",
             "response", "aligned", "coherent", "behaviour", "af", "rule_behaviour", "rule_af",
             "judge_status"]
    keys = {k for r in rows for k in r}
    cols = [k for k in first if k in keys] + sorted(keys - set(first))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()})
    return atomic_write_text(path, buf.getvalue())


def read_conditions(run_dir: Path) -> tuple[dict[str, Any], list[Condition]]:
    """The saved config and conditions of a sweep run directory."""
    raw = read_json_object(Path(run_dir) / CONFIG_FILE, "a steer sweep run directory")
    try:
        conds = [Condition(**c) for c in raw["conditions"]]
    except (KeyError, TypeError) as e:
        raise ArtifactError(f"{Path(run_dir) / CONFIG_FILE}: field 'conditions' is missing or "
                            f"malformed ({e})") from None
    return raw, conds


def summarize_run(run_dir: Path, conds: list[Condition], method: str, *, n_boot: int = 1000,
                  seed: int = 0) -> dict[str, Any]:
    """Write ``summary.json`` from the judged files; returns it."""
    out = []
    for c in conds:
        path = Path(run_dir) / JUDGED_DIR / f"{c.name}.jsonl"
        if not path.exists():
            raise ArtifactError(f"{path}: not judged yet; run `afscope steer judge {run_dir}`")
        rows = JsonlStore(path, key="id").rows()
        out.append({**c.to_dict(), **summarize_rows(rows, method=method, n_boot=n_boot,
                                                    seed=seed)})
    summary = {"judge_method": method, "n_boot": n_boot, "conditions": out}
    atomic_write_json(Path(run_dir) / SUMMARY_FILE, summary)
    return summary


def run_sweep(cfg: SweepConfig, *, lm: LoadedModel | None = None,
              shard: str | tuple[int, int] | None = None) -> dict[str, Any] | None:
    """Generate, judge, summarize and plot a sweep in ``cfg.out``; returns the summary.

    With ``shard`` ``"i/n"`` only that shard's generations are made and None is returned (see the
    module docstring); the same call without it finishes the run.
    """
    from afscope.steer.plots import plot_run

    run_dir = Path(cfg.out)
    part = parse_shard(shard)
    if part is not None and cfg.skip_generation:
        raise ConfigError("steer sweep: --skip-generation has nothing to shard; run it as one "
                          "process")
    config = cfg.to_dict() if part is None else {**cfg.to_dict(), "shard": f"{part[0]}/{part[1]}"}
    with start_run("steer sweep", config, run_dir, manifest_name=manifest_name(part)) as run:
        with run.timer("load_model"):
            lm = lm if lm is not None else load_model(cfg.model, dtype=cfg.dtype,
                                                       device=cfg.device)
        run.add_model("model", lm.info.to_dict())
        vectors = _load_vectors(cfg, lm, run)
        conds = plan_conditions(vectors, cfg.layers, cfg.alphas, lm.info.n_layers)
        prompts = sweep_prompts(cfg)
        run.add_dataset("prompts", {"path": str(cfg.prompts) if cfg.prompts else None,
                                    "n": len(prompts),
                                    "content_hash": sha256_json([p["prompt"] for p in prompts])})
        if part is not None:
            with run.timer("generate"):
                written = generate_conditions(lm, conds, vectors, prompts, cfg, run_dir, part)
            run.add_output("generated", sum(written.values()))
            return None
        atomic_write_json(run_dir / CONFIG_FILE, {
            **cfg.to_dict(), "conditions": [c.to_dict() for c in conds],
            "model_info": lm.info.to_dict(), "prompt_ids": [p["prompt_id"] for p in prompts]})
        if cfg.skip_generation:
            _check_generated(run_dir, conds, len(prompts) * cfg.n_generations)
        else:
            with run.timer("generate"):
                written = generate_conditions(lm, conds, vectors, prompts, cfg, run_dir)
            run.add_output("generated", sum(written.values()))
        if not cfg.skip_judging:
            with run.timer("judge"):
                run.add_output("judge", judge_conditions(run_dir, conds, cfg, run))
        with run.timer("summarize"):
            summary = summarize_run(run_dir, conds, cfg.judge_method, n_boot=cfg.n_boot,
                                    seed=cfg.seed)
        with run.timer("plot"):
            run.add_output("plots", [p.name for p in plot_run(run_dir, summary)])
        run.add_output("conditions", len(conds))
    return summary


def run_judge(cfg: SteerJudgeConfig) -> dict[str, Any]:
    """``afscope steer judge RUN_DIR``: (re-)judge a sweep's generations, re-summarize, re-plot."""
    from afscope.steer.plots import plot_run

    if cfg.run_dir is None:
        raise ConfigError("steer judge: give the sweep RUN_DIR")
    run_dir = Path(cfg.run_dir)
    saved, conds = read_conditions(run_dir)
    with start_run("steer judge", cfg.to_dict(), run_dir, manifest_name="manifest.judge.json"
                   ) as run:
        if cfg.overwrite and (run_dir / JUDGED_DIR).exists():
            shutil.rmtree(run_dir / JUDGED_DIR)
        _check_generated(run_dir, conds, len(saved.get("prompt_ids", [])) *
                         int(saved.get("n_generations", 1)))
        with run.timer("judge"):
            run.add_output("judge", judge_conditions(run_dir, conds, cfg, run))
        summary = summarize_run(run_dir, conds, cfg.judge_method, n_boot=cfg.n_boot,
                                seed=cfg.seed)
        run.add_output("plots", [p.name for p in plot_run(run_dir, summary)])
    return summary


def run_plot(run_dir: str | Path) -> list[Path]:
    """``afscope steer plot RUN_DIR``: redraw the plots from ``summary.json`` and judged rows."""
    from afscope.steer.plots import plot_run

    run_dir = Path(run_dir)
    summary = read_json_object(run_dir / SUMMARY_FILE, "a judged steer sweep run directory")
    with start_run("steer plot", {"run_dir": str(run_dir)}, run_dir,
                   manifest_name="manifest.plot.json") as run:
        paths = plot_run(run_dir, summary)
        run.add_output("plots", [p.name for p in paths])
    return paths
