"""Feature descriptions <-> introspective-interp's ``features_explain`` task (``sae_explanations``).

What its loader needs (read from ``dataloaders/features_explain.py`` and
``features_explain_utils.py``), all under the config's ``explanation_dir``:

* ``<sae_save_path>/layer_<L>.pkl`` for *every* layer of the config's ``layers``: a pickled tensor
  ``(d_model, n_features)``; feature ``f`` is column ``f`` (``weights[:, f]``, then
  ``.unsqueeze(0)``, so it must be a torch tensor, not a numpy array);
* ``split_explanations_data`` formatted with the split (``train`` / ``test``): a pickled list of
  ``((layer, feature_idx), label)`` pairs; the key must be a hashable tuple of ints and ``label``
  a dict with ``chosen_label`` (the target), ``all_labels`` (the references the LM-judge evaluator
  reads) and ``all_label_scores`` (label -> score; ``chosen_label`` may be missing from it);
* ``split_keys``: ``[layer, feature_idx]`` pairs per split, read by its simulator evaluator (JSON
  or pickle) and its nearest-neighbour baseline.

We write the decoder rows of the described features (zero columns for the others, so that column
``f`` stays SAE latent ``f``), the split files from the task folder's own split, and the keys as
JSON. Pickle is written here only because its loader reads nothing else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch

from afscope.errors import DataError
from afscope.explain.schema import VECTOR_MARKER, Example, Message, VectorRef

FEATURES_DIR = "features"
EXPLANATIONS_DIR = "explanations"
SPLIT_EXPLANATIONS = "explanations/{split}_explanations.pkl"
SPLIT_KEYS = "explanations/{split}_layer_feature_idxs.json"
#: our prompt template for its config (string templates, as its feature configs use).
TEMPLATE = "At layer {layer}, {begin_continuous}{feature}{end_continuous} encodes "
N_CONTINUOUS_TOKENS = 3


def layer_file(layer: int) -> str:
    return f"{FEATURES_DIR}/layer_{layer}.pkl"


def label_of(example: Example) -> dict[str, Any]:
    """Its label dict for one of our feature examples (no scores: we have none)."""
    refs = example.reference.get("descriptions") or []
    labels = [example.answer] + [d for d in refs if d != example.answer]
    return {"chosen_label": example.answer, "all_labels": labels, "all_label_scores": {}}


def feature_key(example: Example, where: str) -> tuple[int, int]:
    """``(layer, feature index)`` of one of our feature examples."""
    if len(example.vectors) != 1:
        raise DataError(f"{where}: example {example.id!r}: a feature example has one vector, got "
                        f"{len(example.vectors)}")
    f = example.meta.get("feature")
    if not isinstance(f, int) or isinstance(f, bool) or f < 0:
        raise DataError(f"{where}: example {example.id!r}: field 'meta.feature': expected the "
                        f"SAE latent index (an integer >= 0), got {f!r}; its format keys "
                        "features by (layer, index)")
    return int(example.vectors[0].layer), f


def build_export(splits: dict[str, list[Example]], vectors: dict[str, torch.Tensor],
                 where: str, width_hint: int | None
                 ) -> tuple[dict[int, torch.Tensor], dict[str, list[tuple[tuple[int, int],
                                                                        dict[str, Any]]]]]:
    """``(layer -> (d_model, width) matrix, split -> [((layer, f), label)])``."""
    seen: dict[tuple[int, int], str] = {}
    pairs: dict[str, list[tuple[tuple[int, int], dict[str, Any]]]] = {}
    cols: dict[int, dict[int, torch.Tensor]] = {}
    for split, exs in splits.items():
        pairs[split] = []
        for ex in exs:
            key = feature_key(ex, where)
            if key in seen:
                raise DataError(f"{where}: feature (layer {key[0]}, index {key[1]}) appears twice "
                                f"(in {seen[key]} and {split}); its split files key features by "
                                "(layer, index)")
            seen[key] = split
            ref = ex.vectors[0].key
            if ref not in vectors:
                raise DataError(f"{where}: example {ex.id!r}: vector {ref!r} is not in the "
                                "vectors file")
            cols.setdefault(key[0], {})[key[1]] = vectors[ref].float()
            pairs[split].append((key, label_of(ex)))
    mats: dict[int, torch.Tensor] = {}
    for layer, fs in sorted(cols.items()):
        d = {int(v.shape[0]) for v in fs.values()}
        if len(d) != 1:
            raise DataError(f"{where}: layer {layer}: vectors of different widths {sorted(d)}")
        width = max(max(fs) + 1, width_hint or 0)
        m = torch.zeros(d.pop(), width)  # (d_model, n_features): column f = latent f
        for f, v in fs.items():
            m[:, f] = v
        mats[layer] = m
    return mats, pairs


def count_prompt(tokenizer: Any, layer: int, label: dict[str, Any]) -> int:
    from afscope.interop.introspective import prompt_tokens

    text = TEMPLATE.format(layer=layer, begin_continuous="", feature="", end_continuous="")
    return prompt_tokens(tokenizer, text + label["chosen_label"]) + N_CONTINUOUS_TOKENS


def notes() -> tuple[list[str], list[str]]:
    loads = [
        "FeaturesExplainDataset ('sae_explanations') reads features/layer_<L>.pkl for each layer "
        "of its config (a torch tensor (d_model, n_features), column f = SAE latent f) and "
        "explanations/<split>_explanations.pkl (((layer, f), {chosen_label, all_labels, "
        "all_label_scores}) pairs from the task folder's own split).",
        "the LM-judge evaluator (semantic_similarity) reads all_labels; the nearest-neighbour "
        "baseline and the simulator's key list read explanations/<split>_layer_feature_idxs.json.",
    ]
    cannot = [
        "all_label_scores is empty: afscope's descriptions carry no per-description score, so "
        "its chosen_label_score is None.",
        "simulator-correlation evaluation (simcor, ood_*): it needs exemplar_config.json and "
        "top-activating exemplars in its observatory format, which we do not write.",
        "columns of features without a description are zero (they are in no split file, so "
        "never read).",
        "'layers' in its config must list exactly the exported layers: it opens layer_<L>.pkl "
        "for every listed layer.",
    ]
    return loads, cannot


# ---- import --------------------------------------------------------------------------------------

IMPORT_SYSTEM = ("You describe what a sparse-autoencoder feature of a language model represents, "
                 "in one sentence.")


def _int(value: Any, where: str, what: str) -> int:
    if isinstance(value, bool):
        raise DataError(f"{where}: {what}: expected an integer, got {value!r}")
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {what}: expected an integer, got {value!r}") from None
    if out != value and not hasattr(value, "item"):
        raise DataError(f"{where}: {what}: expected an integer, got {value!r}")
    return out


def parse_pairs(data: Any, where: str) -> list[tuple[int, int, dict[str, Any]]]:
    """``[(layer, feature, label)]`` of a split-explanations object, checked."""
    if not isinstance(data, (list, tuple)):
        raise DataError(f"{where}: expected a list of ((layer, feature_idx), label) pairs, got "
                        f"{type(data).__name__}")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, (list, tuple)) or len(item) != 2 or \
                not isinstance(item[0], (list, tuple)) or len(item[0]) != 2:
            raise DataError(f"{where}: item {i}: expected ((layer, feature_idx), label)")
        (layer, f), label = item
        if not isinstance(label, dict):
            raise DataError(f"{where}: item {i}: the label must be a dict, got "
                            f"{type(label).__name__}")
        out.append((_int(layer, where, f"item {i} layer"), _int(f, where, f"item {i} feature"),
                    label))
    return out


def import_examples(pairs: Sequence[tuple[int, int, dict[str, Any]]],
                    matrices: dict[int, Any], split: str, where: str
                    ) -> tuple[list[Example], dict[str, torch.Tensor], Counter[str]]:
    """Our features examples from its (layer, feature, label) triples and layer matrices."""
    out: list[Example] = []
    vectors: dict[str, torch.Tensor] = {}
    skipped: Counter[str] = Counter()
    for layer, f, label in pairs:
        chosen = label.get("chosen_label")
        if not isinstance(chosen, str) or not chosen.strip():
            skipped["no_chosen_label"] += 1
            continue
        m = matrices[layer]
        if f >= m.shape[1]:
            raise DataError(f"{where}: feature (layer {layer}, index {f}) is beyond the "
                            f"{m.shape[1]} columns of {layer_file(layer)}")
        vec = torch.as_tensor(m[:, f]).float().clone().contiguous()  # (d_model,)
        if not torch.isfinite(vec).all():
            raise DataError(f"{where}: feature (layer {layer}, index {f}): non-finite vector")
        others = [x.strip() for x in label.get("all_labels") or [] if isinstance(x, str)]
        refs = [chosen.strip()] + [x for x in others if x and x != chosen.strip()]
        scores = {str(k): float(v) for k, v in (label.get("all_label_scores") or {}).items()
                  if isinstance(v, (int, float))}
        key = f"feature:L{layer}:{f}"
        vectors[key] = vec
        out.append(Example(
            id=f"L{layer}:f{f}", task="features", question_type="feature_description",
            unit=f"L{layer}:f{f}",
            messages=[Message(role="system", content=IMPORT_SYSTEM),
                      Message(role="user", content=f"Feature vector at layer {layer}: "
                              f"{VECTOR_MARKER}\nDescribe this feature.")],
            answer=chosen.strip(), reference={"descriptions": list(dict.fromkeys(refs))},
            vectors=[VectorRef(key=key, layer=layer)],
            meta={"source": "introspective-interp features_explain", "feature": f,
                  "layer": layer, "all_label_scores": scores, "split": split}))
    return out, vectors, skipped
