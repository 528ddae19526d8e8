"""Where a model runs and in which dtype: one resolver for ``--device`` and ``--dtype``.

Devices:

* ``auto``: ``cuda`` when a CUDA device is visible, else ``cpu``. MPS (Apple) is never picked
  automatically: several ops afscope uses are missing or fall back to the CPU there, and its
  numerics differ from CUDA's; ask for it explicitly with ``--device mps``.
* ``cpu``, ``cuda`` (the current CUDA device), ``cuda:N``, ``mps``: as torch spells them.
* ``shard``: one model spread over every visible GPU by transformers/accelerate
  (``device_map="auto"``), for models larger than one GPU. Inputs go to the device of the first
  block, and every hook moves what it adds to the device of the tensor it edits.

Dtypes: ``auto`` is ``bfloat16`` on a GPU (``float16`` on GPUs without bf16) and ``float32`` on the
CPU. ``bfloat16``/``float16`` on the CPU work but warn: most CPUs run them slower than float32 and
they round the activations that probes read.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from afscope.errors import ConfigError

log = logging.getLogger(__name__)

AUTO = "auto"
SHARD = "shard"
DTYPES = ("float32", "bfloat16", "float16")
"""Model dtypes afscope loads weights in (``auto`` resolves to one of them)."""
DEVICE_HELP = "auto | cpu | cuda | cuda:N | mps | shard (device_map=auto over every GPU)"

_CUDA = re.compile(r"^cuda(:\d+)?$")


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(device: str | None) -> str:
    """The concrete device string for ``device`` (None means ``auto``); one clear error when the
    requested device does not exist here."""
    name = (device or AUTO).strip().lower()
    if name == AUTO:
        return "cuda" if _cuda_count() > 0 else "cpu"
    if name == "cpu":
        return name
    if name == SHARD or _CUDA.match(name):
        n = _cuda_count()
        if n == 0:
            raise ConfigError(f"--device {name}: CUDA is not available on this machine (torch "
                              f"{_torch_version()}); use --device cpu or auto")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= n:
            raise ConfigError(f"--device {name}: only {n} CUDA device(s) are visible "
                              f"(cuda:0..cuda:{n - 1})")
        if name == SHARD:
            try:
                import accelerate  # noqa: F401  (device_map needs it)
            except ImportError:
                raise ConfigError("--device shard needs the package accelerate: "
                                  "pip install accelerate") from None
        return name
    if name == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise ConfigError("--device mps: MPS is not available on this machine")
        return name
    raise ConfigError(f"--device {device!r}: expected {DEVICE_HELP}")


def is_gpu(device: str) -> bool:
    """True for CUDA devices and ``shard`` (what gets bf16 by default)."""
    return device == SHARD or device.startswith("cuda")


def resolve_dtype(dtype: str | None, device: str) -> str:
    """The concrete dtype for ``dtype`` on the resolved ``device`` (None means ``auto``).

    ``auto``: bfloat16 on CUDA (float16 where the GPU has no bf16), float32 elsewhere. A half
    dtype on the CPU is allowed, with a warning.
    """
    name = (dtype or AUTO).strip().lower()
    aliases = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}
    name = aliases.get(name, name)
    if name == AUTO:
        if not is_gpu(device):
            return "float32"
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if name not in DTYPES:
        raise ConfigError(f"--dtype {dtype!r}: expected auto, {', '.join(DTYPES)}")
    if name != "float32" and device == "cpu":
        log.warning("--dtype %s on the CPU: usually slower than float32 there, and it rounds the "
                    "activations; use float32 unless memory forces it", name)
    return name


def device_and_dtype(device: str | None, dtype: str | None) -> tuple[str, str]:
    """Both resolved together (the dtype default depends on the device)."""
    dev = resolve_device(device)
    return dev, resolve_dtype(dtype, dev)


def load_kwargs(device: str) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments that place the model on ``device`` while loading
    (``device_map``): weights go straight to the GPU, never all through host memory first."""
    if device == SHARD:
        return {"device_map": "auto"}
    return {"device_map": device} if device != "cpu" else {}


def tensor_device(device: str) -> str:
    """A device for a standalone tensor or module (an SAE, a vector) next to a model placed on
    ``device``: ``shard`` means the first GPU (hooks move things on to each block's GPU)."""
    dev = resolve_device(device)
    return "cuda" if dev == SHARD else dev


def input_device(model: Any) -> Any:
    """Where a model's inputs go: its first parameter's device (the embeddings; with
    ``device_map`` that is the first GPU of the shard)."""
    return next(model.parameters()).device


def _torch_version() -> str:
    import torch

    return str(torch.__version__)
