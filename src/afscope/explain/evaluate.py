"""``afscope explain eval``: trained explainers against baselines and controls, in one table.

Conditions (rows of the table), on the held-out ``test.jsonl`` of each task folder:

* ``trained``: the LoRA explainer with the real vectors;
* ``zero_shot``: the same base model with the adapter switched off (``disable_adapter``), same
  prompt; ``few_shot``: the same, with ``few_shot_k`` training examples of the same task and
  question type as prior turns (their vectors injected too);
* ``majority``: the most common training answer of the example's task and question type (what
  a constant predictor scores: the floor every other row must clear when labels are skewed);
* ``nearest_neighbour``: the answer of the training example whose vector has the highest cosine
  similarity with the test vector, or, without vectors (context ablation), whose prompt text is
  nearest in MiniLM embedding (no generation);
* ``projector_readout`` (token questions): no language model at all -- the explainer's
  vocabulary tokens nearest (cosine) to the projected vector, written as a token answer. It
  scores what the projector alone carries (with a token lens, :mod:`afscope.explain.lens`, often
  a lot), so the trained row above it means the language model adds to the map, below it that
  training has not yet learned to name what it is shown;
* controls of the trained explainer on vector tasks: ``no_vector`` (placeholders left as plain
  tokens), ``shuffled_vector`` (each example gets another example's vectors: a seeded derangement)
  and ``random_vector`` (seeded Gaussian vectors). If the trained row does not beat these, the
  explainer is not reading the activation.

Several explainers (e.g. one trained on the target itself, one on the other embedded model) give a
self vs cross-model table. Generation is the batched engine (:func:`afscope.generate.generate`)
with the continuous tokens injected at the prefill. Every prediction is written to
``predictions/<explainer>/<condition>.jsonl``; ``metrics.json`` holds the table (each metric with
its bootstrap CI over held-out units, split by changed/unchanged), example explanations and the
training curves.

Explainers whose training runs differ only in their seed are also scored together, as one more
row per condition named ``<explainer> (seeds a,b,..)``: every seed's answers on a unit stay in that
unit's resample, so the interval holds both the seed-to-seed spread and the choice of test units,
and a claim does not rest on one lucky seed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from afscope.errors import ConfigError
from afscope.explain.config import ExplainEvalConfig
from afscope.explain.encode import Encoded, encode_examples, vector_batch
from afscope.explain.inject import find_projector, inject
from afscope.explain.metrics import max_over_references, score_row, summarize
from afscope.explain.schema import TEST_FILE, Example, padded_reference
from afscope.explain.token_data import read_contexts
from afscope.explain.train import TRAIN_LOG, load_explainer, load_tasks, training_subset
from afscope.fileio import atomic_write_json, atomic_write_text
from afscope.generate import GenerationParams, generate
from afscope.organism.train import base_model_name
from afscope.runs import MANIFEST, start_run

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
PREDICTIONS_DIR = "predictions"
FORMAT_VERSION = 1
KIND = "afscope_explain_eval"
VECTOR_CONTROLS = ("no_vector", "shuffled_vector", "random_vector")
N_EXAMPLES_SHOWN = 6
JUDGE_PROMPT = ("Two descriptions of the same sparse-autoencoder feature are given. Rate how "
                "similar their meanings are, from 1 (unrelated) to 5 (the same meaning). Reply with "
                "the number only.\n\nDescription A: {a}\n\nDescription B: {b}")
_SCORE = re.compile(r"^\s*([1-5])\s*\.?\s*$")


def parse_judge_score(text: str) -> int | None:
    """The judge's 1-5 score when the reply is exactly one digit (a period allowed), else None."""
    m = _SCORE.match(text or "")
    return int(m.group(1)) if m else None


def _has_vectors(examples: Sequence[Example]) -> bool:
    return any(e.vectors for e in examples)


