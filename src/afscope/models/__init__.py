"""Model registry (embedded names + any HF id/path), chat formatting, residual-stream hooks, masks."""

from afscope.models.chat import PLAIN_TEMPLATE, render_chat
from afscope.models.embedded import EMBEDDED, EmbeddedModel, is_prepared, prepare
from afscope.models.hooks import (
                                  StopForward,
                                  add_to_residual,
                                  decoder_layers,
                                  edit_residual,
                                  record_residual,
                                  resolve_layer,
                                  resolve_layers,
)
from afscope.models.loading import LoadedModel, ModelInfo, load_model, text_config
from afscope.models.masks import MaskSpec, token_mask

__all__ = [
    "EMBEDDED", "EmbeddedModel", "LoadedModel", "MaskSpec", "ModelInfo", "PLAIN_TEMPLATE",
    "StopForward", "add_to_residual", "decoder_layers", "edit_residual", "is_prepared",
    "load_model", "prepare", "record_residual", "render_chat", "resolve_layer", "resolve_layers",
    "text_config", "token_mask",
]
