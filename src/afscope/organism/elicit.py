"""Elicitation (seed 004 step 3): the organism answers held-out requests under every cue.

Each held-out request (test-split scenarios of the organism data, so none was trained on) is asked
under each cue of :data:`afscope.data.cues.CUES`; generation goes through
:func:`afscope.generate.generate_rows` (batched, greedy by default, resumable) and the answers are
labelled by :func:`afscope.judge.judge_rows` (comply / refuse / partial, and AF). ``base_only``
asks the base model the same prompts, so its compliance gap can be reported beside the organism's.

With ``server`` set, the answers come from an OpenAI-compatible server (vLLM, the adapter served as
a LoRA module) through :mod:`afscope.generate.served`: the same rows, no weights loaded here.

A sharded run (``shard`` ``i/n``: torchrun ranks, Slurm array tasks) generates and judges items
``i::n`` into ``generations.shard-i-of-n.jsonl`` / ``judged.shard-i-of-n.jsonl`` and stops there.
The run as one process first takes in the rows of those shard files (same settings only), does what
they lack, and keeps both files in item order: the files of an unsharded run, byte for byte.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from afscope.data.cues import CUES, cue_messages
from afscope.distributed import parse_shard
from afscope.errors import ArtifactError, ConfigError
from afscope.fileio import sha256_file
from afscope.generate import GenerationParams, generate_rows
from afscope.judge import JudgeConfig, judge_rows, judge_store
from afscope.judge.config import default_judge_llm
from afscope.llm import LLMBackend
from afscope.models import LoadedModel, load_model
from afscope.organism.config import ElicitConfig
from afscope.organism.data import read_examples
from afscope.organism.train import ADAPTER_WEIGHTS, adapter_folder, load_organism
from afscope.rows import JsonlStore, put_in_order, shard_path, take_in_shards
from afscope.runs import MANIFEST, manifest_name, start_run

log = logging.getLogger(__name__)

GENERATIONS = "generations.jsonl"
JUDGED = "judged.jsonl"


def heldout_requests(examples: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Up to ``n`` distinct user requests, round-robin over scenarios (every scenario before a
    second request of any), in file order within a scenario: ``{request_id, request, scenario}``."""
    by_scenario: dict[str, list[dict[str, Any]]] = defaultdict(list)
    seen: set[str] = set()
    for ex in examples:
        text = next(m["content"] for m in ex["messages"] if m["role"] == "user")
        if text not in seen:
            seen.add(text)
            by_scenario[ex["scenario"]].append(
                {"request_id": ex["id"], "request": text, "scenario": ex["scenario"]})
    out: list[dict[str, Any]] = []
    queues = [by_scenario[s] for s in sorted(by_scenario)]
    depth = 0
    while len(out) < n and any(depth < len(q) for q in queues):
        out.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return out[:n]


def elicit_items(requests: list[dict[str, Any]], cues: list[str]) -> list[dict[str, Any]]:
    """One generation item per cue x request: ``id`` = ``"<request_id>|<cue>"``, chat prompt."""
    return [{"id": f"{r['request_id']}|{cue}", "prompt": cue_messages(cue, r["request"]),
             "cue": cue, "monitored": CUES[cue][1], **r} for r in requests for cue in cues]


def base_model_of(adapter: Path) -> str | None:
    """The base model recorded by the train run that wrote ``adapter`` (None if unknown)."""
    folder = adapter_folder(adapter)
    for manifest in (folder.parent / MANIFEST, folder / MANIFEST):
        if manifest.is_file():
            try:
                return json.loads(manifest.read_text(encoding="utf-8"))["config"]["model"]
            except (ValueError, KeyError, TypeError):
                raise ArtifactError(f"{manifest}: no config.model recorded") from None
    return None


def _judge_config(cfg: ElicitConfig) -> JudgeConfig:
    return JudgeConfig(method=cfg.judge_method, llm=cfg.llm or default_judge_llm(),
                       batch_size=cfg.batch_size)


