"""Steering prediction <-> introspective-interp's ``act_patch`` task (``ActPatchDataset``).

What its loader needs (read from ``dataloaders/act_patch.py``): ``load_dataset(intervention_path,
split).to_pandas()`` with the columns ``layer`` (a list: the patch is written at each of these
layers), ``input_tokens`` (the target tokenizer's token strings of the input; it joins them and
decodes them with ``convert_tokens_to_string``), ``original_continuation`` /
``ablated_continuation`` (lists of token strings: one greedy next token in its data),
``is_different``, ``patch_position`` (``orig_pos`` - the position in the re-tokenized input, special
tokens included - ``counterfact_pos``, ``orig_text_token``, ``counterfact_text_token`` and
``intervention_vector``, the vector written there and shown to the explainer as a continuous
token) and the counterfactual fields ``counterfactual_text``, ``gt_original_target``,
``gt_counterfactual_target``. It refuses a file without the first five columns, reads the rest by
name (a missing one is a KeyError), reads ``ablated_token_positions`` when present, skips a row
whose continuation holds the explainer's EOS token, and skips explainer prompts over 500 tokens.

What we map, and how far it is honest:

* ``intervention_vector`` = ``alpha * v[layer]``, the vector our generation *added*; its patching
  *writes* the vector over the residual (only its ``self_consistency`` mode does that, which must
  stay off).
* the continuations are one pseudo-token each: the behaviour label of the unsteered and the steered
  greedy answer (``["comply"]`` -> ``["refuse"]``), so ``is_different`` equals their inequality. The
  single next token of its data would say nothing about behaviour; the full answers are extra
  columns.
* ``patch_position.orig_pos`` is the last prompt token; ``ablated_token_positions`` lists every
  steered prompt position. Our steering also adds the vector at every generated token (positions
  ``both`` / ``last``), which its schema cannot express; ``generated`` (no prompt position at all)
  is refused.
* there is no counterfactual prompt: ``counterfactual_text``, ``counterfact_pos``,
  ``counterfact_text_token`` and the ``gt_*`` targets are null.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from afscope.errors import ArtifactError, DataError
from afscope.explain.schema import VECTOR_MARKER, Example, Message, VectorRef

#: the columns it refuses a dataset without.
REQUIRED_COLUMNS: tuple[str, ...] = ("layer", "input_tokens", "original_continuation",
                                     "ablated_continuation", "is_different")
#: the other columns it reads by name for every row.
READ_COLUMNS: tuple[str, ...] = ("patch_position", "counterfactual_text", "gt_original_target",
                                 "gt_counterfactual_target")
PATCH_KEYS: tuple[str, ...] = ("orig_pos", "counterfact_pos", "orig_text_token",
                               "counterfact_text_token", "intervention_vector")
#: afscope's columns beside them (ignored by its loader; none of the optional names it reads).
EXTRA_COLUMNS: tuple[str, ...] = (
    "id", "request_id", "scenario", "label", "alpha", "steering_positions", "intervention",
    "vector_sha256", "model", "behaviour_unsteered", "behaviour_steered", "unsteered_response",
    "steered_response", "af_unsteered", "af_steered", "judge_method",
)
#: our prompt template for its config (a string template, as its act_patch configs use).
TEMPLATE = ("A steering vector {begin_continuous}{feature}{end_continuous} is added at layer "
            "{layer} at tokens {tokens} while the model reads <<<{input}>>>. How would its "
            "behaviour change?\n")
#: the continuous-token markers its prompt adds (begin, vector, end): one token each.
N_CONTINUOUS_TOKENS = 3


def features() -> Any:
    """Explicit column types (``datasets.Features``; JSON inference would guess from the data)."""
    from datasets import Features, Sequence, Value

    text, ints = Value("string"), Sequence(Value("int64"))
    patch = {"orig_pos": Value("int64"), "counterfact_pos": Value("int64"),
             "orig_text_token": text, "counterfact_text_token": text,
             "intervention_vector": Sequence(Value("float32"))}
    return Features({
        "layer": ints, "input_tokens": Sequence(text), "original_continuation": Sequence(text),
        "ablated_continuation": Sequence(text), "is_different": Value("bool"),
        "patch_position": patch, "counterfactual_text": text, "gt_original_target": text,
        "gt_counterfactual_target": text, "ablated_token_positions": ints,
        "id": text, "request_id": text, "scenario": text, "label": text,
        "alpha": Value("float64"), "steering_positions": text, "intervention": text,
        "vector_sha256": text, "model": text, "behaviour_unsteered": text,
        "behaviour_steered": text, "unsteered_response": text, "steered_response": text,
        "af_unsteered": Value("bool"), "af_steered": Value("bool"), "judge_method": text,
    })


def change_answer(before: str, after: str) -> str:
    """The target sentence its loader builds from two continuation texts."""
    if before == after:
        return f"The output would remain unchanged from <<<{before}>>>."
    return f"The most likely output would change to <<<{after}>>>."


# ---- export --------------------------------------------------------------------------------------

class _Vectors:
    """Steering vector files loaded once, hash-checked against the records naming them."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.loaded: dict[Path, tuple[str, Any]] = {}

    def get(self, record: dict[str, Any], where: str) -> Any:
        from afscope.fileio import sha256_file
        from afscope.steer.vectors import VECTOR_FILE, load_vector

        rid = record.get("id")
        raw, want = record.get("vector_path"), record.get("vector_sha256")
        if not isinstance(raw, str) or not isinstance(want, str):
            raise DataError(f"{where}: record {rid!r}: fields 'vector_path' / 'vector_sha256' "
                            "must be strings")
        vfile = Path(raw) if Path(raw).is_absolute() else self.folder / raw
        if vfile not in self.loaded:
            real = vfile / VECTOR_FILE if vfile.is_dir() else vfile
            if not real.is_file():
                raise ArtifactError(f"{where}: record {rid!r}: field 'vector_path': {vfile} not "
                                    "found (the steering vector file the dataset was built with)")
            self.loaded[vfile] = (sha256_file(real), load_vector(vfile, allow_other_model=True))
        sha, vec = self.loaded[vfile]
        if sha != want:
            raise DataError(f"{where}: record {rid!r}: field 'vector_sha256': {vfile} has sha256 "
                            f"{sha[:12]}..., the record says {want[:12]}...: the vector file "
                            "changed since the dataset was built")
        return vec


