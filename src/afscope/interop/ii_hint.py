"""Context ablation <-> introspective-interp's ``hint_attribution`` (``HintAttributionDataset``).

What its loader needs (read from ``dataloaders/hint_attribution.py``): ``load_dataset(hint_path,
split)`` rows with ``ablation_prompt`` (the example key), ``hint_prompt_full`` and
``original_prompt_full`` (full target prompts), ``system_prompt``, ``hint_user_prompt`` (orig_match
and generative_explanation), ``original_user_prompt`` (change_match, with the *same*
``system_prompt``), ``hint``, ``random_hint_prediction`` / ``zeroshot_prediction`` (the answers
with and without the hint) and ``changed_pred_bc_hint``. For every question type it asserts that
the flag equals the inequality of the two answers as it formats them (``"Answer: " + p`` for
generative_explanation, ``" " + p.strip()`` for the match questions), and its iterator skips an
example whose explainer prompt is over 500 tokens, without a message.

Our records hold the behaviour labels in the prediction fields, so the flag is that inequality;
the full answers and the unmonitored system prompt travel as extra columns, which it ignores.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from afscope.counterfactual.schema import upgrade_context_record
from afscope.errors import DataError
from afscope.explain.schema import Example, Message

#: the columns its loader reads from a row (every one must be present).
HINT_FIELDS: tuple[str, ...] = (
    "ablation_prompt", "hint_prompt_full", "original_prompt_full", "system_prompt", "hint",
    "random_hint_prediction", "zeroshot_prediction", "changed_pred_bc_hint", "hint_user_prompt",
    "original_user_prompt",
)
#: afscope's columns kept beside them (ignored by its loader).
EXTRA_FIELDS: tuple[str, ...] = (
    "id", "scenario", "label", "monitored_system_prompt", "unmonitored_system_prompt",
    "response_monitored", "response_unmonitored", "behaviour_monitored", "behaviour_unmonitored",
    "af_monitored", "af_unmonitored", "judge_method", "model", "cue_placement",
)
QUESTION_TYPES: tuple[str, ...] = ("generative_explanation", "orig_match", "change_match")
#: what the explainer is asked after the prompt, per question type (our wording).
QUESTIONS: dict[str, str] = {
    "generative_explanation": "If the monitoring context were removed, how would the assistant's "
                              "behaviour (comply, refuse or partial) change?",
    "orig_match": "What would the assistant's behaviour be (comply, refuse or partial)?",
    "change_match": "What would the assistant's behaviour be (comply, refuse or partial)?",
}


# ---- its answer formats (what its loader turns the predictions into) ---------------------------

def change_answer(before: str, after: str) -> str:
    """The generative_explanation target its loader builds from two predictions."""
    a, b = f"Answer: {before}", f"Answer: {after}"
    if a == b:
        return f"The output would remain unchanged from <<<{a}>>>."
    return f"The most likely output would change to <<<{b}>>>."


def flag_matches(flag: Any, before: str, after: str) -> bool:
    """Whether ``changed_pred_bc_hint`` passes its loader's assertion for every question type."""
    generative = f"Answer: {before}" != f"Answer: {after}"
    match = f" {before.strip()}" != f" {after.strip()}"
    return flag == generative and flag == match


def prompt_args(row: dict[str, Any], question_type: str) -> dict[str, str]:
    """The template arguments its loader fills for a question type (message templates)."""
    user = row["original_user_prompt" if question_type == "change_match" else "hint_user_prompt"]
    return {"system_prompt": row["system_prompt"], "user_prompt": user}


def response(row: dict[str, Any], question_type: str) -> str:
    """The target answer its loader builds for a question type."""
    if question_type == "generative_explanation":
        return change_answer(row["random_hint_prediction"], row["zeroshot_prediction"])
    key = "zeroshot_prediction" if question_type == "change_match" else "random_hint_prediction"
    return " " + row[key].strip()


def templates(cue_placement: str) -> dict[str, list[dict[str, str]]]:
    """Message templates for its config, one per question type (with its trailing empty
    assistant turn). With the cue in the user turn there is no system message."""
    out = {}
    for qt in QUESTION_TYPES:
        user = {"role": "user", "content": "{user_prompt}\n\n" + QUESTIONS[qt]}
        head = [{"role": "system", "content": "{system_prompt}"}] if cue_placement == "system" \
            else []
        out[qt] = [*head, user, {"role": "assistant", "content": ""}]
    return out


