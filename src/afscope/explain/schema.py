"""The explainer's task files: one example per JSON line, vectors in a safetensors file beside it.

An ``explain data`` folder holds ``train.jsonl``, ``test.jsonl``, ``vectors.safetensors``,
``stats.json`` and ``manifest.json``. An example is a chat prompt (system + user turns, never the
answer) plus the target ``answer``; a user turn may contain :data:`VECTOR_MARKER` once per entry of
``vectors``, in order: at those places the explainer reads a vector as a continuous token
(:mod:`afscope.explain.inject`). Vectors are referenced by tensor name, so one steering direction
shared by many examples is stored once, and nothing is pickled.

The split is by ``unit`` (a scenario, or a feature): every example of a unit is on one side, so a
feature's description or a scenario's answer never reaches its own test.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from afscope.errors import ArtifactError, DataError
from afscope.fileio import atomic_write_text

TRAIN_FILE = "train.jsonl"
TEST_FILE = "test.jsonl"
VECTORS_FILE = "vectors.safetensors"
STATS_FILE = "stats.json"
#: Where a vector enters the prompt (replaced by placeholder tokens when encoded).
VECTOR_MARKER = "<|afscope_vector|>"
#: Every key a ``reference`` can hold. Files write all of them (null where unused) so that every
#: line has the same fields: ``datasets.load_dataset("json")`` types a dict whose keys vary by
#: line as opaque JSON, which then matches no other file. Reading drops the nulls again.
REFERENCE_KEYS: tuple[str, ...] = ("before", "after", "label", "descriptions", "tokens", "novel")

Task = Literal["context_ablation", "steering", "features"]
TASKS: tuple[str, ...] = ("context_ablation", "steering", "features")
#: question types per task (seed 000's three for context ablation).
QUESTION_TYPES: dict[str, tuple[str, ...]] = {
    "context_ablation": ("generative_explanation", "orig_match", "change_match"),
    "steering": ("steering_prediction",),
    "features": ("feature_description", "fires_on", "promotes"),
}


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1)


class VectorRef(BaseModel):
    """A vector of ``vectors.safetensors`` (``key``) read at target-model ``layer``."""

    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1)
    layer: int


class Example(BaseModel):
    """One explainer example (see the module docstring).

    ``reference``: behaviour tasks ``{"before": label, "after": label}`` (generative questions) or
    ``{"label": label}`` (orig_match / change_match); features ``{"descriptions": [..]}``, or for
    token answers (fires_on / promotes) ``{"tokens": [..], "novel": bool}`` where ``novel`` marks a
    test feature none of whose target tokens occurs in any training target of its question type.
    ``changed``: whether behaviour changed (behaviour tasks), else None. ``meta``: provenance
    (source record id, layer, alpha, feature index, ...), never read by training.
    """

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    task: Task
    question_type: str
    unit: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    answer: str = Field(min_length=1)
    reference: dict[str, Any]
    changed: bool | None = None
    vectors: list[VectorRef] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("reference")
    @classmethod
    def _drop_unused(cls, v: dict[str, Any]) -> dict[str, Any]:
        return {k: x for k, x in v.items() if x is not None}

    @model_validator(mode="after")
    def _check(self) -> Example:
        if self.question_type not in QUESTION_TYPES[self.task]:
            raise ValueError(f"question_type {self.question_type!r} is not one of "
                             f"{list(QUESTION_TYPES[self.task])} (task {self.task})")
        if self.messages[-1].role == "assistant":
            raise ValueError("the last message is the assistant's: the prompt must end before "
                             "the answer (the answer goes in 'answer')")
        n = sum(m.content.count(VECTOR_MARKER) for m in self.messages)
        if n != len(self.vectors):
            raise ValueError(f"{n} vector marker(s) in the messages but {len(self.vectors)} "
                             "entries in 'vectors'")
        return self

    def chat(self) -> list[dict[str, str]]:
        return [m.model_dump() for m in self.messages]

    def to_row(self) -> dict[str, Any]:
        """The JSON line of this example: ``reference`` padded to :data:`REFERENCE_KEYS`."""
        row = self.model_dump(mode="json")
        row["reference"] = padded_reference(row["reference"])
        return row


def padded_reference(reference: dict[str, Any]) -> dict[str, Any]:
    """``reference`` with every key of :data:`REFERENCE_KEYS` (null where unused), then any other
    key it has, so the lines of a file share one set of fields."""
    return {**dict.fromkeys(REFERENCE_KEYS), **reference}


def read_examples(path: str | Path) -> list[Example]:
    """Examples of a ``.jsonl`` task file; a bad line is a DataError naming file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: task file not found; run `afscope explain data` first")
    out: list[Example] = []
    ids: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{i}: not valid JSON: {e.msg}") from None
            try:
                ex = Example.model_validate(obj)
            except ValidationError as e:
                err = e.errors()[0]
                field = ".".join(str(x) for x in err["loc"]) or "<record>"
                rid = obj.get("id") if isinstance(obj, dict) else None
                raise DataError(f"{path}:{i} (id {rid!r}): field {field!r}: {err['msg']}") from None
            if ex.id in ids:
                raise DataError(f"{path}:{i}: duplicate id {ex.id!r}")
            ids.add(ex.id)
            out.append(ex)
    return out


def write_examples(path: str | Path, examples: Iterable[Example]) -> Path:
    """Write a task file atomically (one :meth:`Example.to_row` per line, keys in schema order)."""
    text = "".join(json.dumps(ex.to_row(), ensure_ascii=False) + "\n" for ex in examples)
    atomic_write_text(Path(path), text)
    return Path(path)


def read_vectors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(name -> (D,) float32 tensor, metadata)`` of a ``vectors.safetensors`` file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: vectors file not found")
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
        vecs = {k: f.get_tensor(k).float() for k in f.keys()}
    for k, v in vecs.items():
        if v.ndim != 1 or not torch.isfinite(v).all():
            raise DataError(f"{path}: vector {k!r} must be a finite 1-D tensor, got shape "
                            f"{tuple(v.shape)}")
    return vecs, meta


def check_vectors(examples: Sequence[Example], vectors: dict[str, torch.Tensor], source: str
                  ) -> None:
    """Every referenced vector exists and all share one width (the target model's d_model)."""
    widths = {int(v.shape[0]) for v in vectors.values()}
    if len(widths) > 1:
        raise DataError(f"{source}: vectors of different widths {sorted(widths)}")
    for ex in examples:
        for ref in ex.vectors:
            if ref.key not in vectors:
                raise DataError(f"{source}: example {ex.id!r}: vector {ref.key!r} is not in "
                                f"{VECTORS_FILE}")
