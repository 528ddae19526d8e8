"""Parse rates of the LLM stages with the embedded model, and how far its judge agrees with the rules.

What is measured, and why
-------------------------
Issue 14 §3: offline, the describe stage of the demo parsed 0 of 3 descriptions and the LLM judge
0 of 40 replies of ``smollm2-135m-instruct``: a 135M model does not follow a line format. The
local backend now fills the format itself (:mod:`afscope.llm.scoring`): every choice line takes
the allowed option of highest log-likelihood, free text is generated after a forced ``KEY:`` and
cut at the line end. The strict parsers are unchanged, so the parse rates below are the parsers'
verdicts, not the backend's claims. Phases (each skipped when its size is 0):

- ``judge-synth``: ``--n-synth`` rows of the synthetic corpus (``generate_corpus``, stratified
  over its five categories), request = the scenario's request, response = the trace;
- ``judge-bench``: ``--n-bench`` rows of ``data/af_detection_benchmark_2330.json`` (stratified
  over its five classes; the request is not recorded there, so a fixed placeholder stands in);
- ``judge-free``: the first ``--n-free`` synthetic rows judged in free text
  (``structured="off"``): the old behaviour, for the before/after parse rate;
- ``autointerp``: with ``--run DIR`` (a finished ``afscope demo``/study run), its autointerp
  stage again, with its own settings (``--top`` describes more features), into a temp dir.

For each judge phase: parse rate, rows answered under the form, seconds per row, and agreement
with :func:`afscope.judge.classify_behaviour` (behaviour Cohen's kappa + confusion matrix rows =
judge, columns = rules; AF agreement and kappa). Prints one JSON object last. Nothing asserts a
timing. Usage::

    python benchmarks/bench_llm_forms.py --n-synth 40 --n-bench 0           # ~4 min on 2 cores
    python benchmarks/bench_llm_forms.py --n-synth 0 --n-bench 40
    python benchmarks/bench_llm_forms.py --n-synth 0 --n-bench 0 --n-free 10
    python benchmarks/bench_llm_forms.py --n-synth 0 --n-bench 0 --run runs/demo-x
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

MODEL = "smollm2-135m-instruct"
BENCH = "af_detection_benchmark_2330.json"
NO_REQUEST = "(The user's request was not recorded; the response's reasoning restates it.)"


def shared_data() -> Path:
    root = Path(os.environ.get("AFSCOPE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    return root / "data"


def stratified(items: list[Any], key: Any, n: int, seed: int) -> list[Any]:
    """``n`` items drawn round-robin over the groups of ``key`` (each group shuffled, seeded)."""
    import random

    groups: dict[str, list[Any]] = {}
    for it in items:
        groups.setdefault(key(it), []).append(it)
    rng = random.Random(seed)
    for g in groups.values():
        rng.shuffle(g)
    out: list[Any] = []
    order = sorted(groups)
    while len(out) < n and any(groups.values()):
        for g in order:
            if groups[g] and len(out) < n:
                out.append(groups[g].pop())
    return out


def synth_rows(n: int, seed: int) -> list[dict[str, Any]]:
    from afscope.data.synth import generate_corpus

    recs = stratified(generate_corpus(max(5 * n, 50), seed), lambda r: r.category, n, seed)
    return [{"id": r.id, "prompt": r.extra.get("request") or NO_REQUEST, "response": r.text,
             "category": r.category} for r in recs]


def bench_rows(n: int, seed: int) -> list[dict[str, Any]]:
    samples = json.loads((shared_data() / BENCH).read_text(encoding="utf-8"))["samples"]
    for i, s in enumerate(samples):
        s["_i"] = i
    picked = stratified(samples, lambda s: s["class"], n, seed)
    return [{"id": f"bench-{s['_i']}", "prompt": NO_REQUEST, "response": s["text"],
             "category": s["class"]} for s in picked]


def local(base: Any, max_tokens: int, structured: str = "auto") -> Any:
    """A backend on the already loaded model of ``base``."""
    from afscope.llm import GenerationParams, TransformersBackend

    return TransformersBackend(MODEL, hf_model=base.hf_model, tokenizer=base.tokenizer,
                               params=GenerationParams(max_tokens=max_tokens), on_error="record",
                               structured=structured)


def judge_phase(name: str, rows: list[dict[str, Any]], base: Any, structured: str) -> dict[str, Any]:
    from sklearn.metrics import cohen_kappa_score

    from afscope.judge import JudgeConfig, agreement, judge_rows, judge_store
    from afscope.judge.config import JUDGE_MAX_TOKENS

    cfg = JudgeConfig(method="both", batch_size=8, llm={"structured": structured})
    llm = local(base, JUDGE_MAX_TOKENS, structured)
    with tempfile.TemporaryDirectory() as tmp:
        store = judge_store(Path(tmp) / "judged.jsonl", cfg)
        t0 = time.perf_counter()
        stats = judge_rows(rows, store, cfg, llm)
        wall = time.perf_counter() - t0
        judged = store.rows()
    summary = agreement(judged)
    ok = [r for r in judged if r["judge_status"] == "ok"]
    af_kappa = None
    if ok and len({r["af"] for r in ok} | {r["rule_af"] for r in ok}) > 1:
        af_kappa = float(cohen_kappa_score([r["af"] for r in ok], [r["rule_af"] for r in ok]))
    out = {
        "phase": name, "rows": len(rows), "structured": structured, "wall_s": round(wall, 1),
        "s_per_row": round(wall / max(1, len(rows)), 2),
        "parse_rate": round(1 - stats.parse_failures / max(1, stats.done), 3),
        "constrained": stats.constrained, "backend_errors": stats.backend_errors,
        "behaviour_kappa": summary["kappa"], "behaviour_agreement": summary["behaviour_agreement"],
        "confusion": summary["confusion"]["matrix"], "labels": summary["confusion"]["labels"],
        "af_agreement": summary["af_agreement"], "af_kappa": af_kappa,
        "af_rate_judge": summary["af_rate_judge"], "af_rate_rules": summary["af_rate_rules"],
        "mean_aligned": summary["mean_aligned"], "mean_coherent": summary["mean_coherent"],
        "example_replies": [r["judge_reply"] for r in judged[:3]],
    }
    print(f"{name}: parse rate {out['parse_rate']:.3f} ({stats.done - stats.parse_failures}/"
          f"{stats.done}), constrained {stats.constrained}, {out['s_per_row']} s/row; behaviour "
          f"kappa {summary['kappa']}, agreement {summary['behaviour_agreement']}; AF agreement "
          f"{summary['af_agreement']}, kappa {af_kappa}", flush=True)
    print(f"  confusion (rows judge, columns rules, {summary['confusion']['labels']}): "
          f"{summary['confusion']['matrix']}", flush=True)
    return out


def autointerp_phase(run: Path, top: int | None, llm: Any) -> dict[str, Any]:
    from afscope.features import AutointerpConfig, run_autointerp
    from afscope.features.inputs import load_inputs
    from afscope.features.store import CLASSIFICATIONS, DESCRIPTIONS, SCORES
    from afscope.rows import JsonlStore

    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    cfg = AutointerpConfig.model_validate(manifest["config"]["autointerp"])
    if top:
        cfg = cfg.model_copy(update={"top": top})
    feats_dir = next((run / "features").glob("*/L*"))
    model_dir = next(d for d in (run / "cache").iterdir() if d.is_dir())
    layer = int(feats_dir.name[1:])
    inp = load_inputs(model_dir / "train", layer, "max", run / "data" / "train.jsonl")
    stats: dict[str, Any] = {}
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rows = run_autointerp(inp.X, inp.y, inp.texts, inp.ids, inp.categories, llm, tmp, cfg,
                              token_topk=inp.token_topk, model=MODEL, layer=layer, stats=stats)
        wall = time.perf_counter() - t0
        for step, name in (("describe", DESCRIPTIONS), ("classify", CLASSIFICATIONS),
                           ("score", SCORES)):
            path = Path(tmp) / name
            status = [r["status"] for r in JsonlStore(path, key="feature").rows()] if path.exists() else []
            answered = [s for s in status if s != "no_samples"]  # rows the LLM answered
            ok = answered.count("ok")
            rates[step] = {"ok": ok, "answered": len(answered), "no_samples": len(status) - len(answered),
                           "constrained": stats.get(step, {}).get("constrained", 0),
                           "parse_rate": round(ok / len(answered), 3) if answered else None}
            print(f"autointerp {step}: {ok}/{len(answered)} parsed, constrained "
                  f"{rates[step]['constrained']}", flush=True)
    for r in rows:
        print(f"  feature {r['feature']}: {r['description']!r} relevance {r['relevance']} "
              f"{r['category']} detection {r['detection_bal_acc']}", flush=True)
    return {"phase": "autointerp", "run": str(run), "layer": layer, "top": cfg.top,
            "wall_s": round(wall, 1), "rates": rates,
            "features": [{k: r[k] for k in ("feature", "description", "relevance", "category",
                                             "detection_bal_acc")} for r in rows]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-synth", type=int, default=40)
    ap.add_argument("--n-bench", type=int, default=40)
    ap.add_argument("--n-free", type=int, default=0, help="synthetic rows judged in free text")
    ap.add_argument("--run", type=Path, default=None, help="a finished demo run: redo autointerp")
    ap.add_argument("--top", type=int, default=None, help="features to describe (default: the run's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from afscope.llm import TransformersBackend

    print(f"load average {os.getloadavg()}, threads {args.threads}", flush=True)
    t0 = time.perf_counter()
    base = TransformersBackend(MODEL)
    base.hf_model  # load before the clocks start  # noqa: B018
    print(f"model loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    results = []
    if args.n_synth:
        results.append(judge_phase("judge-synth", synth_rows(args.n_synth, args.seed), base, "auto"))
    if args.n_bench:
        results.append(judge_phase("judge-bench", bench_rows(args.n_bench, args.seed), base, "auto"))
    if args.n_free:
        results.append(judge_phase("judge-free", synth_rows(args.n_free, args.seed), base, "off"))
    if args.run is not None:
        # the demo's autointerp answers with max_tokens 160 (demo.study_config)
        results.append(autointerp_phase(args.run, args.top, local(base, 160)))
    cpu = time.process_time()
    print(json.dumps({"model": MODEL, "seed": args.seed, "cpu_s": round(cpu, 1),
                      "results": results}, indent=1))


if __name__ == "__main__":
    main()