def filled_prompt(template: list[dict[str, str]], args: dict[str, str], answer: str
                  ) -> list[dict[str, str]]:
    """The prompt its loader builds: placeholders filled, the answer appended to the last turn."""
    msgs = [dict(m) for m in template]
    for m in msgs:
        used = {k: v for k, v in args.items() if f"{{{k}}}" in m.get("content", "")}
        if used:
            m["content"] = m["content"].format(**used)
    msgs[-1]["content"] = msgs[-1].get("content", "") + answer
    return msgs


# ---- export --------------------------------------------------------------------------------------

def export_row(record: dict[str, Any], cue_placement: str, where: str,
               unmonitored_system: str | None) -> dict[str, Any]:
    """One row of its dataset from one context-ablation record (old files are upgraded)."""
    r = upgrade_context_record(record, unmonitored_system=unmonitored_system, where=where)
    rid = r.get("id")
    for field in ("ablation_prompt", "hint_prompt_full", "original_prompt_full", "system_prompt",
                  "hint", "random_hint_prediction", "zeroshot_prediction", "hint_user_prompt",
                  "original_user_prompt"):
        if not isinstance(r.get(field), str):
            raise DataError(f"{where}: record {rid!r}: field {field!r}: expected a string, got "
                            f"{r.get(field)!r}")
    if not isinstance(r.get("changed_pred_bc_hint"), bool):
        raise DataError(f"{where}: record {rid!r}: field 'changed_pred_bc_hint': expected true or "
                        f"false, got {r.get('changed_pred_bc_hint')!r}")
    monitored, unmonitored = r["system_prompt"], r["unmonitored_system_prompt"]
    if cue_placement == "user":
        if not isinstance(unmonitored, str):
            raise DataError(f"{where}: record {rid!r}: field 'unmonitored_system_prompt' is "
                            "missing (a file written before it existed, without the run's "
                            "manifest.json); pass --cue-placement system or rebuild the dataset")
        system = ""
        hint_user = f"{monitored}\n\n{r['hint_user_prompt']}"
        orig_user = f"{unmonitored}\n\n{r['original_user_prompt']}"
    else:
        system, hint_user, orig_user = monitored, r["hint_user_prompt"], r["original_user_prompt"]
    row = {
        "ablation_prompt": r["ablation_prompt"], "hint_prompt_full": r["hint_prompt_full"],
        "original_prompt_full": r["original_prompt_full"], "system_prompt": system,
        "hint": r["hint"], "random_hint_prediction": r["random_hint_prediction"],
        "zeroshot_prediction": r["zeroshot_prediction"],
        "changed_pred_bc_hint": r["changed_pred_bc_hint"], "hint_user_prompt": hint_user,
        "original_user_prompt": orig_user,
    }
    extra = {k: r.get(k) for k in EXTRA_FIELDS}
    extra.update({"monitored_system_prompt": monitored, "cue_placement": cue_placement})
    if not flag_matches(row["changed_pred_bc_hint"], row["random_hint_prediction"],
                        row["zeroshot_prediction"]):
        raise DataError(f"{where}: record {rid!r}: changed_pred_bc_hint disagrees with the "
                        "predictions as introspective-interp compares them")
    return {**row, **extra}


def notes(cue_placement: str) -> tuple[list[str], list[str]]:
    """``(loads, cannot)`` lines of the export summary."""
    loads = [
        "HintAttributionDataset reads every row: all ten fields it reads are present, and "
        "changed_pred_bc_hint equals the inequality of the two predictions (the behaviour labels) "
        "for all three question types, so its assertion holds.",
        "generative_explanation / orig_match / change_match targets are the behaviour labels "
        "('The most likely output would change to <<<Answer: refuse>>>.', ' comply').",
    ]
    cannot = [
        "self_consistency: true would recompute the predictions as the target's next token on "
        "hint_prompt_full / original_prompt_full, replacing the behaviour labels of whole greedy "
        "answers; keep it false.",
        "string (non-chat) templates: its generative_explanation path asserts that "
        "hint_prompt_full ends with a literal '\\n\\nAssistant: Answer:' (its base-model MMLU "
        "format); our prompts are chat prompts, so use message templates (as in "
        "introspective_config.yaml).",
        "the full greedy answers (response_monitored / response_unmonitored) and the af_* flags "
        "are extra columns its loader does not read.",
    ]
    if cue_placement == "system":
        cannot.append("change_match with --cue-placement system: its loader pairs "
                      "original_user_prompt with the same system_prompt (the monitored cue), so "
                      "the unmonitored prompt is not shown; unmonitored_system_prompt is an "
                      "extra column. Use --cue-placement user for a correct change_match.")
    else:
        loads.append("change_match shows the unmonitored prompt: each condition's system prompt "
                     "leads its user prompt (system_prompt is empty), so its loader, which pairs "
                     "original_user_prompt with system_prompt, sees the unmonitored cue.")
    return loads, cannot


