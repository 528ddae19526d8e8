"""Config of ``afscope extract``: every field is also a flag (``--layers 6,12 --pool max,mean``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from afscope.config import BaseConfig
from afscope.distributed import ShardSpec, parse_shard

Pool = Literal["max", "mean", "last"]


class ExtractConfig(BaseConfig):
    """Run a model over a dataset and cache pooled residual activations per layer."""

    model: str = Field("smollm2-135m-instruct",
                       description="Embedded model name, local HF folder or hub id.")
    data: Path = Field(description="Dataset file (JSON, JSONL, CSV) or HF dataset folder.")
    out: Path = Field(Path("runs/extract"), description="Cache / run directory to write.")
    layers: list[int | float] = Field(
        [0.5], description="Layers: int, negative int, or fraction of depth (0.5 = middle).")
    pool: list[Pool] = Field(["max", "mean"], description="Poolings per sample: max, mean, last.")
    mask: str = Field("all", description="Token mask: all, response, last or last-K.")
    skip_first: int = Field(0, ge=0, description=(
        "Leave the first N tokens out of pooling (0 = the seeds' behaviour; 1 drops the "
        "attention-sink position, which otherwise decides many max-pooled dimensions)."))
    max_length: int = Field(1024, gt=0, description="Truncate inputs to this many tokens.")
    batch_tokens: int = Field(2048, gt=0, description=(
        "Token budget of a padded batch (rows x longest row); 2048 was fastest on a 2-core CPU "
        "(benchmarks/bench_extract.py), raise it on a GPU."))
    chunk_size: int = Field(256, gt=0,
                            description="Records per shard file; the unit of resume and --shard.")
    shard: ShardSpec = Field(None, description=(
        "Process only shard i/n of the chunks, e.g. 0/4 (under torchrun / accelerate launch or "
        "in a Slurm array it comes from the environment)."))
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32",
                                                            description="Model dtype.")
    device: str = Field("cpu", description="torch device, e.g. cpu or cuda:0.")
    label_map: dict[str, int] | None = Field(None, description="Extra label -> 0/1 mapping.")
    sae: list[Path] = Field([], description=(
        "SAE folders (SAELens format) to encode into the cache, one per layer; each SAE's "
        "hook_layer must be one of --layers. Stores per-sample max/mean per latent, sparse."))
    token_topk: int = Field(0, ge=0, description=(
        "With --sae: also store the top-K latents of every masked token (0 = off); the "
        "feature browser highlights tokens from them."))
    overwrite: bool = Field(False, description="Replace a cache made from another config.")
    seed: int = Field(0, description="Seed (extraction is deterministic; recorded for the run).")

    @property
    def shard_index(self) -> tuple[int, int]:
        return parse_shard(self.shard) or (0, 1)
