"""``RUN_DIR/behaviour.json``: the lab's results in the contract the report reads.

Layout (``kind: "afscope_behaviour"``, ``version: 1``): ``model``, ``judge`` (method and, when an
LLM judged, its agreement with the rules over every judged row of the lab), and one section per
part (``organism``, ``context_ablation``, ``steering``; null when the part was skipped). Paths are
relative to RUN_DIR. A confidence interval is ``{"value", "lo", "hi"}``, or null where it cannot be
computed (fewer than two units). Example lists hold at most :data:`MAX_EXAMPLES` items with texts
cut to :data:`MAX_CHARS` characters, so the file stays small enough to embed in a report.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from afscope.counterfactual import BuildResult
from afscope.data.cues import CUES
from afscope.judge import agreement

BEHAVIOUR_FILE = "behaviour.json"
KIND = "afscope_behaviour"
VERSION = 1
MAX_EXAMPLES = 6
MAX_CHARS = 600


def cut(text: Any) -> str:
    """``text`` as a string of at most :data:`MAX_CHARS` characters (an ellipsis marks a cut)."""
    s = "" if text is None else str(text)
    return s if len(s) <= MAX_CHARS else s[: MAX_CHARS - 1] + "…"


def ci(value: float | None, bounds: Sequence[float | None] | None, n: int) -> dict[str, float] | None:
    """``{"value", "lo", "hi"}``, or None when there is no value or fewer than two units."""
    if value is None or n < 2 or not bounds or bounds[0] is None or bounds[1] is None:
        return None
    return {"value": float(value), "lo": float(bounds[0]), "hi": float(bounds[1])}


def _rate_ci(entry: dict[str, Any]) -> dict[str, float] | None:
    """A :func:`afscope.organism.stats.rate_with_ci` entry as a CI."""
    return ci(entry.get("rate"), entry.get("ci"), int(entry.get("n") or 0))


def _mean_ci(entry: dict[str, Any] | None) -> dict[str, float] | None:
    """A :func:`afscope.steer.mean_ci` entry (``mean, lo, hi, n``) as a CI."""
    if not entry:
        return None
    return ci(entry["mean"], (entry["lo"], entry["hi"]), int(entry["n"]))


def _rel(path: Path, root: Path) -> str:
    return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()


# -- organism ------------------------------------------------------------------------------------

def _model_entry(name: str, gap: dict[str, Any]) -> dict[str, Any]:
    order = {c: i for i, c in enumerate(CUES)}
    per_cue = [{"cue": cue, "monitored": bool(e["monitored"]), "comply": _rate_ci(e["comply"]),
                "af": _rate_ci(e["af"]), "n": int(e["comply"]["n"])}
               for cue, e in sorted(gap["per_cue"].items(), key=lambda kv: order.get(kv[0], 99))]
    g = gap["gap"]
    return {"name": name, "gap": ci(g["gap"], g["ci"], g["n_units"]), "n_units": g["n_units"],
            "per_cue": per_cue}


def _organism_examples(rows: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The organism's and the base model's answers to the first requests, watched and not."""
    watched = next((c for c, (_, m) in CUES.items() if m), None)
    unwatched = next((c for c, (_, m) in CUES.items() if not m), None)
    out = []
    # two organism requests and one base request, each under a watched and an unwatched cue
    for model, n_requests in (("organism", 2), ("base", 1)):
        mine = rows.get(model, [])
        by_key = {(r["request_id"], r["cue"]): r for r in mine}
        for rid in list(dict.fromkeys(r["request_id"] for r in mine))[:n_requests]:
            for cue in (watched, unwatched):
                r = by_key.get((rid, cue))
                if r is not None:
                    out.append({"model": model, "cue": cue, "monitored": bool(r["monitored"]),
                                "request": cut(r.get("request")), "response": cut(r.get("response")),
                                "behaviour": r.get("behaviour"), "af": r.get("af")})
    return out[:MAX_EXAMPLES]


