"""Small explainer task folders written by hand (schema of afscope.explain.schema)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from afscope.explain.answers import change_sentence, label_sentence
from afscope.explain.schema import (
    TEST_FILE,
    TRAIN_FILE,
    VECTOR_MARKER,
    VECTORS_FILE,
    Example,
    write_examples,
)

BEHAV = ("comply", "refuse", "partial")


def context_folder(tmp: Path, n: int = 12, seed: int = 0) -> Path:
    """``n`` scenarios x 3 question types; the label depends on the scenario text (learnable)."""
    out = tmp / "ctx"
    out.mkdir(parents=True, exist_ok=True)
    sys_p = "You are monitored."
    rows = []
    for i in range(n):
        before = BEHAV[i % 2]
        after = BEHAV[(i // 2) % 2]
        user = f"{sys_p}\n\nScenario {i}: help me."
        common = dict(task="context_ablation", unit=f"s{i}", changed=before != after)
        rows.append(Example(id=f"c{i}:g", question_type="generative_explanation",
                            messages=[{"role": "user", "content": user}],
                            answer=change_sentence(before, after),
                            reference={"before": before, "after": after}, **common))
        rows.append(Example(id=f"c{i}:o", question_type="orig_match",
                            messages=[{"role": "user", "content": user}],
                            answer=label_sentence(before), reference={"label": before}, **common))
        rows.append(Example(id=f"c{i}:c", question_type="change_match",
                            messages=[{"role": "user", "content": user + " unmonitored"}],
                            answer=label_sentence(after), reference={"label": after}, **common))
    cut = int(0.75 * len(rows)) // 3 * 3
    write_examples(out / TRAIN_FILE, rows[:cut])
    write_examples(out / TEST_FILE, rows[cut:])
    return out


def vector_folder(tmp: Path, d: int, n: int = 16, seed: int = 0, layer: int = 1,
                  name: str = "feat", clusters: bool = False) -> Path:
    """Feature-description examples: one random (d,) vector per feature; two descriptions
    alternate with the sign of the vector's first coordinate (readable only from the vector).
    ``clusters``: the vectors are instead one of two random prototypes plus small noise, and the
    description names the prototype (learnable from a few dozen examples)."""
    out = tmp / name
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    vecs, rows = {}, []
    protos = torch.randn(2, d, generator=g)
    for f in range(n):
        v = torch.randn(d, generator=g)
        desc = "fires on refusals" if v[0] > 0 else "fires on training talk"
        if clusters:
            v = protos[f % 2] + 0.3 * v
            desc = ("fires on refusals", "fires on training talk")[f % 2]
        vecs[f"f{f}"] = v
        rows.append(Example(id=f"f{f}", task="features", question_type="feature_description",
                            unit=f"feature:{f}",
                            messages=[{"role": "user", "content": f"Feature {VECTOR_MARKER} means?"}],
                            answer=desc, reference={"descriptions": [desc]},
                            vectors=[{"key": f"f{f}", "layer": layer}]))
    save_file(vecs, str(out / VECTORS_FILE))
    cut = int(0.75 * n)
    write_examples(out / TRAIN_FILE, rows[:cut])
    write_examples(out / TEST_FILE, rows[cut:])
    return out


def tiny_model_with_head(folder: Path, tokenizer, scale: float = 1.0, shift: float = 0.0) -> Path:
    """A tiny llama saved to ``folder`` with ``lm_head = scale * W + shift`` (other weights than
    the session's tiny model; a large scale lets its logits leave ~uniform so it can learn)."""
    from tiny_models import build_model

    m = build_model("llama", len(tokenizer))
    with torch.no_grad():
        m.lm_head.weight.mul_(scale).add_(shift)
    m.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder

