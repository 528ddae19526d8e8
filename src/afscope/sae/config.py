"""Configs of the SAE component: the architecture of one SAE, and how to train a TopK one.

:class:`SAEConfig` holds the keys of SAELens's ``cfg.json`` that change the math (``architecture``,
``d_in``, ``d_sae``, ``dtype``, ``k``, ``apply_b_dec_to_input``, ``rescale_acts_by_decoder_norm``)
plus optional provenance (model, hook). :mod:`afscope.sae.io` maps it to and from SAELens 6 folders.
:class:`SAETrainConfig` is the config of ``afscope sae train`` (fields double as ``--help``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from afscope.config import BaseConfig
from afscope.distributed import ShardSpec

Architecture = Literal["relu", "topk", "jumprelu"]
DType = Literal["float32", "bfloat16", "float16"]
SAEDType = Literal["float32", "float64", "bfloat16", "float16"]
"""Parameter dtypes of an SAE: the ones SAELens 6 writes (``float64`` included)."""

ARCH_ALIASES = {"standard": "relu"}
"""SAELens 6 calls the ReLU (L1-trained) SAE ``standard``; afscope keeps ``relu`` as its name."""


class SAEConfig(BaseConfig):
    """Shape and activation of one sparse autoencoder (the keys of SAELens ``cfg.json`` that
    change the math, plus provenance).

    ``hook_layer`` is afscope's layer index: the residual stream *after* block ``hook_layer``
    (``blocks.<hook_layer>.hook_resid_post``), the layer :func:`afscope.sae.sae_encoder` feeds it.
    """

    architecture: Architecture = Field(
        description="Activation: relu (SAELens 'standard'), topk or jumprelu.")
    d_in: int = Field(gt=0, description="Width of the input activations (the model's d_model).")
    d_sae: int = Field(gt=0, description="Number of latents (dictionary size).")
    k: int | None = Field(None, gt=0, description="Active latents per row (topk only).")
    dtype: SAEDType = Field("float32", description="Dtype of the parameters.")
    apply_b_dec_to_input: bool = Field(
        True, description="Subtract b_dec from the input before encoding (SAELens default; "
        "GemmaScope JumpReLU SAEs set it False).")
    rescale_acts_by_decoder_norm: bool = Field(
        False, description="topk only (SAELens TopK key): multiply the pre-activations by the "
        "decoder row norms ||W_dec[i]|| before choosing the top k, and divide the latents by them "
        "again when decoding, so that the SAE acts as if W_dec had unit rows.")
    model_name: str | None = Field(None, description="Model the SAE was trained on (provenance).")
    hook_name: str | None = Field(None, description="Hook point, e.g. blocks.6.hook_resid_post.")
    hook_layer: int | None = Field(
        None, description="Residual-stream layer the SAE reads (output of this block).")

    @model_validator(mode="before")
    @classmethod
    def _standard_is_relu(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("architecture") in ARCH_ALIASES:
            data = {**data, "architecture": ARCH_ALIASES[data["architecture"]]}
        return data

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
        elif self.rescale_acts_by_decoder_norm:
            raise ValueError(f"field 'rescale_acts_by_decoder_norm': only used by architecture "
                             f"'topk', not {self.architecture!r}; leave it False")
        return self


class SAETrainConfig(BaseConfig):
    """Train a TopK SAE on one layer's per-token activations (Gao et al. 2024 / sparsify recipe).

    ``afscope sae train`` runs ``model`` over ``data``, holds out ``heldout_fraction`` of the
    records (whole texts: the tokens of one text are correlated) and collects up to ``max_tokens``
    masked tokens of ``layer`` from the rest; explained variance, L0 and dead fraction are then
    measured on the held-out tokens. :func:`afscope.sae.train_sae` reads only the optimisation
    fields.
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
    heldout_fraction: float = Field(
        0.1, gt=0, lt=1, description="Fraction of the records (whole texts) held out of training; "
        "explained variance, L0 and dead fraction are reported on their tokens (at most "
        "heldout_fraction x max_tokens of them).")
    block_records: int = Field(
        256, gt=0, description="Records per token block, the unit of --shard and of resume; "
        "each block is run through the model on its own (its batches are planned by length "
        "within it), so this changes which tokens a capped run keeps.")
    shard: ShardSpec = Field(
        None, description="i/n: collect only blocks i, i+n, ... (0-based) of the tokens into "
        "OUT/tokens and stop, training nothing; the same command without it then trains (under "
        "torchrun / accelerate launch or in a Slurm array it comes from the environment).")
    keep_tokens: bool = Field(
        False, description="Keep OUT/tokens (the collected activations, in blocks of records) "
        "after training: a later run with the same model, data, layer, mask, lengths, dtype, "
        "seed and held-out fraction reads them instead of running the model.")
    dtype: DType = Field("float32", description="Model dtype.")
    device: str = Field("cpu", description="torch device for the model and the SAE.")
    label_map: dict[str, int] | None = Field(None, description="Extra label -> 0/1 mapping.")
    d_sae: int = Field(gt=0, description="Number of latents.")
    k: int = Field(32, gt=0, description="Active latents per row.")
    lr: float = Field(
        3e-3, gt=0, description="Adam learning rate (3e-3: the best held-out explained variance "
        "of 3e-4/1e-3/3e-3/1e-2 for smollm2's layer 14, d_sae 4096, k 32, 0.3M tokens; 1e-2 left "
        "half the latents dead).")
    lr_decay_fraction: float = Field(
        0.2, ge=0, le=1, description="Decay the learning rate linearly to 0 over this last "
        "fraction of the steps (Anthropic's recipe; SAELens lr_decay_steps: +0.005 held-out "
        "explained variance at lr 3e-3 and 0.3M tokens, +0.011 at 1M); 0 keeps it constant.")
    epochs: int = Field(20, gt=0, description="Passes over the training tokens; the token budget "
                        "is epochs x training tokens.")
    batch_size: int = Field(
        1024, gt=0, description="Rows (tokens) per optimizer step (1024 at lr 3e-3 matched the "
        "held-out explained variance of 256 at lr 1e-3 at 2.9x the tokens/s: the optimizer step "
        "touches every parameter, the sparse forward/backward only k latents per row).")
    max_grad_norm: float | None = Field(
        1.0, gt=0, description="Clip the gradient's global L2 norm to this (SAELens clips at "
        "1.0); null (YAML) disables it. The loss is a fraction of variance, so the norm does not "
        "depend on the activations' scale: it ran 0.02-0.07 on smollm2, and 1.0 only catches "
        "spikes (e.g. a batch of near-identical tokens, whose small variance inflates the loss).")
    auxk_alpha: float = Field(
        1 / 32, ge=0, description="Weight of the AuxK loss that revives dead latents "
        "(1/32 as in Gao et al. 2024); 0 disables it.")
    k_aux: int | None = Field(
        None, gt=0, description="Dead latents that reconstruct the residual in the AuxK loss; "
        "unset: d_in // 2 (Gao et al. 2024, App. B.1). The loss is scaled by "
        "min(1, n_dead / k_aux), so a few dead latents weigh little.")
    dead_tokens: int | None = Field(
        None, gt=0, description="A latent that has not fired on any of the last N training "
        "tokens is dead (it enters the AuxK loss and the dead_fraction_window metric); unset: "
        "min(10M, token budget / 10), 10M being Gao et al.'s and sparsify's window.")
    seed: int = Field(0, description="Seed of the held-out split, initialization and batch "
                      "order.")

    @model_validator(mode="after")
    def _check_k(self) -> SAETrainConfig:
        if self.k > self.d_sae:
            raise ValueError(f"field 'k': must be <= d_sae={self.d_sae}, got {self.k}")
        return self
