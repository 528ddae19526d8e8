"""Steering prediction (seed 000, task 2): does adding ``alpha * v`` at a layer change behaviour?

Each scenario is answered greedily once without steering and once per (layer, alpha) condition
with ``alpha * v[layer]`` added to the residual stream after that block at ``positions`` (the
generation engine's :class:`~afscope.generate.Steering`). Every answer gets a behaviour label from
:mod:`afscope.judge`; ``changed`` says whether the steered label differs from the unsteered one.
A record names its vector by reference (``vector_path``, ``vector_sha256``, ``layer``, ``alpha``,
``positions``); the explainer loads the direction with :func:`afscope.steer.vectors.load_vector`
and checks the hash. Alpha 0 is the unsteered answer itself (greedy decoding would repeat it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from afscope.counterfactual.config import SteeringConfig
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
from afscope.fileio import sha256_file
from afscope.generate import Steering, render_prompt
from afscope.models import LoadedModel
from afscope.runs import manifest_name, start_run
from afscope.steer.vectors import VECTOR_FILE, load_vector

UNSTEERED = "unsteered"


def condition_key(layer: int, alpha: float) -> str:
    """The id suffix of a steered condition: ``L<layer>:a<alpha>`` (``L6:a2``, ``L6:a0.5``)."""
    return f"L{layer}:a{alpha:g}"


def _messages(s: Scenario, system: str | None) -> list[dict[str, str]]:
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": s.text}]


def steering_items(scenarios: list[Scenario], layers: list[int], alphas: list[float],
                   system: str | None) -> list[dict[str, Any]]:
    """Generation items: ``<id>:unsteered`` plus ``<id>:L<layer>:a<alpha>`` for each alpha != 0."""
    items = []
    for s in scenarios:
        base = {"scenario_id": s.id, "user_prompt": s.text, "prompt": _messages(s, system)}
        items.append({**base, "id": f"{s.id}:{UNSTEERED}", "layer": None, "alpha": 0.0})
        items += [{**base, "id": f"{s.id}:{condition_key(layer, a)}", "layer": layer, "alpha": a}
                  for layer in layers for a in alphas if a != 0]
    return items


def build_steering_dataset(cfg: SteeringConfig, *, lm: LoadedModel | None = None,
                           backend: Any = None) -> BuildResult | None:
    """Build the steering-prediction dataset in ``cfg.out`` (resumable; see module docstring).

    Writes ``generations.jsonl``, ``labels.jsonl``, ``train.json``/``test.json`` (split by
    scenario: all conditions of a scenario on one side), ``stats.json`` (with the changed rate per
    layer and per alpha) and ``manifest.json``. With ``cfg.shard`` it only generates and labels
    that shard's items and returns None (:mod:`afscope.counterfactual.pipeline`).
    """
    out = Path(cfg.out)
    with start_run("counterfactual steering", cfg.to_dict(), out,
                   manifest_name=manifest_name(shard_of(cfg))) as run:
        scenarios = load_scenarios(cfg)
        run.add_dataset("scenarios", scenarios_info(cfg, scenarios))
        lm = load_target(cfg, run, lm)
        vfile = Path(cfg.vector) / VECTOR_FILE if Path(cfg.vector).is_dir() else Path(cfg.vector)
        vec = load_vector(vfile, model=lm.info, allow_other_model=cfg.allow_other_model)
        sha = sha256_file(vfile)
        vpath = str(vfile.resolve())
        run.add_model("vector", {"path": vpath, "sha256": sha, "layers": vec.layers,
                                 "source": vec.source})
        layers = list(cfg.layers) if cfg.layers is not None else vec.layers
        conds = {(layer, a): Steering({layer: vec.at(layer)}, alpha=a, positions=cfg.positions)
                 for layer in layers for a in cfg.alphas if a != 0}

        def steering_of(item: dict[str, Any]) -> Steering | None:
            return conds.get((item["layer"], item["alpha"]))

        items = steering_items(scenarios, layers, cfg.alphas, cfg.system)
        gens, gen_meta = generate_all(cfg, run, lm, items, {
            "task": "steering", "vector_sha256": sha, "positions": cfg.positions,
            "system": cfg.system}, steering=steering_of)
        by_id = {s.id: s for s in scenarios}
        mine = my_items(items, cfg)
        for it in mine:
            check_row(gens.get(it["id"]), by_id[it["scenario_id"]], it["id"],
                      out / GENERATIONS_FILE)
        labels = label_all(cfg, run, [gens[it["id"]] for it in mine], gen_meta, backend)
        if shard_of(cfg) is not None:
            return None  # this shard's rows are stored; the build as one process takes them in

        records, lengths, n_unlabelled = [], [], 0
        for s in scenarios:
            base_key = f"{s.id}:{UNSTEERED}"
            base, base_lab = gens[base_key], labels.get(base_key, {})
            lengths.append((base["n_new_tokens"], len(base["response"])))
            full = render_prompt(lm.tokenizer, _messages(s, cfg.system), cfg.template)
            for layer in layers:
                for a in cfg.alphas:
                    key = base_key if a == 0 else f"{s.id}:{condition_key(layer, a)}"
                    g, lab = gens[key], labels.get(key, {})
                    if a != 0:
                        lengths.append((g["n_new_tokens"], len(g["response"])))
                    before, after = base_lab.get("behaviour"), lab.get("behaviour")
                    changed = behaviour_changed(before, after)
                    if changed is None:
                        n_unlabelled += 1
                        continue
                    records.append({
                        "id": f"{s.id}:{condition_key(layer, a)}", "request_id": s.id,
                        "scenario": s.scenario, "label": s.label, "user_prompt": s.text,
                        "system_prompt": cfg.system, "prompt_full": full,
                        "unsteered_response": base["response"], "steered_response": g["response"],
                        "behaviour_unsteered": before, "behaviour_steered": after,
                        "af_unsteered": base_lab.get("af"), "af_steered": lab.get("af"),
                        "changed": changed, "vector_path": vpath, "vector_sha256": sha,
                        "layer": layer, "alpha": a, "positions": cfg.positions,
                        "judge_method": cfg.judge, "model": lm.info.name,
                    })
        return finish(cfg, run, records, n_unlabelled, lengths, before="behaviour_unsteered",
                      after="behaviour_steered", by=("layer", "alpha"))