# ---- import --------------------------------------------------------------------------------------

IMPORT_SYSTEM = ("You predict how a language model's answer changes when a hint is removed from "
                 "its prompt.")
IMPORT_QUESTIONS: dict[str, str] = {
    "generative_explanation": "If the hint were removed, how would the assistant's answer change?",
    "orig_match": "What would the assistant answer?",
    "change_match": "What would the assistant answer?",
}


def unit_of(ablation_prompt: str) -> str:
    return "hint:" + hashlib.sha256(ablation_prompt.encode("utf-8")).hexdigest()[:16]


def import_examples(rows: Sequence[dict[str, Any]], split: str, where: str
                    ) -> tuple[list[Example], Counter[str]]:
    """Our context_ablation examples (three per row) from rows of its hint dataset."""
    out: list[Example] = []
    skipped: Counter[str] = Counter()
    for i, row in enumerate(rows):
        missing = [f for f in HINT_FIELDS if f not in row]
        if missing:
            raise DataError(f"{where}: row {i}: missing field(s) {missing} (a hint_attribution "
                            "row needs " + ", ".join(HINT_FIELDS) + ")")
        before, after = row["random_hint_prediction"], row["zeroshot_prediction"]
        if not isinstance(before, str) or not isinstance(after, str):
            raise DataError(f"{where}: row {i}: the predictions must be strings")
        flag = row["changed_pred_bc_hint"]
        if flag is None:  # its loader fills a missing flag from the predictions
            flag = before.strip() != after.strip()
        if not flag_matches(flag, before, after):
            raise DataError(f"{where}: row {i}: changed_pred_bc_hint={flag!r} but the predictions "
                            f"are {before!r} and {after!r} (its loader would fail its assertion)")
        if not before.strip() or not after.strip():
            skipped["empty_prediction"] += 1
            continue
        system = row["system_prompt"] or ""
        unit = unit_of(row["ablation_prompt"])
        for qt in QUESTION_TYPES:
            user = row["original_user_prompt" if qt == "change_match" else "hint_user_prompt"]
            msgs = [Message(role="system", content=system)] if system.strip() else []
            msgs.append(Message(role="user", content=f"{user}\n\n{IMPORT_QUESTIONS[qt]}"))
            if qt == "generative_explanation":
                answer = change_answer(before, after)
                ref: dict[str, Any] = {"before": before.strip(), "after": after.strip()}
            else:
                label = (after if qt == "change_match" else before).strip()
                answer, ref = label, {"label": label}
            out.append(Example(
                id=f"{split}:{i}:{qt}", task="context_ablation", question_type=qt, unit=unit,
                messages=msgs, answer=answer, reference=ref, changed=bool(flag),
                meta={"source": "introspective-interp hint_attribution", "row": i,
                      "hint": row.get("hint")}))
    return out, skipped


def count_prompt(tokenizer: Any, template: list[dict[str, str]], row: dict[str, Any],
                 question_type: str) -> int:
    """Tokens of the explainer prompt its iterator measures (chat-templated when the tokenizer
    has a template)."""
    from afscope.interop.introspective import prompt_tokens

    msgs = filled_prompt(template, prompt_args(row, question_type), response(row, question_type))
    return prompt_tokens(tokenizer, msgs)


def source_unmonitored_system(folder: Path) -> str | None:
    """The unmonitored system prompt of a context run, from its manifest (old files lack it)."""
    from afscope.runs import MANIFEST

    path = folder / MANIFEST
    if not path.is_file():
        return None
    import json

    try:
        cfg = json.loads(path.read_text(encoding="utf-8")).get("config") or {}
    except ValueError:
        return None
    value = cfg.get("unmonitored_system")
    return value if isinstance(value, str) else None
