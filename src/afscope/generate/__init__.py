"""Batched, steerable, reproducible generation (the behaviour lab's engine).

>>> from afscope.generate import GenerationParams, Steering, generate      # doctest: +SKIP
>>> gens = generate(model, tok, ["Hello!"], GenerationParams(max_tokens=32),
...                 steering=Steering({12: v}, alpha=4.0, positions="generated"))
"""

from afscope.distributed import parse_shard
from afscope.generate.engine import Generation, encode_prompts, generate, render_prompt
from afscope.generate.params import GenerationParams, apply_stop
from afscope.generate.rows import GenerateStats, generate_rows, row_seed
from afscope.generate.served import ServedModel, served_target
from afscope.generate.steering import POSITIONS, Steering

__all__ = [
    "POSITIONS", "GenerateStats", "Generation", "GenerationParams", "ServedModel", "Steering",
    "apply_stop", "encode_prompts", "generate", "generate_rows", "parse_shard", "render_prompt",
    "row_seed", "served_target",
]