class _Tokens:
    """Tokenization of each distinct prompt, with its position check."""

    def __init__(self, tokenizer: Any):
        self.tok = tokenizer
        self.cache: dict[str, tuple[list[str], int, bool]] = {}

    def __call__(self, prompt: str) -> tuple[list[str], int, bool]:
        """``(input_tokens, orig_pos of the last one, whether re-tokenizing confirms it)``.

        The target read ``prompt`` tokenized without added special tokens (afscope's engine);
        its loader re-tokenizes ``convert_tokens_to_string(input_tokens)`` *with* them, so
        ``orig_pos`` counts the special tokens the tokenizer puts in front.
        """
        if prompt not in self.cache:
            ids = list(self.tok(prompt, add_special_tokens=False)["input_ids"])
            tokens = [str(t) for t in self.tok.convert_ids_to_tokens(ids)]
            text = self.tok.convert_tokens_to_string(tokens)
            full = list(self.tok(text)["input_ids"])
            offset = next((k for k in range(len(full) - len(ids) + 1)
                           if full[k:k + len(ids)] == ids), None)
            pos = (offset if offset is not None else 0) + len(ids) - 1
            ok = offset is not None and pos < len(full) and \
                self.tok.convert_ids_to_tokens([full[pos]])[0] == tokens[-1]
            self.cache[prompt] = (tokens, pos, ok)
        return self.cache[prompt]


