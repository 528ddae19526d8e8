"""Sparse autoencoders in the SAELens folder format: ReLU / TopK / JumpReLU, load, save, train."""

from afscope.sae.base import ARCHITECTURES, SAE, ArchSpec, register_architecture
from afscope.sae.config import SAEConfig, SAETrainConfig
from afscope.sae.io import CFG_FILE, WEIGHTS_FILE, load_sae, read_sae_config, save_sae
from afscope.sae.train import evaluate_sae, train_sae

__all__ = [
    "ARCHITECTURES", "CFG_FILE", "SAE", "WEIGHTS_FILE", "ArchSpec", "SAEConfig", "SAETrainConfig",
    "evaluate_sae", "load_sae", "read_sae_config", "register_architecture", "save_sae",
    "train_sae",
]