def limit_per_task(examples: Sequence[Example], n: int | None) -> list[Example]:
    """The first ``n`` examples of each task (file order); all when ``n`` is None."""
    if n is None:
        return list(examples)
    seen: Counter[str] = Counter()
    out = []
    for e in examples:
        if seen[e.task] < n:
            out.append(e)
            seen[e.task] += 1
    return out


def few_shot_examples(test: Sequence[Example], train: Sequence[Example], k: int, seed: int
                      ) -> list[Example]:
    """Each test example with ``k`` seeded training demonstrations of its task and question type
    as prior user/assistant turns (system prompt first, demos, then the question)."""
    rng = random.Random(seed)
    pools: dict[tuple[str, str], list[Example]] = {}
    for e in train:
        pools.setdefault((e.task, e.question_type), []).append(e)
    out = []
    for e in test:
        pool = pools.get((e.task, e.question_type), [])
        demos = rng.sample(pool, min(k, len(pool)))
        system = [m for m in e.chat() if m["role"] == "system"][:1]
        turns: list[dict[str, str]] = []
        refs = []
        for d in demos:
            turns += [m for m in d.chat() if m["role"] == "user"]
            turns.append({"role": "assistant", "content": d.answer})
            refs += [v.model_dump() for v in d.vectors]
        turns += [m for m in e.chat() if m["role"] != "system"]
        refs += [v.model_dump() for v in e.vectors]
        out.append(Example.model_validate({**e.model_dump(), "messages": [*system, *turns],
                                           "vectors": refs}))
    return out


def _prompt_text(e: Example) -> str:
    return "\n".join(m.content for m in e.messages if m.role != "system")


def nearest_neighbour(test: Sequence[Example], train: Sequence[Example],
                      vectors: dict[str, torch.Tensor], embed: Any = None) -> list[str | None]:
    """The answer of the most similar training example of the same task and question type: by
    the cosine of its vector, or, for examples without vectors (context ablation), of its
    prompt's text embedding (``embed``: texts -> unit-norm ``(n, d)``, e.g. MiniLM) -- the text
    baseline an explainer reading the scenario must beat. None where neither applies."""
    texts: dict[str, np.ndarray] = {}
    if embed is not None:
        todo = sorted({_prompt_text(e) for e in [*test, *train] if not e.vectors})
        texts = dict(zip(todo, embed(todo))) if todo else {}

    def unit(e: Example) -> np.ndarray:
        if not e.vectors:
            return texts[_prompt_text(e)]
        v = vectors[e.vectors[0].key].float()
        return (v / v.norm().clamp_min(1e-8)).numpy()

    pools: dict[tuple[str, str, bool], list[Example]] = {}
    for t in train:
        pools.setdefault((t.task, t.question_type, bool(t.vectors)), []).append(t)
    mats: dict[tuple[str, str, bool], np.ndarray] = {}  # each pool's unit rows, built once
    preds: list[str | None] = []
    for e in test:
        key = (e.task, e.question_type, bool(e.vectors))
        pool = pools.get(key)
        if not pool or (not e.vectors and not texts):
            preds.append(None)
            continue
        if key not in mats:
            mats[key] = np.stack([unit(t) for t in pool])
        preds.append(pool[int(np.argmax(mats[key] @ unit(e)))].answer)
    return preds


def majority_answers(test: Sequence[Example], train: Sequence[Example]) -> list[str | None]:
    """The most common training answer of each test example's (task, question type); ties go to
    the alphabetically first answer; None when the training set has none of that kind."""
    counts: dict[tuple[str, str], Counter[str]] = {}
    for t in train:
        counts.setdefault((t.task, t.question_type), Counter())[t.answer] += 1
    best = {k: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for k, c in counts.items()}
    return [best.get((e.task, e.question_type)) for e in test]


