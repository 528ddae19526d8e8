"""Build click options from a pydantic config: the config is the CLI (the sparsify habit).

``@config_command(ExtractConfig)`` adds ``--config FILE`` plus one ``--field-name`` option per field,
with the field's description as help. Only flags the user actually gave override the YAML file, and
the merged dict is validated once, so a typo or a bad value fails with the field's name.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import click
import yaml
from pydantic.fields import FieldInfo

from afscope.config import BaseConfig, build_config, load_yaml
from afscope.errors import ConfigError
from afscope.models.device import AUTO, DEVICE_HELP, DTYPES, device_and_dtype, is_gpu


def _strip_optional(tp: Any) -> Any:
    if get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _help(field: FieldInfo) -> str:
    text = field.description or ""
    if field.is_required():
        return text + "  [required]"
    if field.default is not None and not callable(field.default) and field.default is not ...:
        d = field.default
        if isinstance(d, (list, tuple)):
            d = ",".join(str(x) for x in d)
        text += f"  [default: {d}]"
    return text


def _parse_value(name: str, tp: Any, raw: Any) -> Any:
    tp = _strip_optional(tp)
    origin = get_origin(tp)
    if origin in (list, tuple, set) or tp in (list, tuple):
        return [x.strip() for x in str(raw).split(",") if x.strip()]
    if origin is dict or tp is dict:
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"flag {_flag_name(name)}: not a mapping: {e}") from None
        if not isinstance(value, dict):
            raise ConfigError(f"flag {_flag_name(name)}: expected a mapping like '{{a: 1}}'")
        return value
    return raw


def _has_device(cls: type[BaseConfig]) -> bool:
    """A config whose ``device``/``dtype`` fields place a model (they accept ``auto``)."""
    f = cls.model_fields
    if "device" not in f or "dtype" not in f:
        return False
    tp = _strip_optional(f["dtype"].annotation)
    return get_origin(tp) is Literal and set(map(str, get_args(tp))) <= set(DTYPES)


def _option_for(name: str, field: FieldInfo, placed: bool = False
                ) -> Callable[[Callable], Callable]:
    tp = _strip_optional(field.annotation)
    if tp is bool:
        flag = name.replace("_", "-")
        return click.option(f"--{flag}/--no-{flag}", name, default=None, help=_help(field))
    kwargs: dict[str, Any] = {"default": None, "help": _help(field)}
    if placed and name == "dtype":
        kwargs["type"] = click.Choice([AUTO, *DTYPES])
        kwargs["help"] += "  auto: bfloat16 on GPU, float32 on CPU (the default on a GPU)."
    elif placed and name == "device":
        kwargs["type"] = str
        kwargs["help"] += f"  One of {DEVICE_HELP}."
    elif get_origin(tp) is Literal:
        kwargs["type"] = click.Choice([str(a) for a in get_args(tp)])
    elif tp is int:
        kwargs["type"] = int
    elif tp is float:
        kwargs["type"] = float
    elif tp is Path:
        kwargs["type"] = click.Path(path_type=Path)
    else:
        kwargs["type"] = str
    return click.option(_flag_name(name), name, **kwargs)


def config_command(cls: type[BaseConfig]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a click command body ``f(cfg, **other)`` so it receives a validated ``cls``."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        fields = cls.model_fields

        @functools.wraps(f)
        def wrapper(**kwargs: Any) -> Any:
            config_path = kwargs.pop("config", None)
            overrides = {}
            for name in fields:
                raw = kwargs.pop(name, None)
                if raw is not None:
                    overrides[name] = _parse_value(name, fields[name].annotation, raw)
            if _has_device(cls) or any(_placed_sections(cls)):
                data = load_yaml(config_path) if config_path is not None else {}
                data.update(overrides)
                overrides.update(resolve_placement(cls, data))
            cfg = build_config(cls, config_path, overrides)
            return f(cfg, **kwargs)

        placed = _has_device(cls)
        for name, field in reversed(list(fields.items())):
            wrapper = _option_for(name, field, placed)(wrapper)
        wrapper = click.option("--config", "config", type=click.Path(path_type=Path), default=None,
                               help="YAML config file; flags override its fields.")(wrapper)
        return wrapper

    return decorate


def _placed_sections(cls: type[BaseConfig]) -> dict[str, type[BaseConfig]]:
    """Nested sections of ``cls`` with their own ``device``/``dtype`` (e.g. a study's
    ``extract``)."""
    out = {}
    for name, field in cls.model_fields.items():
        tp = _strip_optional(field.annotation)
        if isinstance(tp, type) and issubclass(tp, BaseConfig) and _has_device(tp):
            out[name] = tp
    return out


def resolve_placement(cls: type[BaseConfig], data: dict[str, Any]) -> dict[str, Any]:
    """The ``device``/``dtype`` values of ``data`` (YAML merged with flags) made concrete.

    ``auto`` resolves through :func:`afscope.models.device.device_and_dtype`; a GPU device whose
    dtype was not given gets ``auto``'s dtype (bfloat16), a CPU keeps the config's default. An
    unavailable device (``cuda`` without CUDA) fails here, before any work, with one message.
    Returns only the keys to override (nested sections as whole dicts).
    """
    out: dict[str, Any] = {}
    if _has_device(cls):
        device = data.get("device", cls.model_fields["device"].default)
        dtype = data.get("dtype")
        dev, dt = device_and_dtype(str(device), None if dtype is None else str(dtype))
        if "device" in data or device == AUTO:
            out["device"] = dev
        if dtype is not None or is_gpu(dev):
            out["dtype"] = dt
    for name, sub in _placed_sections(cls).items():
        section = data.get(name)
        if isinstance(section, dict):
            inner = resolve_placement(sub, section)
            if inner:
                out[name] = {**section, **inner}
    return out


class DefaultGroup(click.Group):
    """A group whose ``run`` subcommand is the default: ``afscope extract --model ...`` means
    ``afscope extract run --model ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


def launch_config(cfg: Any, launch: Any) -> Any:
    """``cfg`` for this process of a launched run: its shard (``launch.spec``) and device (the
    rank's GPU unless ``--device`` was given; :meth:`afscope.distributed.Launch.device`)."""
    given = cfg.device if "device" in cfg.model_fields_set else None
    update: dict[str, Any] = {"shard": launch.spec, "device": launch.device(given)}
    fields = type(cfg).model_fields
    if is_gpu(update["device"]) and "dtype" in fields and "dtype" not in cfg.model_fields_set:
        update["dtype"] = device_and_dtype(update["device"], None)[1]  # bf16 on the rank's GPU
    return cfg.model_copy(update=update)


def training_config(cfg: Any) -> tuple[Any, Any]:
    """``(cfg, launch)`` of a training command under torchrun / accelerate launch (or alone):
    this rank's device unless ``--device`` was given, progress bars on rank 0 only."""
    from afscope.distributed import training_launch

    launch = training_launch()
    quiet_unless_main(launch)
    given = cfg.device if "device" in cfg.model_fields_set else None
    return cfg.model_copy(update={"device": launch.device(given)}), launch


def quiet_unless_main(launch: Any) -> None:
    """Progress bars of rank 0 only: N ranks drawing bars on one terminal garble each other."""
    from afscope import progress

    if launch.collective and not launch.is_main:
        progress.set_quiet(True)
