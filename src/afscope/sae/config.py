"""Configs of the SAE component: the architecture of one SAE, and how to train a TopK one.

:class:`SAEConfig` mirrors the keys SAELens writes to ``cfg.json`` (``architecture``, ``d_in``,
``d_sae``, ``dtype``, ``k``, ``apply_b_dec_to_input``) plus optional provenance (model, hook).
:class:`SAETrainConfig` is the config of ``afscope sae train`` (fields double as ``--help``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from afscope.config import BaseConfig

Architecture = Literal["relu", "topk", "jumprelu"]
DType = Literal["float32", "bfloat16", "float16"]


class SAEConfig(BaseConfig):
    """Shape and activation of one sparse autoencoder (SAELens ``cfg.json`` layout)."""

    architecture: Architecture = Field(description="Activation: relu, topk or jumprelu.")
    d_in: int = Field(gt=0, description="Width of the input activations (the model's d_model).")
    d_sae: int = Field(gt=0, description="Number of latents (dictionary size).")
    k: int | None = Field(None, gt=0, description="Active latents per row (topk only).")
    dtype: DType = Field("float32", description="Dtype of the parameters.")
    apply_b_dec_to_input: bool = Field(
        True, description="Subtract b_dec from the input before encoding (SAELens default; "
        "GemmaScope JumpReLU SAEs set it False).")
    model_name: str | None = Field(None, description="Model the SAE was trained on (provenance).")
    hook_name: str | None = Field(None, description="Hook point, e.g. blocks.6.hook_resid_post.")
    hook_layer: int | None = Field(None, description="Layer index of the hook point.")

    @model_validator(mode="after")
    def _check_k(self) -> SAEConfig:
        if self.architecture == "topk":
            if self.k is None:
                raise ValueError("field 'k': required when architecture is 'topk'")
            if self.k > self.d_sae:
                raise ValueError(f"field 'k': must be <= d_sae={self.d_sae}, got {self.k}")
        elif self.k is not None:
            raise ValueError(f"field 'k': only used by architecture 'topk', "
                             f"not {self.architecture!r}; leave it unset")
        return self


class SAETrainConfig(BaseConfig):
    """Train a TopK SAE on one layer's per-token activations (OpenAI / sparsify recipe).

    ``afscope sae train`` runs ``model`` over ``data`` and collects up to ``max_tokens`` masked
    tokens of ``layer``; :func:`afscope.sae.train_sae` reads only the optimisation fields.
    """

    model: str = Field("smollm2-135m-instruct",
                       description="Embedded model name, local HF folder or hub id.")
    data: Path | None = Field(None, description="Dataset whose tokens the SAE is trained on.")
    layer: int | float = Field(0.5, description="Layer: int, negative int or fraction of depth.")
    out: Path = Field(Path("runs/sae"), description="Run directory; the SAE goes to OUT/sae.")
    mask: str = Field("all", description="Token mask: all, response, last or last-K.")
    skip_first: int = Field(1, ge=0, description="Leave out the first N tokens (attention sink).")
    max_length: int = Field(512, gt=0, description="Truncate inputs to this many tokens.")
    batch_tokens: int = Field(2048, gt=0, description="Token budget of a forward batch.")
    max_tokens: int = Field(200_000, gt=0, description="Tokens to collect for training.")
    dtype: DType = Field("float32", description="Model dtype.")
    device: str = Field("cpu", description="torch device for the model and the SAE.")
    label_map: dict[str, int] | None = Field(None, description="Extra label -> 0/1 mapping.")
    d_sae: int = Field(gt=0, description="Number of latents.")
    k: int = Field(32, gt=0, description="Active latents per row.")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate.")
    epochs: int = Field(20, gt=0, description="Passes over the data.")
    batch_size: int = Field(256, gt=0, description="Rows per optimizer step.")
    auxk_alpha: float = Field(
        1 / 32, ge=0, description="Weight of the AuxK loss that revives dead latents "
        "(1/32 as in Gao et al. 2024); 0 disables it.")
    dead_tokens: int = Field(
        10_000, gt=0, description="A latent that has not fired for this many rows counts as "
        "dead for the AuxK loss.")
    seed: int = Field(0, description="Seed of the initialization and the batch order.")

    @model_validator(mode="after")
    def _check_k(self) -> SAETrainConfig:
        if self.k > self.d_sae:
            raise ValueError(f"field 'k': must be <= d_sae={self.d_sae}, got {self.k}")
        return self
