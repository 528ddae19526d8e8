"""Describe SAE features with a trained explainer: ``afscope features describe --explainer RUN``.

Why: offline autointerp with the embedded model parses but says little (issue 14: smollm2's
differential descriptions are vacuous). An explainer trained on the target model's own latents
(``afscope explain data --task features`` then ``explain train``) reads a latent's decoder
direction ``W_dec[f] (d_in,)`` itself, with no text samples in its prompt, and answers in the form
it was trained on (``Fires on: <<<tok>>>, ...``). Its rows go into the same
``descriptions.jsonl`` as the LLM describer's (same ``top``/``zero`` samples, for the report), so
classify, score, cluster and the report read them unchanged, and their faithfulness is scored the
same way (:func:`afscope.features.faithfulness.description_faithfulness`).

The prompt is the training prompt exactly (:func:`afscope.explain.token_data.token_messages`,
:func:`afscope.explain.data.feature_messages`); decoding is greedy, so a rerun writes the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from afscope.errors import ConfigError, DataError
from afscope.explain.answers import TOKEN_PREFIXES, first_line, parse_tokens
from afscope.explain.data import _check_cache_sae, feature_messages, sae_folder, sae_layer
from afscope.explain.encode import Encoded, encode_prompt
from afscope.explain.evaluate import explain_generate
from afscope.explain.token_data import token_messages
from afscope.explain.train import ADAPTER_DIR, load_explainer, read_explainer
from afscope.fileio import sha256_file
from afscope.llm.jobs import StepStats
from afscope.organism.train import base_model_name

#: what ``--question`` asks: the token questions of ``--targets tokens`` or a free description
QUESTIONS = ("fires_on", "promotes", "feature_description")
MAX_TOKENS = 48


def _messages(question: str, layer: int) -> list[dict[str, str]]:
    msgs = feature_messages() if question == "feature_description" else \
        token_messages(question, layer)
    return [m.model_dump() for m in msgs]


def check_explainer(meta: dict[str, Any], question: str, layer: int, d_in: int,
                    target: str | None, where: Path) -> None:
    """Refuse an explainer that never learned ``question`` about vectors of this space: another
    task, another layer, another width or another target model than the SAE's."""
    if question not in QUESTIONS:
        raise ConfigError(f"--question {question!r}: expected one of {', '.join(QUESTIONS)}")
    tasks = meta.get("tasks") or []
    if f"features/{question}" not in tasks:
        raise ConfigError(f"{where}: this explainer was trained on {', '.join(tasks) or 'nothing'}, "
                          f"not on features/{question}; train it on `explain data --task features` "
                          "with that question type, or pass another --question")
    if int(meta.get("target_width", d_in)) != d_in:
        raise DataError(f"{where}: the explainer reads {meta['target_width']}-d vectors but the "
                        f"SAE's decoder rows are {d_in}-d: another target model")
    proj = meta.get("projection") or {}
    if proj.get("layers") and layer not in proj["layers"]:
        raise DataError(f"{where}: the explainer's projector knows layers {proj['layers']}, not "
                        f"the SAE's layer {layer}")
    lens_target = (proj.get("lens") or {}).get("target")
    if lens_target and target and base_model_name(target) != lens_target:
        raise DataError(f"{where}: the explainer's token lens was fit on {lens_target!r}, but the "
                        f"SAE belongs to {target!r}")


def explain_directions(lm: Any, meta: dict[str, Any], directions: torch.Tensor, layer: int,
                       question: str, *, batch_size: int = 8, max_tokens: int = MAX_TOKENS
                       ) -> list[str]:
    """The explainer's greedy answer for each row of ``directions`` ``(n, d_in)`` (decoder rows of
    SAE latents at target ``layer``), asked ``question``."""
    ids, pos = encode_prompt(lm.tokenizer, _messages(question, layer),
                             placeholder=meta["placeholder"])
    rows = [Encoded(f"d{i}", list(ids), [], list(pos), [f"d{i}"], [layer])
            for i in range(directions.shape[0])]
    vectors = {f"d{i}": directions[i].float() for i in range(directions.shape[0])}
    return explain_generate(lm, meta, rows, vectors, max_tokens=max_tokens,
                            batch_size=batch_size, description=f"explain {question}")


