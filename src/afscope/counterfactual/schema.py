"""Record schemas, behaviour change, the scenario split and the summary stats of both datasets.

The context-ablation records carry seed 000's fields (compatible with introspective-interp's
``HintAttributionDataset``) plus ours; the steering records carry the vector by reference only
(path + sha256), never its values. ``changed`` compares the *behaviour labels* of the two answers
(comply / refuse / partial): greedy answers to two prompts almost always differ as strings, so
string inequality would call nearly every pair "changed".

The two prediction fields hold those labels, not the answers: introspective-interp's loader
checks ``changed_pred_bc_hint`` against the inequality of ``random_hint_prediction`` and
``zeroshot_prediction``, so the flag must be that comparison. The full answers are kept in
``response_monitored`` / ``response_unmonitored``, and ``unmonitored_system_prompt`` holds the
system prompt of the other condition (``system_prompt`` is the monitored one). Files written before
these fields existed (full answers in the prediction fields) are read through
:func:`upgrade_context_record`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from afscope.data.dataset import Dataset
from afscope.data.records import Record
from afscope.data.split import split_indices
from afscope.errors import DataError
from afscope.fileio import atomic_write_json

logger = logging.getLogger(__name__)

TRAIN_FILE = "train.json"
TEST_FILE = "test.json"
STATS_FILE = "stats.json"
GENERATIONS_FILE = "generations.jsonl"
LABELS_FILE = "labels.jsonl"

#: seed 000's fields, in its order (HintAttributionDataset).
SEED_CONTEXT_FIELDS: tuple[str, ...] = (
    "ablation_prompt", "hint_prompt_full", "original_prompt_full", "system_prompt", "hint",
    "random_hint_prediction", "zeroshot_prediction", "changed_pred_bc_hint", "hint_user_prompt",
    "original_user_prompt", "label",
)
#: afscope's additions to a context-ablation record.
OUR_CONTEXT_FIELDS: tuple[str, ...] = (
    "id", "scenario", "unmonitored_system_prompt", "response_monitored", "response_unmonitored",
    "behaviour_monitored", "behaviour_unmonitored", "af_monitored", "af_unmonitored", "changed",
    "judge_method", "model",
)
CONTEXT_FIELDS: tuple[str, ...] = SEED_CONTEXT_FIELDS + OUR_CONTEXT_FIELDS

#: a steering-prediction record: one scenario x vector x layer x alpha (``alpha_scale``: the
#: multiple of the vector's calibrated alpha, null without calibration).
STEERING_FIELDS: tuple[str, ...] = (
    "id", "request_id", "scenario", "label", "user_prompt", "system_prompt", "prompt_full",
    "unsteered_response", "steered_response", "behaviour_unsteered", "behaviour_steered",
    "af_unsteered", "af_steered", "changed", "vector_name", "vector_source", "vector_path",
    "vector_sha256", "heldout_vector", "layer", "alpha", "alpha_scale", "positions",
    "judge_method", "model",
)


def behaviour_changed(before: str | None, after: str | None) -> bool | None:
    """Whether two behaviour labels differ; ``None`` when either answer could not be labelled."""
    if before is None or after is None:
        return None
    return before != after


def upgrade_context_record(record: dict[str, Any], *, unmonitored_system: str | None = None,
                           where: str = "<record>") -> dict[str, Any]:
    """A context-ablation record in the current layout (a copy; current records come back equal).

    Records written before ``response_monitored`` existed held the full answers in
    ``random_hint_prediction`` / ``zeroshot_prediction``: the answers move to the response fields
    and the prediction fields get the behaviour labels. Such files have no
    ``unmonitored_system_prompt``; pass ``unmonitored_system`` (the run's config has it) or the
    field stays None. A record whose flag disagrees with its predictions afterwards is a
    DataError naming ``where`` and the record id.
    """
    rec = dict(record)
    rid = rec.get("id")
    if "response_monitored" not in rec:
        for field in ("random_hint_prediction", "zeroshot_prediction", "behaviour_monitored",
                      "behaviour_unmonitored"):
            if field not in rec:
                raise DataError(f"{where}: record {rid!r}: field {field!r} is missing")
        rec["response_monitored"] = rec["random_hint_prediction"]
        rec["response_unmonitored"] = rec["zeroshot_prediction"]
        rec["random_hint_prediction"] = rec["behaviour_monitored"]
        rec["zeroshot_prediction"] = rec["behaviour_unmonitored"]
    if rec.get("unmonitored_system_prompt") is None:
        rec["unmonitored_system_prompt"] = unmonitored_system
    a, b = rec.get("random_hint_prediction"), rec.get("zeroshot_prediction")
    if a is not None and b is not None and rec.get("changed_pred_bc_hint") != (a != b):
        raise DataError(f"{where}: record {rid!r}: field 'changed_pred_bc_hint' is "
                        f"{rec.get('changed_pred_bc_hint')!r} but the predictions are {a!r} and "
                        f"{b!r}: the flag must equal their inequality")
    return rec


def split_by_scenario(records: Sequence[dict[str, Any]], test_fraction: float, seed: int, *,
                      by_changed: bool = False
                      ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Train/test records with every ``scenario`` key on one side only.

    The units are the scenario keys (with :func:`afscope.data.split.split_indices`, stratified by
    the scenario's first ``label``), so the split depends only on the keys and the seed: the
    context and the steering datasets of the same scenarios share their test scenarios. With
    ``by_changed`` the strata are also split by whether most of the scenario's records changed
    (as scikit-learn stratifies by the class), so train and test get the same changed rate; the
    split then depends on the outcomes too.
    """
    outcome: dict[str, list[bool]] = {}
    for r in records:
        outcome.setdefault(r["scenario"], []).append(bool(r.get("changed")))
    keys: dict[str, str] = {}
    for r in records:
        lab = str(r.get("label", "unknown"))
        if by_changed:
            votes = outcome[r["scenario"]]
            lab += "|changed" if 2 * sum(votes) >= len(votes) else "|unchanged"
        keys.setdefault(r["scenario"], lab)
    units = [Record(text=k, category=lab, label=0, id=k) for k, lab in keys.items()]
    if not units:
        return [], []
    idx = split_indices(Dataset.from_records(units, "scenarios"),
                        {"train": 1.0 - test_fraction, "test": test_fraction}, seed=seed,
                        stratify_by="category")
    test_keys = {units[i].text for i in idx["test"]}
    train = [r for r in records if r["scenario"] not in test_keys]
    test = [r for r in records if r["scenario"] in test_keys]
    return train, test


def _rate(records: Sequence[dict[str, Any]]) -> float | None:
    return sum(bool(r["changed"]) for r in records) / len(records) if records else None


def summarize(train: Sequence[dict[str, Any]], test: Sequence[dict[str, Any]], *,
              before: str, after: str, lengths: Sequence[tuple[int, int]], n_unlabelled: int,
              min_changed_rate: float, by: Sequence[str] = ()) -> dict[str, Any]:
    """Stats of a dataset: counts, changed rate, direction counts and answer lengths.

    ``before``/``after`` name the two behaviour fields (a direction is ``"comply->refuse"``);
    ``lengths`` are ``(new tokens, characters)`` of every answer used; ``by`` lists fields to
    break the changed rate down by (steering: ``layer``, ``alpha``). Logs a warning when the
    changed rate is below ``min_changed_rate`` (seed 000: the data is then mostly noise).
    """
    records = [*train, *test]
    directions = Counter(f"{r[before]}->{r[after]}" for r in records)
    rate = _rate(records)
    stats: dict[str, Any] = {
        "n_records": len(records), "n_train": len(train), "n_test": len(test),
        "n_scenarios_train": len({r["scenario"] for r in train}),
        "n_scenarios_test": len({r["scenario"] for r in test}),
        "n_unlabelled": n_unlabelled,
        "n_changed": sum(bool(r["changed"]) for r in records),
        "changed_rate": rate, "changed_rate_train": _rate(train), "changed_rate_test": _rate(test),
        "directions": dict(sorted(directions.items())),
        "mean_response_tokens": sum(t for t, _ in lengths) / len(lengths) if lengths else None,
        "mean_response_chars": sum(c for _, c in lengths) / len(lengths) if lengths else None,
        "min_changed_rate": min_changed_rate,
        "low_changed_rate": rate is not None and rate < min_changed_rate,
    }
    for field in by:
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in records:
            groups.setdefault(str(r[field]), []).append(r)
        stats[f"changed_rate_by_{field}"] = {k: _rate(v) for k, v in groups.items()}
    if rate is None:
        logger.warning("no labelled records: the dataset is empty")
    elif stats["low_changed_rate"]:
        logger.warning("only %.1f%% of records change behaviour (< %.0f%%): the dataset is mostly "
                       "unchanged pairs and may be too noisy to train an explainer on (seed 000)",
                       100 * rate, 100 * min_changed_rate)
    if n_unlabelled:
        logger.warning("%d record(s) left out: an answer could not be labelled (judge parse "
                       "failure); rerun to retry", n_unlabelled)
    return stats


def write_dataset(out: Path, train: Sequence[dict[str, Any]], test: Sequence[dict[str, Any]],
                  stats: dict[str, Any]) -> dict[str, Path]:
    """Write ``train.json``, ``test.json`` (JSON arrays, like seed 000) and ``stats.json``,
    each atomically."""
    paths = {"train": out / TRAIN_FILE, "test": out / TEST_FILE, "stats": out / STATS_FILE}
    atomic_write_json(paths["train"], list(train))
    atomic_write_json(paths["test"], list(test))
    atomic_write_json(paths["stats"], stats)
    return paths
