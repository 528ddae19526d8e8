"""One way to load a model: embedded name, local folder, or HF hub id, through the same call."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from afscope.errors import ArtifactError
from afscope.fileio import sha256_json
from afscope.models.device import DTYPES, SHARD, device_and_dtype, load_kwargs
from afscope.models.embedded import EMBEDDED, MODEL_INFO, prepare

log = logging.getLogger(__name__)

__all__ = ["DTYPES", "LoadedModel", "ModelInfo", "load_model", "text_config"]


@dataclass(frozen=True)
class ModelInfo:
    """What a manifest needs to identify a model: where it came from and which exact weights."""

    name: str
    source: str
    revision: str | None
    weights_sha256: str | None
    architecture: str
    n_layers: int
    d_model: int
    dtype: str
    device: str
    has_chat_template: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def fingerprint(self) -> str:
        """Identifies the weights (not the dtype/device they were loaded in)."""
        return sha256_json({"source": self.source, "revision": self.revision,
                            "weights": self.weights_sha256, "arch": self.architecture})


@dataclass
class LoadedModel:
    """A causal LM, its tokenizer and its :class:`ModelInfo`."""

    model: Any
    tokenizer: Any
    info: ModelInfo


def text_config(config: Any) -> Any:
    """The language-model part of a config (multimodal configs nest it in ``text_config``)."""
    return getattr(config, "text_config", None) or config


def _weights_fingerprint(folder: Path) -> str | None:
    """Cheap identity of local weights: the recorded sha256 when afscope made the folder, else
    file names, sizes and the safetensors headers' metadata (hashing GBs on each load is too slow)."""
    info = folder / MODEL_INFO
    if info.exists():
        return json.loads(info.read_text()).get("weights_sha256")
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    if not files:
        return None
    return sha256_json([(f.name, f.stat().st_size) for f in files])


def load_tokenizer(name_or_path: str) -> Any:
    """The tokenizer alone of an embedded model (prepared on first use), a folder or a hub id: for
    naming tokens without loading weights."""
    from transformers import AutoTokenizer

    folder = str(prepare(name_or_path)) if name_or_path in EMBEDDED else name_or_path
    try:
        return AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as e:
        raise ArtifactError(f"could not load the tokenizer of {name_or_path!r}: {e}") from None


def load_model(name_or_path: str, *, dtype: str = "float32", device: str = "cpu",
               revision: str | None = None, trust_remote_code: bool = False,
               gguf_file: str | None = None) -> LoadedModel:
    """Load an embedded model (prepared on first use), a local folder, or a hub id.

    ``device``: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``shard`` (``device_map="auto"``
    over every visible GPU); ``dtype``: ``auto`` (bf16 on GPU, fp32 on CPU) or a dtype name. Both
    go through :func:`afscope.models.device.device_and_dtype`, and :class:`ModelInfo` records the
    resolved values. ``trust_remote_code`` is off by default: a hub id cannot run code on the
    user's machine unless they ask for it.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # afscope shows its own progress
    device, dtype = device_and_dtype(str(device), dtype)
    torch_dtype = getattr(torch, dtype)
    if name_or_path in EMBEDDED:
        folder: str | Path = prepare(name_or_path)
        source = f"embedded:{EMBEDDED[name_or_path].package}"
    else:
        folder = name_or_path
        source = str(Path(name_or_path).resolve()) if Path(name_or_path).exists() else name_or_path
    kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype,
                                                     **load_kwargs(device), **kwargs)
    except (OSError, ValueError) as e:
        raise ArtifactError(f"could not load model {name_or_path!r}: {e}") from None
    if device != SHARD:  # a dispatched (sharded) model must not be moved as a whole
        model.to(device)
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    cfg = text_config(model.config)
    local = Path(folder)
    info = ModelInfo(
        name=name_or_path, source=source, revision=revision,
        weights_sha256=_weights_fingerprint(local) if local.is_dir() else
        getattr(model.config, "_commit_hash", None),
        architecture=type(model).__name__, n_layers=int(cfg.num_hidden_layers),
        d_model=int(cfg.hidden_size), dtype=dtype, device=str(device),
        has_chat_template=bool(getattr(tokenizer, "chat_template", None)))
    return LoadedModel(model=model, tokenizer=tokenizer, info=info)