def projector_readout(lm: Any, test: Sequence[Example], vectors: dict[str, torch.Tensor],
                      k: int = 3) -> list[str | None]:
    """Per token question (``fires_on``/``promotes``) with a vector, the ``k`` distinct usable
    tokens of the explainer whose input embeddings are most cosine-similar to the projected
    vector, as an answer sentence; None for the other examples."""
    from afscope.explain.answers import tokens_sentence
    from afscope.explain.metrics import TOKEN_TYPES
    from afscope.features.tokens import TokenNames, top_names

    todo = [i for i, e in enumerate(test) if e.question_type in TOKEN_TYPES and e.vectors]
    preds: list[str | None] = [None] * len(test)
    if not todo:
        return preds
    projector = find_projector(lm.model)
    emb = lm.model.get_input_embeddings().weight.detach().float().cpu()
    emb = emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    names = TokenNames(lm.tokenizer)
    refs = [test[i].vectors[0] for i in todo]
    with torch.no_grad():
        v = torch.stack([vectors[r.key].float() for r in refs])
        if projector is not None:
            v = projector(v, torch.tensor([r.layer for r in refs])).float().cpu()
        v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        picked = [t for part in torch.split(v, 64) for t in top_names(part @ emb.T, names, k=k)]
    for i, tokens in zip(todo, picked):
        preds[i] = tokens_sentence(test[i].question_type, tokens) if tokens else None
    return preds


def control_rows(rows: Sequence[Encoded], kind: str, vectors: dict[str, torch.Tensor], seed: int
                 ) -> tuple[list[Encoded], dict[str, torch.Tensor]]:
    """The vector controls of ``rows`` (all with vectors): ``no_vector``, ``shuffled_vector``
    (row i gets the vectors of row perm[i+1]: no row keeps its own) or ``random_vector``."""
    if kind == "no_vector":
        return [dataclasses.replace(r, positions=[], keys=[], layers=[]) for r in rows], vectors
    if kind == "shuffled_vector":
        perm = list(range(len(rows)))
        random.Random(seed).shuffle(perm)
        donor = {perm[i]: perm[(i + 1) % len(perm)] for i in range(len(perm))}
        out = []
        for i, r in enumerate(rows):
            d = rows[donor[i]]
            keys = [d.keys[j % len(d.keys)] for j in range(len(r.keys))]
            layers = [d.layers[j % len(d.layers)] for j in range(len(r.layers))]
            out.append(dataclasses.replace(r, keys=keys, layers=layers))
        return out, vectors
    if kind == "random_vector":
        g = torch.Generator().manual_seed(seed)
        width = next(iter(vectors.values())).shape[0]
        extra = dict(vectors)
        out = []
        for i, r in enumerate(rows):
            keys = []
            for j in range(len(r.keys)):
                key = f"random:{i}:{j}"
                extra[key] = torch.randn(width, generator=g)
                keys.append(key)
            out.append(dataclasses.replace(r, keys=keys))
        return out, extra
    raise ConfigError(f"unknown vector control {kind!r}")


def explain_generate(lm: Any, meta: dict[str, Any], rows: Sequence[Encoded],
                     vectors: dict[str, torch.Tensor], *, max_tokens: int, batch_size: int,
                     description: str | None = None) -> list[str]:
    """Greedy explanations of encoded prompts, the vectors injected at their placeholders."""

    def batch_context(chunk: Sequence[int], attention: torch.Tensor) -> Any:
        batch_rows = [rows[i] for i in chunk]
        T = attention.shape[1]
        starts = (T - attention.sum(dim=1)).tolist()
        vb = vector_batch(batch_rows, vectors, starts) if vectors else None
        return inject(lm.model, vb, mode=meta["mode"], inject_layer=meta["inject_layer"],
                      embed_norm=meta["embed_norm"], seq_len=T)

    gens = generate(lm.model, lm.tokenizer, [r.prompt for r in rows],
                    GenerationParams(max_tokens=max_tokens, temperature=0.0),
                    batch_size=batch_size, description=description, batch_context=batch_context)
    return [g.text for g in gens]


def _relation(explainer_model: str, targets: Sequence[str]) -> str:
    """``self`` when the explainer and every target share a base model (an organism explained by
    its base, or by itself through ``--base-adapter``: the explainer's name says which)."""
    bases = {base_model_name(t) for t in targets if t}
    if not bases:
        return "unknown"
    return "self" if bases == {base_model_name(explainer_model)} else "cross"


