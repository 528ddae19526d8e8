"""Alpha calibration of a steering dataset: the same push means different things per vector.

A difference of means, a refusal direction and a random direction have different norms and act
with different force, so one alpha grid changes nothing for one vector and breaks the model with
another. :func:`calibrate_alphas` gives each (vector, layer, sign) the smallest added norm, from a
grid of multiples of the residual stream's own norm at that layer, whose steered answers change
the behaviour label of at least ``target`` of the calibration prompts (training scenarios only).
The steered answers and labels are stored resumably in ``OUT/calibration.generations.jsonl`` and
``OUT/calibration.labels.jsonl``; the table of every scale tried goes to ``stats.json``.

A random vector made ``--like`` another vector of the run (``created_from.like_sha256``) is not
calibrated: it takes that vector's alphas, so it is the matched-norm, matched-strength control.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from afscope.counterfactual.config import SteeringConfig
from afscope.counterfactual.pipeline import generate_all, label_all
from afscope.counterfactual.scenarios import Scenario, scenario_messages
from afscope.counterfactual.schema import behaviour_changed
from afscope.generate import Steering, render_prompt
from afscope.models import LoadedModel
from afscope.runs import Run
from afscope.steer.vectors import SteeringVector

CAL_GENERATIONS = "calibration.generations.jsonl"
CAL_LABELS = "calibration.labels.jsonl"

#: (vector name, layer, sign) -> calibrated alpha
Key = tuple[str, int, int]


@dataclass(frozen=True)
class NamedVector:
    """One vector file of a steering run: its name, file, hash, content and held-out flag."""

    name: str
    path: str
    sha256: str
    vector: SteeringVector
    heldout: bool = False

    @property
    def like_sha256(self) -> str | None:
        """The sha256 of the vector this one was matched to (random vectors), else None."""
        like = self.vector.created_from.get("like_sha256")
        return str(like) if self.vector.source == "random" and like else None


def matched_to(vectors: list[NamedVector]) -> dict[str, str]:
    """``{random vector name: name of the run's vector it copies the norms of}``."""
    by_sha = {v.sha256: v.name for v in vectors}
    return {v.name: by_sha[v.like_sha256] for v in vectors
            if v.like_sha256 in by_sha and by_sha[v.like_sha256] != v.name}


def residual_norms(lm: LoadedModel, prompts: list[Scenario], layers: list[int], cfg: SteeringConfig
                   ) -> dict[int, float]:
    """Mean residual norm at the last token of each rendered calibration prompt, per layer."""
    from afscope.data import Dataset, Record
    from afscope.steer.build import last_token_norms

    recs = [Record(text=render_prompt(lm.tokenizer, scenario_messages(s, cfg.system), cfg.template),
                   category="calibration", label=0, id=s.id) for s in prompts]
    return last_token_norms(lm, Dataset.from_records(recs, "calibration"), layers)


def key_name(key: Key) -> str:
    """``<vector>:L<layer>:<+|->``: how a (vector, layer, sign) is named in ids and tables."""
    name, layer, sign = key
    return f"{name}:L{layer}:{'+' if sign > 0 else '-'}"


def choose(tried: list[dict[str, Any]], target: float) -> tuple[dict[str, Any], bool]:
    """The calibration row kept from ``tried`` (rows ``{"scale", "alpha", "changed_rate"}`` in
    increasing scale) and whether it reaches ``target``: the first that does, else the highest
    changed share (ties: the smaller scale)."""
    for row in tried:
        if row["changed_rate"] >= target:
            return row, True
    return max(tried, key=lambda r: (r["changed_rate"], -r["scale"])), False


def calibrate_alphas(cfg: SteeringConfig, run: Run, lm: LoadedModel, vectors: list[NamedVector],
                     layers: list[int], prompts: list[Scenario], backend: Any = None
                     ) -> tuple[dict[Key, float], dict[str, Any]]:
    """Calibrated alpha per (vector name, layer, sign) and the table of what was tried.

    Signs are those of the nonzero ``cfg.alphas``. Scales are tried smallest first and a key
    stops at the first that reaches ``cfg.calibrate``; a key that never does takes the scale
    with the highest changed share (ties: the smaller) and is flagged ``reached: false``.
    """
    norms = residual_norms(lm, prompts, layers, cfg)
    signs = sorted({int(math.copysign(1, a)) for a in cfg.alphas if a != 0})
    matched = matched_to(vectors)
    own = [v for v in vectors if v.name not in matched]
    tried: dict[Key, list[dict[str, Any]]] = {(v.name, layer, sg): [] for v in own
                                              for layer in layers for sg in signs}
    alpha_of = {(v.name, layer, sg, s): sg * s * norms[layer] / float(v.vector.at(layer).norm())
                for v in own for layer in layers for sg in signs for s in cfg.calibration_scales}
    by_name = {v.name: v for v in vectors}
    base = [{"id": f"cal:{p.id}:unsteered", "scenario_id": p.id, "user_prompt": p.text,
             "prompt": scenario_messages(p, cfg.system), "cal": None} for p in prompts]
    items = list(base)
    meta = {"task": "steering-calibration", "positions": cfg.positions, "system": cfg.system,
            "vectors": {v.name: v.sha256 for v in own}}

    def steering_of(item: dict[str, Any]) -> Steering | None:
        if item["cal"] is None:
            return None
        name, layer, sg, s = item["cal"]
        return Steering({layer: by_name[name].vector.at(layer)},
                        alpha=alpha_of[(name, layer, sg, s)], positions=cfg.positions)

    pending = set(tried)
    for s in cfg.calibration_scales:
        if not pending:
            break
        items += [{**b, "id": f"cal:{b['scenario_id']}:{key_name(k)}{s:g}", "cal": (*k, s)}
                  for k in sorted(pending) for b in base]
        gens, gen_meta = generate_all(cfg, run, lm, items, meta, steering=steering_of,
                                      name=CAL_GENERATIONS)
        labels = label_all(cfg, run, [gens[it["id"]] for it in items], gen_meta, backend,
                           name=CAL_LABELS)
        for key in sorted(pending):
            changed = []
            for b in base:
                before = labels.get(b["id"], {}).get("behaviour")
                cid = f"cal:{b['scenario_id']}:{key_name(key)}{s:g}"
                c = behaviour_changed(before, labels.get(cid, {}).get("behaviour"))
                if c is not None:
                    changed.append(c)
            rate = sum(changed) / len(changed) if changed else 0.0
            tried[key].append({"scale": s, "alpha": alpha_of[(*key, s)],
                               "changed_rate": rate, "n": len(changed)})
            if rate >= cfg.calibrate:
                pending.discard(key)
    alphas: dict[Key, float] = {}
    table: dict[str, Any] = {}
    for key, rows in tried.items():
        best, reached = choose(rows, cfg.calibrate)
        alphas[key] = best["alpha"]
        name, layer, sg = key
        table[key_name(key)] = {
            "vector": name, "layer": layer, "sign": sg, "alpha": best["alpha"],
            "scale": best["scale"], "changed_rate": best["changed_rate"],
            "reached": reached, "tried": rows}
    for name, like in matched.items():
        for layer in layers:
            for sg in signs:
                alphas[(name, layer, sg)] = alphas[(like, layer, sg)]
    info = {"target": cfg.calibrate, "n_prompts": len(prompts), "scales": cfg.calibration_scales,
            "residual_norms": {str(k): v for k, v in norms.items()}, "matched": matched,
            "keys": table}
    return alphas, info