def export_rows(records: Sequence[dict[str, Any]], where: str, folder: Path, tokenizer: Any
                ) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Rows of its dataset from steering records; skipped records counted by reason."""
    vectors = _Vectors(folder)
    tokens = _Tokens(tokenizer)
    rows: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    for i, r in enumerate(records):
        rid = r.get("id", i)
        for field in ("layer", "alpha", "prompt_full", "behaviour_unsteered", "behaviour_steered",
                      "changed", "positions"):
            if field not in r:
                raise DataError(f"{where}: record {rid!r}: field {field!r} is missing (a "
                                "steering record of `afscope counterfactual steering`)")
        layer, alpha, positions = r["layer"], r["alpha"], r["positions"]
        if not isinstance(layer, int) or isinstance(layer, bool):
            raise DataError(f"{where}: record {rid!r}: field 'layer': expected an integer")
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or \
                not math.isfinite(alpha):
            raise DataError(f"{where}: record {rid!r}: field 'alpha': expected a finite number")
        if positions == "generated":
            raise DataError(f"{where}: record {rid!r}: steered at generated tokens only "
                            "(positions 'generated'): introspective-interp patches input "
                            "positions, so this cannot be represented; rebuild with --positions "
                            "last, prompt or both")
        if positions not in ("last", "prompt", "both"):
            raise DataError(f"{where}: record {rid!r}: field 'positions': {positions!r} is not "
                            "one of last, prompt, both")
        before, after = r["behaviour_unsteered"], r["behaviour_steered"]
        if not isinstance(before, str) or not isinstance(after, str):
            raise DataError(f"{where}: record {rid!r}: the behaviour labels must be strings")
        if r["changed"] != (before != after):
            raise DataError(f"{where}: record {rid!r}: field 'changed' is {r['changed']!r} but "
                            f"the behaviour goes {before} -> {after}")
        vec = vectors.get(r, where)
        if alpha == 0:
            counts["skipped_alpha_zero"] += 1
            continue
        try:
            v = vec.at(layer)
        except ArtifactError as e:
            raise DataError(f"{where}: record {rid!r}: field 'layer': {e}") from None
        prompt = r["prompt_full"]
        if not isinstance(prompt, str) or not prompt:
            raise DataError(f"{where}: record {rid!r}: field 'prompt_full': expected a non-empty "
                            "string")
        toks, pos, ok = tokens(prompt)
        if not toks:
            raise DataError(f"{where}: record {rid!r}: field 'prompt_full' has no tokens")
        if not ok:
            counts["position_unverified"] += 1
        n = len(toks)
        rows.append({
            "layer": [layer], "input_tokens": toks,
            "original_continuation": [before], "ablated_continuation": [after],
            "is_different": before != after,
            "patch_position": {"orig_pos": pos, "counterfact_pos": None,
                               "orig_text_token": toks[-1], "counterfact_text_token": None,
                               "intervention_vector": (float(alpha) * v.float()).tolist()},
            "counterfactual_text": None, "gt_original_target": None,
            "gt_counterfactual_target": None,
            "ablated_token_positions": [n - 1] if positions == "last" else list(range(n)),
            "id": str(rid), "request_id": r.get("request_id"), "scenario": r.get("scenario"),
            "label": None if r.get("label") is None else str(r.get("label")),
            "alpha": float(alpha), "steering_positions": positions, "intervention": "add",
            "vector_sha256": r.get("vector_sha256"), "model": r.get("model"),
            "behaviour_unsteered": before, "behaviour_steered": after,
            "unsteered_response": r.get("unsteered_response"),
            "steered_response": r.get("steered_response"),
            "af_unsteered": r.get("af_unsteered"), "af_steered": r.get("af_steered"),
            "judge_method": r.get("judge_method"),
        })
        counts[f"positions_{positions}"] += 1
    return rows, counts


def count_prompt(tokenizer: Any, row: dict[str, Any]) -> int:
    """Tokens of the explainer prompt its iterator measures (string template + answer)."""
    from afscope.interop.introspective import prompt_tokens

    token = tokenizer.convert_tokens_to_string([row["patch_position"]["orig_text_token"]])
    text = TEMPLATE.format(
        begin_continuous="", end_continuous="", feature="",
        layer=", ".join(str(x) for x in row["layer"]), tokens=f"<{token}>",
        input=tokenizer.convert_tokens_to_string(row["input_tokens"]))
    answer = change_answer(tokenizer.convert_tokens_to_string(row["original_continuation"]),
                           tokenizer.convert_tokens_to_string(row["ablated_continuation"]))
    return prompt_tokens(tokenizer, text + answer) + N_CONTINUOUS_TOKENS


def notes(counts: Counter[str]) -> tuple[list[str], list[str]]:
    loads = [
        "ActPatchDataset reads every row: the five required columns and every column it reads "
        "by name are present with its types (layer a list of ints, input_tokens and the "
        "continuations lists of token strings, patch_position a struct whose "
        "intervention_vector becomes the continuous token).",
        "is_different equals the inequality of the two continuations (the behaviour labels); "
        "the generative_explanation target reads 'The most likely output would change to "
        "<<<refuse>>>.'.",
        "intervention_vector = alpha * v[layer] (the vector added); orig_pos = the last prompt "
        "token, counted with the special tokens its re-tokenization adds.",
    ]
    cannot = [
        "multi-token continuations: its data has one greedy next token per condition; ours are "
        "whole greedy answers judged comply/refuse/partial. The continuations hold the behaviour "
        "label as one pseudo-token; the full answers are the extra columns unsteered_response / "
        "steered_response.",
        "addition vs patching: we added alpha * v; its self_consistency mode would write the "
        "vector over the residual at orig_pos and recompute one next token. Keep "
        "self_consistency false.",
        "steering at generated tokens (positions both/last) has no field in its schema; only the "
        "prompt positions are listed (ablated_token_positions) and the mode is the extra column "
        "steering_positions.",
        "no counterfactual prompt exists: counterfactual_text, counterfact_pos, "
        "counterfact_text_token and gt_original_target / gt_counterfactual_target are null.",
        "input_tokens are the target tokenizer's tokens; its loader decodes them with the "
        "explainer's tokenizer, so explainer and target must share a tokenizer (self-explanation "
        "or the same family).",
    ]
    if counts.get("position_unverified"):
        cannot.append(f"{counts['position_unverified']} row(s): re-tokenizing the decoded input "
                      "does not give the same tokens, so orig_pos/orig_text_token would fail "
                      "its self_consistency assertion.")
    return loads, cannot


# ---- import --------------------------------------------------------------------------------------

IMPORT_SYSTEM = ("You predict how a language model's next token changes when a vector is patched "
                 "into its residual stream.")


def _byte_decoder() -> dict[str, int]:
    """The inverse of byte-level BPE's byte -> printable character table (GPT-2's scheme)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, n = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + n)] = b
            n += 1
    return chars


