"""Decoding settings shared by the generation engine and every LLM backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from afscope.errors import ConfigError


@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings; part of the cache key, so two settings never share an answer.

    ``temperature == 0`` means greedy decoding (``do_sample=False`` locally). ``seed`` drives local
    sampling and is sent to servers that accept one. ``stop`` strings cut the answer before them.
    """

    temperature: float = 0.0
    max_tokens: int = 512
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.temperature <= 2.0:
            raise ConfigError(f"GenerationParams: field 'temperature': expected 0..2, got {self.temperature}")
        if self.max_tokens < 1:
            raise ConfigError(f"GenerationParams: field 'max_tokens': expected >= 1, got {self.max_tokens}")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"GenerationParams: field 'top_p': expected (0, 1], got {self.top_p}")
        if isinstance(self.stop, str) or not all(isinstance(s, str) and s for s in self.stop):
            raise ConfigError("GenerationParams: field 'stop': expected a tuple of non-empty strings")
        object.__setattr__(self, "stop", tuple(self.stop))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


def apply_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop string; returns (text, whether it was cut)."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
