"""Configs of the ``afscope data`` commands (validate, split, synth).

Every field is a ``--flag`` (see :mod:`afscope.cli.options`) and a key of the YAML ``--config``;
descriptions double as ``--help``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator

from afscope.config import BaseConfig
from afscope.data.split import DEFAULT_FRACTIONS, check_fractions
from afscope.errors import ConfigError


def parse_fractions(value: Any) -> Any:
    """Accept ``"train=0.8,test=0.2"``, ``["train=0.8", "test=0.2"]``, YAML text or a mapping."""
    if isinstance(value, str):
        text = value.strip()
        if "=" in text:
            value = [part for part in text.split(",") if part.strip()]
        else:
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise ValueError(f"not 'name=fraction,...' nor a YAML mapping: {e}") from None
    if isinstance(value, (list, tuple)):
        out: dict[str, float] = {}
        for part in value:
            if not isinstance(part, str) or "=" not in part:
                raise ValueError(f"expected 'name=fraction' items, got {part!r}")
            k, v = part.split("=", 1)
            try:
                out[k.strip()] = float(v)
            except ValueError:
                raise ValueError(f"split {k.strip()!r}: {v.strip()!r} is not a number") from None
        value = out
    if not isinstance(value, dict):
        raise ValueError(f"expected e.g. 'train=0.8,test=0.2' or a mapping, got {value!r}")
    try:
        return check_fractions(value)
    except ConfigError as e:
        raise ValueError(str(e)) from None


class LoadConfig(BaseConfig):
    """How to read a dataset file: field names, label mapping, duplicate policy."""

    text_field: str = Field("text", description="Field (column) holding the trace text.")
    label_field: str = Field("label", description="Field holding the label / fine category.")
    category_field: str | None = Field(
        None, description="Field holding the fine category; default: a known 'class' field, "
                          "else the label field.")
    label_map: dict[str, int] | None = Field(
        None, description="Map extra labels to 0/1, e.g. '{deceptive: 1, honest: 0}' (non-string "
                          "labels by their JSON spelling: '{\"true\": 1, \"false\": 0}').")
    on_duplicate: Literal["drop", "warn", "error"] = Field(
        "drop", description="Records with the same normalized text: drop the copies (warning), "
                            "keep them (warning) or fail.")
    max_chars: int | None = Field(
        None, ge=1, description="Warn about texts longer than this many characters.")
    hf_split: str = Field("train", description="Split to read from a Hugging Face dataset.")

    @field_validator("label_map")
    @classmethod
    def _check_label_map(cls, v: dict[str, int] | None) -> dict[str, int] | None:
        if v is not None:
            bad = {k: x for k, x in v.items() if x not in (0, 1)}
            if bad:
                raise ValueError(f"label_map values must be 0 or 1, got {bad}")
        return v

    def load_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`afscope.data.load.load_dataset`."""
        return {"text_field": self.text_field, "label_field": self.label_field,
                "category_field": self.category_field, "label_map": self.label_map,
                "on_duplicate": self.on_duplicate, "max_chars": self.max_chars,
                "hf_split": self.hf_split}


class DataValidateConfig(LoadConfig):
    """``afscope data validate PATH...``: load each file, report counts, fail on bad input."""

    paths: list[str] = Field(
        default_factory=list,
        description="Dataset files, HF folders or hub names (also positional).")


class DataSplitConfig(LoadConfig):
    """``afscope data split``: deterministic stratified train/(val/)test files in a run folder."""

    path: str | None = Field(None, description="Dataset to split (file, HF folder or hub name; "
                                               "also positional).")
    out: Path | None = Field(None, description="Run directory for the split files and manifest "
                                               "[default: runs/data-split-<time>].")
    fractions: dict[str, float] | str = Field(
        default_factory=lambda: dict(DEFAULT_FRACTIONS),
        description="Split fractions summing to 1, e.g. 'train=0.8,test=0.2' or "
                    "'train=0.7,val=0.1,test=0.2'.")
    seed: int = Field(0, description="Seed of the split permutation.")
    stratify_by: str | None = Field(
        "category", description="Record field to stratify by (category, label, pattern, ...); "
                                "'none' for no stratification.")
    group_by: str | None = Field(None, description="Field whose records must share a split "
                                                   "(e.g. pair_id, scenario).")
    eval_only: list[str] = Field(
        default_factory=list,
        description="Eval-only datasets (comma-separated) that the first split (training) must "
                    "not overlap, exactly or near-duplicate; overlap fails the command.")
    leakage_threshold: float = Field(0.8, gt=0, le=1, description="Jaccard similarity (word "
                                     "5-grams) at which a record counts as a near duplicate.")

    @field_validator("fractions", mode="before")
    @classmethod
    def _parse_fractions(cls, v: Any) -> Any:
        return parse_fractions(v)

    @field_validator("stratify_by", "group_by", mode="before")
    @classmethod
    def _none_string(cls, v: Any) -> Any:
        return None if isinstance(v, str) and v.strip().lower() in ("none", "null", "") else v

    @property
    def fraction_map(self) -> dict[str, float]:
        """The fractions as a mapping (the validator has already parsed strings)."""
        f = self.fractions
        return dict(f) if isinstance(f, dict) else parse_fractions(f)


class DataSynthConfig(BaseConfig):
    """``afscope data synth``: the seeded synthetic AF corpus, written as JSONL."""

    n: int = Field(1000, ge=1, description="Number of traces to generate.")
    seed: int = Field(0, description="Generator seed; same seed, same corpus.")
    out: Path = Field(Path("runs/synth/corpus.jsonl"),
                      description="Output JSONL; the manifest goes to <out stem>.manifest.json "
                                  "next to it.")
    minimal_pairs: float = Field(0.2, ge=0.0, le=1.0,
                                 description="Fraction of traces generated as minimal pairs "
                                             "(same text, different intent).")
    mix: dict[str, float] | None = Field(
        None, description="Category mix, e.g. '{alignment_faking: 0.4, aligned: 0.2, ...}' "
                          "[default: the generator's].")