def _parse(question: str, text: str) -> tuple[str | None, list[str] | None, str | None]:
    """``(description, tokens, error)`` of one answer."""
    if question in TOKEN_PREFIXES:
        names = parse_tokens(question, text)
        if names is None:
            return None, None, f"no '{TOKEN_PREFIXES[question]} <<<token>>>' line"
        return f"{TOKEN_PREFIXES[question]} " + ", ".join(f'"{t}"' for t in names), names, None
    line = first_line(text)
    return (line, None, None) if len(line) >= 3 else (None, None, "empty description")


def describe_with_explainer(explainer: str | Path, sae: str | Path, inp: Any,
                            features: Sequence[int], params: Any, out_dir: str | Path, *,
                            question: str = "fires_on", seed: int = 0, batch_size: int = 8,
                            dtype: str = "float32", device: str = "cpu") -> StepStats:
    """Describe ``features`` of the cache behind ``inp`` (:class:`~afscope.features.inputs.
    FeatureInputs`) with the explainer of run ``explainer``, into ``out_dir/descriptions.jsonl``
    (resumable; a store written by another describer is refused).

    Rows: ``feature, status, description, tokens (token questions), error, answer, top, zero,
    backend`` -- the LLM describer's fields, with ``top``/``zero`` the samples
    :func:`afscope.features.describe.shown_samples` picks (shown in the report; the explainer
    itself sees only the vector).
    """
    from afscope.features.describe import ANSWER_KEPT_CHARS, describe_store, samples_info, \
        shown_samples
    from afscope.features.samples import FeatureColumns
    from afscope.sae.io import load_sae

    run_dir = Path(explainer)
    sae_path = sae_folder(sae)
    model = load_sae(sae_path)
    layer = sae_layer(model.cfg, sae_path)
    if layer != inp.layer:
        raise DataError(f"{sae_path}: the SAE reads layer {layer}, the features are of layer "
                        f"{inp.layer} (--layer)")
    _check_cache_sae(inp.cache, layer, model, sae_path)  # the latents described are this SAE's
    W = model.decoder_directions().detach().float()
    bad = [int(f) for f in features if not 0 <= int(f) < W.shape[0]]
    if bad:
        raise DataError(f"feature {bad[0]} is out of range for the SAE {sae_path} "
                        f"(d_sae={W.shape[0]})")
    check_explainer(read_explainer(run_dir), question, layer, int(W.shape[1]),
                    model.cfg.model_name or inp.model, run_dir)
    weights = run_dir / ADAPTER_DIR / "adapter_model.safetensors"
    describer = {"kind": "explainer", "run": str(run_dir.resolve()), "question": question,
                 "adapter_sha256": sha256_file(weights) if weights.is_file() else None}
    store = describe_store(out_dir, params, seed, describer=describer)
    todo = [int(f) for f in features if int(f) not in store]
    stats = StepStats(skipped=len(features) - len(todo))
    if not todo:
        return stats
    lm, meta = load_explainer(run_dir, dtype=dtype, device=device)
    answers = explain_directions(lm, meta, W[todo], layer, question, batch_size=batch_size)
    cols = FeatureColumns(inp.X)
    y = np.asarray(inp.y)
    who = f"explainer:{run_dir.name}:{meta['model']['name']}"
    rows = []
    for f, text in zip(todo, answers):
        acts = cols.get(f)
        top, zero = shown_samples(f, acts, y, params, seed)
        desc, tokens, err = _parse(question, text)
        stats.done += 1
        stats.parse_failures += err is not None
        rows.append({"feature": f, "status": "ok" if err is None else "parse_error",
                     "description": desc, "tokens": tokens, "error": err,
                     "answer": text[:ANSWER_KEPT_CHARS],
                     "top": samples_info(top, acts, inp.ids, y, inp.categories),
                     "zero": samples_info(zero, acts, inp.ids, y, inp.categories),
                     "backend": who})
    store.append(rows)
    return stats