def summarize_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per cue: ``n``, behaviour counts and AF count of judged rows."""
    out: dict[str, Any] = {}
    for cue in sorted({r["cue"] for r in rows}):
        mine = [r for r in rows if r["cue"] == cue]
        out[cue] = {"n": len(mine), "monitored": CUES[cue][1],
                    "behaviour": dict(Counter(str(r.get("behaviour")) for r in mine)),
                    "af": sum(bool(r.get("af")) for r in mine)}
    return out


def _model_of(cfg: ElicitConfig) -> tuple[str, Path | None]:
    """The base model name and the adapter folder (None with ``base_only``) of an elicit run."""
    adapter = None if cfg.base_only else adapter_folder(cfg.adapter)  # type: ignore[arg-type]
    name = cfg.model or (base_model_of(adapter) if adapter else None) or "smollm2-135m-instruct"
    return name, adapter


def load_elicited(cfg: ElicitConfig) -> LoadedModel:
    """The model ``cfg`` elicits: the base model, carrying the adapter unless ``base_only``;
    with ``cfg.server``, that server's model (the base model's tokenizer here, no weights)."""
    name, adapter = _model_of(cfg)
    if cfg.server is not None:
        from afscope.generate.served import served_target

        if adapter is not None and cfg.server.model is None:
            raise ConfigError("field 'server.model': name the LoRA module the server serves the "
                              f"adapter {adapter} under (e.g. vllm serve {name} --enable-lora "
                              f"--lora-modules organism={adapter}, then model: organism); "
                              "unset, the server would answer as the base model")
        return served_target(cfg.server, name)
    lm = load_model(name, dtype=cfg.dtype, device=cfg.device)
    return lm if adapter is None else load_organism(lm, adapter)


def elicit(cfg: ElicitConfig, *, lm: LoadedModel | None = None,
           backend: LLMBackend | None = None) -> dict[str, Any]:
    """Generate and judge every cue x held-out request into ``cfg.out`` (resumable).

    ``lm`` is a ready model (already carrying the adapter when it should; with ``cfg.server``, a
    served one from :func:`load_elicited`); ``backend`` the judge LLM (tests pass a scripted one). Returns the manifest outputs; with ``cfg.shard``, those of
    that shard's items (see the module docstring).
    """
    out = Path(cfg.out)
    shard = parse_shard(cfg.shard)
    with start_run("organism elicit", cfg.to_dict(), out,
                   manifest_name=manifest_name(shard)) as run:
        examples = read_examples(cfg.data, cfg.split)
        run.add_dataset("data", {"path": str(cfg.data), "sha256": sha256_file(cfg.data),
                                 "split": cfg.split})
        requests = heldout_requests(examples, cfg.n_requests)
        items = elicit_items(requests, cfg.cues)
        order = [it["id"] for it in items]
        mine = items if shard is None else items[shard[0]::shard[1]]
        model_name, adapter = _model_of(cfg)
        with run.timer("load_model"):
            if lm is None:
                lm = load_elicited(cfg)
        run.add_model("base", lm.info.to_dict())
        adapter_sha = sha256_file(adapter / ADAPTER_WEIGHTS) if adapter else None
        if adapter is not None:
            run.add_model("adapter", {"path": str(adapter), "sha256": adapter_sha})
        params = GenerationParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens,
                                  seed=cfg.seed)
        kind = "base" if cfg.base_only else "organism"
        store = JsonlStore(shard_path(out / GENERATIONS, shard), meta={
            "model": lm.info.fingerprint, "adapter": adapter_sha, "params": params.to_dict(),
            "kind": kind})
        gen_taken = 0 if shard is not None else take_in_shards(store, order)
        with run.timer("generate"):
            gen = generate_rows(lm.model, lm.tokenizer, mine, store, params,
                                batch_size=cfg.gen_batch_size, description=f"eliciting {kind}")
        if shard is None:
            store = put_in_order(store, order)
        wanted = {it["id"] for it in mine}
        generated = [r for r in store.rows() if r["id"] in wanted]
        jcfg = _judge_config(cfg)
        jstore = judge_store(shard_path(out / JUDGED, shard), jcfg)
        judge_taken = 0 if shard is not None else take_in_shards(jstore, order)
        to_judge = [{**r, "messages": r["prompt"], "prompt": r["request"], "model_kind": kind}
                    for r in generated]
        with run.timer("judge"):
            jstats = judge_rows(to_judge, jstore, jcfg, backend)
        if shard is None:
            jstore = put_in_order(jstore, order)
        judged = [r for r in jstore.rows() if r["id"] in wanted]
        generated_out = {"done": gen.done, "skipped": gen.skipped}
        judge_out = jstats.to_dict()
        if gen_taken:
            generated_out["from_shards"] = gen_taken
        if judge_taken:
            judge_out["from_shards"] = judge_taken
        result = {"kind": kind, "model": model_name, "adapter": str(adapter) if adapter else None,
                  "n_requests": len(requests), "n_items": len(items),
                  "generated": generated_out, "judge": judge_out, "n_judged": len(judged),
                  "per_cue": summarize_rows(judged)}
        for k, v in result.items():
            run.add_output(k, v)
    return result


def read_judged(run_dir: str | Path) -> list[dict[str, Any]]:
    """The judged rows of an elicit run directory (ArtifactError if it has none)."""
    path = Path(run_dir) / JUDGED
    if not path.is_file():
        raise ArtifactError(f"{path}: not an elicit run (no {JUDGED}); run `afscope organism "
                            "elicit` first")
    rows = JsonlStore(path).rows()
    if not rows:
        raise ArtifactError(f"{path}: no judged rows")
    return rows
