"""Sparse autoencoders in the SAELens folder format: ReLU / TopK / JumpReLU, load, save, train."""

from afscope.sae.base import ARCHITECTURES, SAE, ArchSpec, register_architecture
from afscope.sae.config import SAEConfig, SAETrainConfig
from afscope.sae.encode import SAEEncoder, extract_with_sae, sae_encoder
from afscope.sae.io import CFG_FILE, WEIGHTS_FILE, load_sae, read_sae_config, save_sae
from afscope.sae.pretrained import load_pretrained_sae, resolve_sae
from afscope.sae.run import run_sae_train
from afscope.sae.train import evaluate_sae, train_sae

__all__ = [
    "ARCHITECTURES", "CFG_FILE", "SAE", "WEIGHTS_FILE", "ArchSpec", "SAEConfig", "SAEEncoder",
    "SAETrainConfig", "evaluate_sae", "extract_with_sae", "load_pretrained_sae", "load_sae", "read_sae_config",
    "register_architecture", "resolve_sae", "run_sae_train", "sae_encoder", "save_sae", "train_sae",
]
