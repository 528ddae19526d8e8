"""Steering prediction (seed 000, task 2): does adding ``alpha * v`` at a layer change behaviour?

Each scenario is answered greedily once without steering and once per (vector, layer, alpha)
condition with ``alpha * v[layer]`` added to the residual stream after that block at
``positions`` (the generation engine's :class:`~afscope.generate.Steering`). Every answer gets a
behaviour label from :mod:`afscope.judge`; ``changed`` says whether the steered label differs from
the unsteered one. A record names its vector by reference (``vector_name``, ``vector_source``,
``vector_path``, ``vector_sha256``, ``layer``, ``alpha``, ``positions``); the explainer loads the
direction with :func:`afscope.steer.vectors.load_vector` and checks the hash. Alpha 0 is the
unsteered answer itself (greedy decoding would repeat it).

Several vector files make the answer depend on the vector, not only on the prompt: an AF
difference of means, a refusal direction and matched-norm random directions steer the same
prompts. With ``calibrate`` each (vector, layer, sign) gets its own alpha
(:mod:`afscope.counterfactual.calibrate`) and ``alphas`` are multiples of it (``alpha_scale``).
Vectors named in ``heldout_vectors`` steer only the test scenarios: the test set then has a vector
family no training example shows (``heldout_vector: true``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from afscope.counterfactual.calibrate import NamedVector, calibrate_alphas
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
from afscope.counterfactual.scenarios import (
    Scenario,
    load_scenarios,
    scenario_messages,
    scenarios_info,
)
from afscope.counterfactual.schema import GENERATIONS_FILE, behaviour_changed, split_by_scenario
from afscope.fileio import sha256_file
from afscope.generate import Steering, render_prompt
from afscope.models import LoadedModel
from afscope.runs import manifest_name, start_run
from afscope.steer.vectors import VECTOR_FILE, load_vector

UNSTEERED = "unsteered"


def condition_key(layer: int, alpha: float, vector: str | None = None) -> str:
    """The id suffix of a steered condition: ``L<layer>:a<alpha>`` (``L6:a2``, ``L6:a0.5``),
    prefixed ``<vector>:`` when the run steers with several vectors."""
    key = f"L{layer}:a{alpha:g}"
    return f"{vector}:{key}" if vector else key


def steering_items(scenarios: list[Scenario], conditions: list[dict[str, Any]],
                   system: str | None, test_scenarios: set[str] = frozenset()
                   ) -> list[dict[str, Any]]:
    """Generation items: ``<id>:unsteered`` plus ``<id>:<key>`` per steered condition (a
    condition is ``{"key", "vector", "layer", "alpha", "heldout"}``; held-out ones only on
    ``test_scenarios``)."""
    items = []
    for s in scenarios:
        base = {"scenario_id": s.id, "user_prompt": s.text, "prompt": scenario_messages(s, system)}
        items.append({**base, "id": f"{s.id}:{UNSTEERED}", "layer": None, "alpha": 0.0})
        items += [{**base, "id": f"{s.id}:{c['key']}", "vector": c["vector"],
                   "layer": c["layer"], "alpha": c["alpha"]}
                  for c in conditions if c["alpha"] != 0
                  and (not c["heldout"] or s.scenario in test_scenarios)]
    return items


def load_vectors(cfg: SteeringConfig, lm: LoadedModel, run: Any) -> list[NamedVector]:
    """Every ``--vector`` file, checked against the target model and recorded in the manifest."""
    out = []
    for name, path in cfg.vector_paths().items():
        vfile = path / VECTOR_FILE if path.is_dir() else path
        vec = load_vector(vfile, model=lm.info, allow_other_model=cfg.allow_other_model)
        nv = NamedVector(name, str(vfile.resolve()), sha256_file(vfile), vec,
                         name in cfg.heldout_vectors)
        run.add_model(f"vector:{name}" if len(cfg.vector) > 1 else "vector",
                      {"path": nv.path, "sha256": nv.sha256, "layers": vec.layers,
                       "source": vec.source, "heldout": nv.heldout})
        out.append(nv)
    return out


def plan_conditions(cfg: SteeringConfig, vectors: list[NamedVector], layers: list[int],
                    calibrated: dict[tuple[str, int, int], float] | None
                    ) -> list[dict[str, Any]]:
    """One condition per vector x layer x alpha: its key, real alpha and ``alpha_scale`` (the
    multiple of the calibrated alpha, None without calibration)."""
    several = len(vectors) > 1
    conds = []
    for v in vectors:
        for layer in layers:
            v.vector.at(layer)  # refuse a layer the file lacks, naming the file's layers
            for a in cfg.alphas:
                if calibrated is None or a == 0:
                    alpha, scale = a, (None if calibrated is None else 0.0)
                else:
                    alpha, scale = abs(a) * calibrated[(v.name, layer, 1 if a > 0 else -1)], a
                conds.append({"key": condition_key(layer, a, v.name if several else None),
                              "vector": v.name, "layer": layer, "alpha": alpha,
                              "alpha_scale": scale, "heldout": v.heldout})
    return conds


def build_steering_dataset(cfg: SteeringConfig, *, lm: LoadedModel | None = None,
                           backend: Any = None) -> BuildResult | None:
    """Build the steering-prediction dataset in ``cfg.out`` (resumable; see module docstring).

    Writes ``generations.jsonl``, ``labels.jsonl``, ``train.json``/``test.json`` (split by
    scenario: all conditions of a scenario on one side), ``stats.json`` (with the changed rate per
    vector, layer and alpha, and the calibration table) and ``manifest.json``. With ``cfg.shard``
    it only generates and labels that shard's items and returns None
    (:mod:`afscope.counterfactual.pipeline`).
    """
    out = Path(cfg.out)
    with start_run("counterfactual steering", cfg.to_dict(), out,
                   manifest_name=manifest_name(shard_of(cfg))) as run:
        scenarios = load_scenarios(cfg)
        run.add_dataset("scenarios", scenarios_info(cfg, scenarios))
        lm = load_target(cfg, run, lm)
        vectors = load_vectors(cfg, lm, run)
        layers = list(cfg.layers) if cfg.layers is not None else vectors[0].vector.layers
        _, test_units = split_by_scenario([{"scenario": s.scenario, "label": s.label}
                                           for s in scenarios], cfg.test_fraction, cfg.seed)
        test_scenarios = {u["scenario"] for u in test_units}
        calibrated, cal_info = None, None
        if cfg.calibrate is not None:
            train_side = [s for s in scenarios if s.scenario not in test_scenarios]
            with run.timer("calibrate"):
                step = max(len(train_side) // cfg.calibration_n, 1)
                calibrated, cal_info = calibrate_alphas(
                    cfg, run, lm, vectors, layers, train_side[::step][:cfg.calibration_n], backend)
            run.add_output("calibration", {k: {"alpha": v["alpha"], "scale": v["scale"],
                                               "changed_rate": v["changed_rate"]}
                                           for k, v in cal_info["keys"].items()})
        conditions = plan_conditions(cfg, vectors, layers, calibrated)
        by_name = {v.name: v for v in vectors}
        steer = {c["key"]: Steering({c["layer"]: by_name[c["vector"]].vector.at(c["layer"])},
                                    alpha=c["alpha"], positions=cfg.positions)
                 for c in conditions if c["alpha"] != 0}

        def steering_of(item: dict[str, Any]) -> Steering | None:
            return steer.get(item["id"].removeprefix(f"{item['scenario_id']}:"))

        items = steering_items(scenarios, conditions, cfg.system, test_scenarios)
        gen_meta_extra = {"task": "steering", "positions": cfg.positions, "system": cfg.system}
        if len(vectors) == 1:
            gen_meta_extra["vector_sha256"] = vectors[0].sha256
        else:
            gen_meta_extra["vectors"] = {v.name: v.sha256 for v in vectors}
        gens, gen_meta = generate_all(cfg, run, lm, items, gen_meta_extra, steering=steering_of)
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
            full = render_prompt(lm.tokenizer, scenario_messages(s, cfg.system), cfg.template)
            for c in conditions:
                if c["heldout"] and s.scenario not in test_scenarios:
                    continue
                v = by_name[c["vector"]]
                key = base_key if c["alpha"] == 0 else f"{s.id}:{c['key']}"
                g, lab = gens[key], labels.get(key, {})
                if c["alpha"] != 0:
                    lengths.append((g["n_new_tokens"], len(g["response"])))
                before, after = base_lab.get("behaviour"), lab.get("behaviour")
                changed = behaviour_changed(before, after)
                if changed is None:
                    n_unlabelled += 1
                    continue
                records.append({
                    "id": f"{s.id}:{c['key']}", "request_id": s.id,
                    "scenario": s.scenario, "label": s.label, "user_prompt": s.text,
                    "system_prompt": cfg.system, "prompt_full": full,
                    "unsteered_response": base["response"], "steered_response": g["response"],
                    "behaviour_unsteered": before, "behaviour_steered": after,
                    "af_unsteered": base_lab.get("af"), "af_steered": lab.get("af"),
                    "changed": changed, "vector_name": v.name, "vector_source": v.vector.source,
                    "vector_path": v.path, "vector_sha256": v.sha256,
                    "heldout_vector": v.heldout, "layer": c["layer"], "alpha": c["alpha"],
                    "alpha_scale": c["alpha_scale"], "positions": cfg.positions,
                    "judge_method": cfg.judge, "model": lm.info.name,
                })
        extra = {"calibration": cal_info} if cal_info is not None else {}
        return finish(cfg, run, records, n_unlabelled, lengths, before="behaviour_unsteered",
                      after="behaviour_steered",
                      by=("vector_name", "layer", "alpha" if calibrated is None else "alpha_scale"),
                      extra=extra)