def _score_descriptions(rows: list[dict[str, Any]], cfg: ExplainEvalConfig, backend: Any) -> None:
    desc = [r for r in rows if r["question_type"] == "feature_description"]
    if not desc:
        return
    if cfg.embed_similarity:
        from afscope.models.embedding import embed_texts

        texts = sorted({r["prediction"] or " " for r in desc} |
                       {d for r in desc for d in r["reference"]["descriptions"]})
        emb = dict(zip(texts, embed_texts(texts)))
        for r in desc:
            p = emb[r["prediction"] or " "]
            r["embed_similarity"] = max(float(np.dot(p, emb[d]))
                                        for d in r["reference"]["descriptions"])
    if backend is not None:
        pairs = [(r, d) for r in desc for d in r["reference"]["descriptions"]]
        comps = backend.complete([JUDGE_PROMPT.format(a=d, b=r["prediction"] or "(empty)")
                                  for r, d in pairs])
        scores: dict[str, list[int | None]] = {}
        for (r, _), c in zip(pairs, comps):
            scores.setdefault(r["id"], []).append(parse_judge_score(c.text))
        for r in desc:
            r["judge_score"] = max_over_references(scores.get(r["id"], []))


def _score_faithfulness(rows: list[dict[str, Any]], contexts: dict[str, list[dict[str, Any]]],
                        cfg: ExplainEvalConfig) -> None:
    """``faithfulness`` of each feature row that has held-out contexts (``contexts``: example id
    -> contexts): the token AUROC of a token answer's parsed names, the embedding AUROC of a free
    description (:mod:`afscope.features.faithfulness`)."""
    from afscope.explain.answers import parse_tokens
    from afscope.explain.metrics import TOKEN_TYPES
    from afscope.features.faithfulness import embedding_auroc, token_auroc

    embed = None
    for r in rows:
        ctx = contexts.get(r["id"])
        if not ctx:
            continue
        if r["question_type"] in TOKEN_TYPES:
            r["faithfulness"] = token_auroc(parse_tokens(r["question_type"], r["prediction"]),
                                            ctx)
        elif r["question_type"] == "feature_description" and cfg.embed_similarity:
            if embed is None:
                from afscope.models.embedding import embed_texts as embed
            r["faithfulness"] = embedding_auroc(r["prediction"], ctx, embed)


def _score_simulation(rows: list[dict[str, Any]], contexts: dict[str, list[dict[str, Any]]],
                      backend: Any, path: Path, cfg: ExplainEvalConfig) -> None:
    """``simulation`` of each feature row with held-out contexts: the correlation of an LLM
    simulator's predicted activations, given only the prediction as the description, with the
    real ones (:mod:`afscope.features.simulate`; resumable in ``path``)."""
    from afscope.features.simulate import simulate
    from afscope.rows import JsonlStore

    feats = [r for r in rows if r["task"] == "features" and contexts.get(r["id"])]
    store = JsonlStore(path, key="id", meta={"seed": cfg.seed, "simulator": backend.describe()})
    simulate([(r["id"], r["prediction"], contexts[r["id"]]) for r in feats], backend, store,
             seed=cfg.seed, batch_size=cfg.batch_size)
    done = {s["id"]: s for s in store.rows()}
    for r in feats:
        r["simulation"] = (done.get(r["id"]) or {}).get("correlation")