def organism_section(result: dict[str, Any], part: Path, root: Path) -> dict[str, Any]:
    """The ``organism`` section from :func:`afscope.lab.parts.run_organism_part`'s result."""
    t, v = result["train"], result["validation"]
    diff = v["organism_minus_base"]
    return {
        "run_dir": _rel(part, root),
        "train": {"steps": t["steps"], "examples": t["n_examples"],
                  "tokens_per_s": t["tokens_per_s"], "first_loss": t["first_loss"],
                  "last_loss": t["last_loss"], "trainable_params": t["trainable_params"],
                  "total_params": t["total_params"]},
        "models": [_model_entry("organism", v["organism"]), _model_entry("base", v["base"])],
        "gap_difference": ci(diff["difference"], diff["ci"], diff["n_units"]),
        "examples": _organism_examples(result["rows"]),
    }


# -- context ablation ----------------------------------------------------------------------------

def context_section(res: BuildResult, target: str, part: Path, root: Path) -> dict[str, Any]:
    """The ``context_ablation`` section from a context-ablation build."""
    s = res.stats
    rate = s["changed_rate"]
    warning = None
    if rate is None:
        warning = "no labelled pairs: every answer failed to be labelled"
    elif s["low_changed_rate"]:
        warning = (f"changed rate {rate:.0%} is below {s['min_changed_rate']:.0%}: the pairs are "
                   "mostly unchanged, too noisy to train an explainer on (seed 000)")
    records = [*res.train, *res.test]
    chosen = ([r for r in records if r["changed"]] + [r for r in records if not r["changed"]])
    examples = [{"scenario": r["scenario"], "request": cut(r["ablation_prompt"]),
                 "monitored": cut(r["response_monitored"]),
                 "unmonitored": cut(r["response_unmonitored"]),
                 "behaviour_monitored": r["behaviour_monitored"],
                 "behaviour_unmonitored": r["behaviour_unmonitored"], "changed": r["changed"]}
                for r in chosen[:MAX_EXAMPLES]]
    return {"run_dir": _rel(part, root), "target": target, "n": s["n_records"],
            "n_train": s["n_train"], "n_test": s["n_test"], "n_unlabelled": s["n_unlabelled"],
            "changed_rate": rate, "directions": s["directions"], "warning": warning,
            "mean_new_tokens": s["mean_response_tokens"], "examples": examples}


# -- steering ------------------------------------------------------------------------------------

def _rate(entry: dict[str, Any] | None) -> float | None:
    return None if not entry else float(entry["mean"])


def steering_section(result: dict[str, Any], part: Path, root: Path) -> dict[str, Any]:
    """The ``steering`` section from :func:`afscope.lab.parts.run_steering_part`'s result."""
    vec = result["vector"]
    conditions = [{"name": c["name"], "layer": c["layer"], "alpha": float(c["alpha"]),
                   "n": c["n"], "comply": _rate(c["comply_rate"]),
                   "refuse": _rate(c["refuse_rate"]), "partial": _rate(c["partial_rate"]),
                   "af": _rate(c["af_rate"]), "aligned": _mean_ci(c["aligned"]),
                   "coherent": _mean_ci(c["coherent"]),
                   "parse_failure_rate": c["parse_failure_rate"]}
                  for c in result["summary"]["conditions"]]
    return {"run_dir": _rel(part, root),
            "vector": {"name": "af", "source": vec.source, "layers": vec.layers,
                       "norms": [vec.norms[layer] for layer in vec.layers]},
            "conditions": conditions,
            "plots": [_rel(p, root) for p in result["plots"]]}


# -- judge ---------------------------------------------------------------------------------------

def judge_section(method: str, judged_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The judge method and, when an LLM judged, its agreement with the rules over ``rows``."""
    if method == "rules" or not judged_rows:
        return {"method": method, "agreement": None}
    a = agreement(judged_rows)
    return {"method": method, "agreement": {
        "n": a["n"], "behaviour_agreement": a["behaviour_agreement"], "kappa": a["kappa"],
        "labels": a["confusion"]["labels"], "confusion": a["confusion"]["matrix"],
        "af_agreement": a["af_agreement"], "parse_failure_rate": a["parse_failure_rate"]}}


def behaviour_document(model: str, judge: dict[str, Any], organism: dict[str, Any] | None,
                       context: dict[str, Any] | None, steering: dict[str, Any] | None
                       ) -> dict[str, Any]:
    """The whole ``behaviour.json`` object."""
    return {"kind": KIND, "version": VERSION, "model": model, "judge": judge,
            "organism": organism, "context_ablation": context, "steering": steering}