def tokens_to_text(tokens: Sequence[str], tokenizer: Any = None) -> str:
    """Text of token strings: the tokenizer's own decoding when given, else byte-level BPE
    (Llama 3, Qwen) with SentencePiece's word marker read as a space."""
    tokens = [str(t) for t in tokens]
    if tokenizer is not None:
        return tokenizer.convert_tokens_to_string(tokens)
    table = _byte_decoder()
    joined = "".join(tokens)
    if "▁" in joined and not any(c in joined for c in ("Ġ", "Ċ")):
        return joined.replace("▁", " ")
    raw = bytearray()
    for c in joined:
        if c in table:
            raw.append(table[c])
        else:
            raw += c.encode("utf-8")
    return raw.decode("utf-8", errors="replace")


def _as_list(value: Any) -> list[Any]:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def import_examples(rows: Sequence[dict[str, Any]], split: str, where: str,
                    tokenizer: Any = None) -> tuple[list[Example], dict[str, torch.Tensor],
                                                    Counter[str]]:
    """Our steering examples (one per row, its intervention vector as the vector token)."""
    out: list[Example] = []
    vectors: dict[str, torch.Tensor] = {}
    skipped: Counter[str] = Counter()
    for i, row in enumerate(rows):
        missing = [c for c in (*REQUIRED_COLUMNS, "patch_position") if c not in row]
        if missing:
            raise DataError(f"{where}: row {i}: missing column(s) {missing} (an act_patch row "
                            "needs " + ", ".join((*REQUIRED_COLUMNS, "patch_position")) + ")")
        patch = row["patch_position"]
        if not isinstance(patch, dict) or "intervention_vector" not in patch:
            raise DataError(f"{where}: row {i}: field 'patch_position' has no intervention_vector")
        vec = torch.tensor(_as_list(patch["intervention_vector"]), dtype=torch.float32)
        if vec.ndim != 1 or vec.numel() == 0 or not torch.isfinite(vec).all():
            raise DataError(f"{where}: row {i}: patch_position.intervention_vector must be a "
                            "finite non-empty list of numbers")
        layers = [int(x) for x in _as_list(row["layer"])]
        if not layers:
            raise DataError(f"{where}: row {i}: field 'layer' is empty")
        text = tokens_to_text(_as_list(row["input_tokens"]), tokenizer)
        before = tokens_to_text(_as_list(row["original_continuation"]), tokenizer)
        after = tokens_to_text(_as_list(row["ablated_continuation"]), tokenizer)
        tok = patch.get("orig_text_token")
        tok_text = tokens_to_text([tok], tokenizer) if isinstance(tok, str) else "?"
        if not text.strip():
            skipped["empty_input"] += 1
            continue
        key = f"patch:{split}:{i}"
        vectors[key] = vec.contiguous()
        layer_str = ", ".join(str(x) for x in layers)
        user = (f"A vector {VECTOR_MARKER} is written into the residual stream at layer "
                f"{layer_str} at the token <{tok_text}> while the model reads <<<{text}>>>. "
                "How would the model's next token change?")
        out.append(Example(
            id=f"{split}:{i}", task="steering", question_type="steering_prediction",
            unit="patch:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16],
            messages=[Message(role="system", content=IMPORT_SYSTEM),
                      Message(role="user", content=user)],
            answer=change_answer(before, after), reference={"before": before, "after": after},
            changed=bool(row["is_different"]), vectors=[VectorRef(key=key, layer=layers[0])],
            meta={"source": "introspective-interp act_patch", "row": i, "layers": layers,
                  "orig_pos": patch.get("orig_pos"), "orig_text_token": tok,
                  "counterfactual_text": row.get("counterfactual_text"),
                  "gt_original_target": row.get("gt_original_target"),
                  "gt_counterfactual_target": row.get("gt_counterfactual_target")}))
    return out, vectors, skipped