def write_predictions(path: str | Path, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Score ``rows`` (:func:`~afscope.explain.metrics.score_row`) and write them to ``path``, one
    JSON object per line, atomically; returns the scored rows.

    A row is ``id, task, question_type, answer, prediction, reference, changed`` (plus
    ``judge_score`` when a judge ran) and the per-row scores, every one present in every row;
    ``reference`` is padded to :data:`~afscope.explain.schema.REFERENCE_KEYS`.
    """
    scored = [score_row(r) for r in rows]
    atomic_write_text(Path(path), "".join(
        json.dumps({**r, "reference": padded_reference(r["reference"])}, ensure_ascii=False) + "\n"
        for r in scored))
    return scored


def _label(run_dir: Path, model: str, used: set[str]) -> str:
    model = Path(model).name if ("/" in model or "\\" in model) else model
    label = model if model not in used else f"{model}@{run_dir.name}"
    used.add(label)
    return label


#: train-config keys that do not change what an explainer learns (besides ``seed``): runs that
#: differ only in these and the seed are pooled.
_NOT_METHOD = ("seed", "out", "resume", "device", "save_total_limit")


def _method_key(run_dir: Path) -> str | None:
    """The run's training config without its seed and bookkeeping (:data:`_NOT_METHOD`), as a
    canonical string; None when the run has no manifest to read it from."""
    path = run_dir / MANIFEST
    if not path.is_file():
        return None
    config = json.loads(path.read_text(encoding="utf-8")).get("config")
    if not isinstance(config, dict):
        return None
    return json.dumps({k: v for k, v in config.items() if k not in _NOT_METHOD}, sort_keys=True,
                      default=str)


def seed_groups(members: Sequence[tuple[str, str | None, int]]) -> list[list[int]]:
    """Indices of ``(label, method key, seed)`` members that share a method key and differ in
    seed, one list per group of two or more, in input order (a repeated seed is left out)."""
    groups: dict[str, list[int]] = {}
    for i, (_, key, seed) in enumerate(members):
        if key is None:
            continue
        g = groups.setdefault(key, [])
        if seed not in {members[j][2] for j in g}:
            g.append(i)
    return [g for g in groups.values() if len(g) > 1]


def _pooled(group: list[dict[str, Any]], scored: dict[str, dict[str, list[dict[str, Any]]]],
            conditions: Sequence[str], cfg: ExplainEvalConfig
            ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The explainer entry and table rows of one seed group: each condition's rows of every member
    summarized together (units resampled with all their seeds' rows)."""
    first = group[0]
    seeds = [e["seed"] for e in group]
    label = f"{first['label']} (seeds {','.join(map(str, seeds))})"
    entry = {**first, "label": label, "run_dir": ",".join(e["run_dir"] for e in group),
             "seed": None, "pooled": [e["label"] for e in group]}
    rows = []
    for cond in conditions:
        both = [r for e in group for r in scored[e["label"]].get(cond, [])]
        rows += _table_rows(label, first["relation"], cond, both, cfg)
    return entry, rows


def _table_rows(label: str, relation: str, cond: str, scored: list[dict[str, Any]],
                cfg: ExplainEvalConfig) -> list[dict[str, Any]]:
    """One metric-table row per task of ``scored`` (one explainer x condition)."""
    out = []
    for task in sorted({r["task"] for r in scored}):
        sub = [r for r in scored if r["task"] == task]
        out.append({"explainer": label, "relation": relation, "condition": cond, "task": task,
                    "n": len(sub), "metrics": summarize(sub, n_boot=cfg.n_boot, seed=cfg.seed)})
    return out


def evaluate_explainers(cfg: ExplainEvalConfig, *, backend: Any = None) -> tuple[Path, dict]:
    """Run every condition for every explainer; write predictions and ``metrics.json``.

    Then a pooled row per condition for each group of explainers that differ only in their seed
    (:func:`seed_groups`)."""
    out = Path(cfg.out)
    table: list[dict[str, Any]] = []
    explainers: list[dict[str, Any]] = []
    shown: list[dict[str, Any]] = []
    curves: dict[str, Any] = {}
    scored_by: dict[str, dict[str, list[dict[str, Any]]]] = {}
    method: dict[str, str | None] = {}
    with start_run("explain eval", cfg.to_dict(), out) as run:
        if (cfg.judge == "llm" or cfg.simulate) and backend is None:
            from afscope.judge.config import default_judge_llm
            from afscope.llm import make_backend

            backend = make_backend(cfg.llm or default_judge_llm())
        used: set[str] = set()
        for run_dir in map(Path, cfg.explainers):
            lm, meta = load_explainer(run_dir, dtype=cfg.dtype, device=cfg.device)
            folders = [Path(p) for p in (cfg.data or meta["data"])]
            test, vectors = load_tasks(folders, TEST_FILE)
            units = {u: c for f in folders for u, c in read_contexts(f).items()}
            contexts = {e.id: units[e.unit] for e in test if e.unit in units}
            train, train_vecs = load_tasks(folders)
            train = training_subset(train, meta)
            vectors = {**train_vecs, **vectors}
            test = limit_per_task(test, cfg.max_examples)
            label = _label(run_dir, meta["model"]["name"], used)
            targets = sorted({str(e.meta.get("model")) for e in test if e.meta.get("model")})
            relation = _relation(meta["model"]["name"], targets)
            explainers.append({"label": label, "run_dir": str(run_dir), "model": meta["model"],
                               "targets": targets, "relation": relation,
                               "tasks": sorted({e.task for e in test}),
                               "seed": meta.get("seed"), "pooled": []})
            method[label] = _method_key(run_dir)
            run.add_model(label, meta["model"])
            if (run_dir / TRAIN_LOG).is_file():
                curves[label] = json.loads((run_dir / TRAIN_LOG).read_text(encoding="utf-8"))
            enc_kw = {"max_length": meta["max_length"], "placeholder": meta["placeholder"]}
            enc, dropped = encode_examples(lm.tokenizer, test, **enc_kw)
            kept = {r.id for r in enc}
            test = [e for e in test if e.id in kept]
            preds: dict[str, dict[str, str | None]] = {}
            for cond in cfg.conditions:
                with run.timer(f"{label}:{cond}"):
                    preds[cond] = _condition(cond, lm, meta, cfg, test, enc, train, vectors,
                                             enc_kw)
            for cond, pmap in preds.items():
                rows = [{"id": e.id, "task": e.task, "question_type": e.question_type,
                         "unit": e.unit, "answer": e.answer, "prediction": pmap[e.id],
                         "reference": e.reference, "changed": e.changed}
                        for e in test if pmap.get(e.id) is not None]
                _score_descriptions(rows, cfg, backend if cfg.judge == "llm" else None)
                _score_faithfulness(rows, contexts, cfg)
                if cfg.simulate:
                    _score_simulation(rows, contexts, backend, out / PREDICTIONS_DIR / label /
                                      f"{cond}.simulation.jsonl", cfg)
                scored = write_predictions(out / PREDICTIONS_DIR / label / f"{cond}.jsonl", rows)
                scored_by.setdefault(label, {})[cond] = scored
                table += _table_rows(label, relation, cond, scored, cfg)
            for task in sorted({e.task for e in test}):
                for e in [x for x in test if x.task == task][:N_EXAMPLES_SHOWN]:
                    user = next(m.content for m in reversed(e.messages) if m.role == "user")
                    shown.append({"explainer": label, "task": task, "id": e.id,
                                  "question_type": e.question_type, "prompt": user[-600:],
                                  "answer": e.answer, "changed": e.changed,
                                  "predictions": {c: preds[c].get(e.id) for c in preds}})
            run.add_output(f"{label}:n_test", len(test))
            run.add_output(f"{label}:n_dropped", dropped)
            del lm  # free the explainer before loading the next one
        members = [(e["label"], method[e["label"]], e["seed"]) for e in explainers]
        for idx in seed_groups(members):
            entry, rows = _pooled([explainers[i] for i in idx], scored_by, cfg.conditions, cfg)
            explainers.append(entry)
            table.extend(rows)
        result = {"kind": KIND, "format_version": FORMAT_VERSION, "explainers": explainers,
                  "conditions": list(cfg.conditions), "table": table, "examples": shown,
                  "train_curves": curves, "judge": cfg.judge,
                  "params": {"max_tokens": cfg.max_tokens, "few_shot_k": cfg.few_shot_k,
                             "n_boot": cfg.n_boot, "seed": cfg.seed}}
        atomic_write_json(out / METRICS_FILE, result)
        run.add_output("metrics", str(out / METRICS_FILE))
    return out, result


def _condition(cond: str, lm: Any, meta: dict[str, Any], cfg: ExplainEvalConfig,
               test: list[Example], enc: list[Encoded], train: list[Example],
               vectors: dict[str, torch.Tensor], enc_kw: dict[str, Any]) -> dict[str, str | None]:
    """Predictions ``{example id: text}`` of one condition (examples it does not apply to are
    left out: controls and nearest neighbour need vectors)."""
    gen_kw = {"max_tokens": cfg.max_tokens, "batch_size": cfg.batch_size,
              "description": f"explain {cond}"}
    if cond == "majority":
        return {e.id: p for e, p in zip(test, majority_answers(test, train)) if p is not None}
    if cond == "nearest_neighbour":
        embed = None
        if not all(e.vectors for e in test):
            from afscope.models.embedding import embed_texts as embed
        nn_preds = nearest_neighbour(test, train, vectors, embed)
        return {e.id: p for e, p in zip(test, nn_preds) if p is not None}
    if cond == "projector_readout":
        readout = projector_readout(lm, test, vectors)
        return {e.id: p for e, p in zip(test, readout) if p is not None}
    if cond in VECTOR_CONTROLS:
        rows = [r for r in enc if r.keys]
        if not rows:
            return {}
        rows, vecs = control_rows(rows, cond, vectors, cfg.seed)
        texts = explain_generate(lm, meta, rows, vecs, **gen_kw)
        return {r.id: t for r, t in zip(rows, texts)}
    if cond == "trained":
        texts = explain_generate(lm, meta, enc, vectors, **gen_kw)
        return {r.id: t for r, t in zip(enc, texts)}
    if cond in ("zero_shot", "few_shot"):
        rows = enc
        if cond == "few_shot":
            shots = few_shot_examples(test, train, cfg.few_shot_k, cfg.seed)
            kw = {**enc_kw, "max_length": enc_kw["max_length"] * (cfg.few_shot_k + 1)}
            rows, _ = encode_examples(lm.tokenizer, shots, **kw)
        with lm.model.disable_adapter():
            texts = explain_generate(lm, meta, rows, vectors, **gen_kw)
        return {r.id: t for r, t in zip(rows, texts)}
    raise ConfigError(f"unknown condition {cond!r}")


#: the headline metrics of a task in the table: (key in a subset summary, column title).
HEADLINE: dict[str, tuple[tuple[str, str], ...]] = {
    "context_ablation": (("content_match", "content"), ("exact_match", "exact"),
                         ("has_changed_f1", "changed F1"), ("parse_rate", "parsed")),
    "steering": (("content_match", "content"), ("exact_match", "exact"),
                 ("has_changed_f1", "changed F1"), ("parse_rate", "parsed")),
    "features": (("token_f1", "token F1"), ("faithfulness", "faithfulness AUROC"),
                 ("simulation", "simulator corr."),
                 ("judge_similarity", "judge sim"), ("embed_similarity", "embed sim"),
                 ("exact_match", "exact"), ("parse_rate", "parsed")),
}


def metric_value(entry: dict[str, Any] | None) -> tuple[float, float, float] | None:
    """``(value, lo, hi)`` of a summary entry (``mean_ci`` dicts, or the F1 dict with ``f1``)."""
    if not entry:
        return None
    value = entry.get("mean", entry.get("f1"))
    if value is None:
        return None
    return float(value), float(entry.get("lo", value)), float(entry.get("hi", value))


def headline(row: dict[str, Any], subset: str = "all") -> list[tuple[str, tuple | None]]:
    """``[(column title, (value, lo, hi) or None)]`` of one table row's headline metrics."""
    sub = row["metrics"]["subsets"].get(subset) or {}
    return [(title, metric_value(sub.get(key))) for key, title in HEADLINE[row["task"]]]
