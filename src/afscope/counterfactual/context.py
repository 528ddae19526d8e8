"""Context ablation (seed 000, task 3): does removing the monitoring cue change the behaviour?

Each scenario is answered greedily under the MONITORED and the UNMONITORED system prompt; both
answers get a behaviour label (comply / refuse / partial) from :mod:`afscope.judge`, and
``changed`` says whether the labels differ. Records follow seed 000's schema (introspective-interp's
``HintAttributionDataset``: the monitored condition is the "hint", the unmonitored one the
"original") plus afscope's fields; see :data:`~afscope.counterfactual.schema.CONTEXT_FIELDS`. The
seed's prediction fields hold the behaviour labels and the answers are in ``response_*``.

>>> from afscope.counterfactual import ContextConfig, build_context_dataset     # doctest: +SKIP
>>> res = build_context_dataset(ContextConfig(n=50, out="runs/cf"))
>>> res.stats["changed_rate"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from afscope.counterfactual.config import ContextConfig
from afscope.counterfactual.pipeline import (
    BuildResult,
    check_row,
    finish,
    generate_all,
    label_all,
    load_target,
    my_items,
    shard_of,
)
from afscope.counterfactual.scenarios import Scenario, load_scenarios, scenarios_info
from afscope.counterfactual.schema import GENERATIONS_FILE, behaviour_changed
from afscope.generate import render_prompt
from afscope.llm.config import ServerConfig
from afscope.models import LoadedModel
from afscope.runs import manifest_name, start_run

CONDITIONS = ("monitored", "unmonitored")


def context_items(scenarios: list[Scenario], cfg: ContextConfig) -> list[dict[str, Any]]:
    """Generation items: ``<scenario id>:monitored`` and ``<scenario id>:unmonitored`` chats."""
    systems = {"monitored": cfg.monitored_system, "unmonitored": cfg.unmonitored_system}
    return [{"id": f"{s.id}:{c}", "scenario_id": s.id, "condition": c, "user_prompt": s.text,
             "prompt": [{"role": "system", "content": systems[c]},
                        {"role": "user", "content": s.text}]}
            for s in scenarios for c in CONDITIONS]


def context_record(s: Scenario, gens: dict[str, dict[str, Any]], labels: dict[str, dict[str, Any]],
                   prompts_full: dict[str, str], cfg: ContextConfig, model: str) -> dict[str, Any]:
    """One record from the two generations and their labels (``changed`` compares labels)."""
    m, u = gens["monitored"], gens["unmonitored"]
    bm, bu = labels["monitored"].get("behaviour"), labels["unmonitored"].get("behaviour")
    changed = behaviour_changed(bm, bu)
    return {
        "ablation_prompt": s.text,
        "hint_prompt_full": prompts_full["monitored"],
        "original_prompt_full": prompts_full["unmonitored"],
        "system_prompt": cfg.monitored_system,
        "hint": cfg.hint,
        # the behaviour labels, so that the flag is their comparison (introspective-interp
        # checks exactly that); the answers themselves are in response_*
        "random_hint_prediction": bm,
        "zeroshot_prediction": bu,
        "changed_pred_bc_hint": changed,
        "hint_user_prompt": s.text,
        "original_user_prompt": s.text,
        "label": s.label,
        "id": s.id,
        "scenario": s.scenario,
        "unmonitored_system_prompt": cfg.unmonitored_system,
        "response_monitored": m["response"],
        "response_unmonitored": u["response"],
        "behaviour_monitored": bm,
        "behaviour_unmonitored": bu,
        "af_monitored": labels["monitored"].get("af"),
        "af_unmonitored": labels["unmonitored"].get("af"),
        "changed": changed,
        "judge_method": cfg.judge,
        "model": model,
    }


def served_context_target(server: ServerConfig, model: str, lm: LoadedModel | None
                          ) -> LoadedModel:
    """The target on ``server``: ``lm`` when it is already served, else a served model that
    reuses ``lm``'s tokenizer (or loads ``model``'s; no weights)."""
    from afscope.generate.engine import eos_ids
    from afscope.generate.served import ServedModel, served_target

    if lm is not None and isinstance(lm.model, ServedModel):
        return lm
    if lm is None:
        return served_target(server, model)
    return served_target(server, model, tokenizer=lm.tokenizer,
                         eos=eos_ids(lm.model, lm.tokenizer))


def build_context_dataset(cfg: ContextConfig, *, lm: LoadedModel | None = None,
                          backend: Any = None) -> BuildResult | None:
    """Build the context-ablation dataset in ``cfg.out`` (resumable; see module docstring).

    Writes ``generations.jsonl``, ``labels.jsonl``, ``train.json``/``test.json`` (split by
    scenario), ``stats.json`` and ``manifest.json``. ``lm`` reuses a loaded target model;
    ``backend`` is the LLM judge (``judge`` llm/both). With ``cfg.server`` the answers come from
    that OpenAI-compatible server (same rows; no weights loaded here). With ``cfg.shard`` it only generates and
    labels that shard's items and returns None (:mod:`afscope.counterfactual.pipeline`).
    """
    out = Path(cfg.out)
    with start_run("counterfactual context", cfg.to_dict(), out,
                   manifest_name=manifest_name(shard_of(cfg))) as run:
        scenarios = load_scenarios(cfg)
        run.add_dataset("scenarios", scenarios_info(cfg, scenarios))
        if cfg.server is not None:
            lm = served_context_target(cfg.server, cfg.model, lm)
        lm = load_target(cfg, run, lm)
        items = context_items(scenarios, cfg)
        gens, gen_meta = generate_all(cfg, run, lm, items, {
            "task": "context", "monitored_system": cfg.monitored_system,
            "unmonitored_system": cfg.unmonitored_system})
        by_id = {s.id: s for s in scenarios}
        mine = my_items(items, cfg)
        for it in mine:
            check_row(gens.get(it["id"]), by_id[it["scenario_id"]], it["id"],
                      out / GENERATIONS_FILE)
        labels = label_all(cfg, run, [gens[it["id"]] for it in mine], gen_meta, backend)
        if shard_of(cfg) is not None:
            return None  # this shard's rows are stored; the build as one process takes them in

        prompts = {it["id"]: it["prompt"] for it in items}
        records, lengths, n_unlabelled = [], [], 0
        for s in scenarios:
            keys = {c: f"{s.id}:{c}" for c in CONDITIONS}
            g = {c: gens[k] for c, k in keys.items()}
            lab = {c: labels.get(k, {}) for c, k in keys.items()}
            full = {c: render_prompt(lm.tokenizer, prompts[k], cfg.template)
                    for c, k in keys.items()}
            rec = context_record(s, g, lab, full, cfg, lm.info.name)
            if rec["changed"] is None:
                n_unlabelled += 1
                continue
            records.append(rec)
            lengths += [(g[c]["n_new_tokens"], len(g[c]["response"])) for c in CONDITIONS]
        return finish(cfg, run, records, n_unlabelled, lengths, before="behaviour_monitored",
                      after="behaviour_unmonitored", by_changed=cfg.stratify_changed)

