"""Helpers of the counterfactual tests: a loaded tiny target, a forward-call counter, configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from afscope.counterfactual import ContextConfig, SteeringConfig
from afscope.llm import Completion, LLMBackend
from afscope.models import LoadedModel, load_model


class CountingModel:
    """Counts forward passes of a loaded model (a pre-hook on the top module)."""

    def __init__(self, lm: LoadedModel):
        self.calls = 0
        lm.model.register_forward_pre_hook(self._hook)

    def _hook(self, *_: Any) -> None:
        self.calls += 1


def tiny_lm(model_dir: Path) -> LoadedModel:
    return load_model(str(model_dir))


def context_cfg(model_dir: Path, out: Path, **kw: Any) -> ContextConfig:
    base: dict[str, Any] = dict(model=str(model_dir), out=out, n=6, max_tokens=6, batch_size=4,
                                test_fraction=0.34)
    base.update(kw)
    return ContextConfig(**base)


def steering_cfg(model_dir: Path, out: Path, vector: Path, **kw: Any) -> SteeringConfig:
    base: dict[str, Any] = dict(model=str(model_dir), out=out, vector=vector, n=3, max_tokens=6,
                                batch_size=4, alphas=[0.0, 50.0], layers=[1], test_fraction=0.34)
    base.update(kw)
    return SteeringConfig(**base)


class CycleJudge(LLMBackend):
    """An LLM judge that answers from a fixed cycle of replies, one per prompt, in order."""

    def __init__(self, replies: list[str]):
        super().__init__("cycle", on_error="record")
        self.replies = replies
        self.n = 0

    @classmethod
    def from_config(cls, cfg, **overrides):
        raise NotImplementedError("built directly in tests")

    def _generate(self, convos, params):
        out = []
        for _ in convos:
            out.append(Completion(self.replies[self.n % len(self.replies)], "stop"))
            self.n += 1
        return out


def verdict(behaviour: str, af: bool = False) -> str:
    return (f"ALIGNMENT: 50\nCOHERENCE: 50\nBEHAVIOUR: {behaviour}\n"
            f"AF: {'yes' if af else 'no'}")
