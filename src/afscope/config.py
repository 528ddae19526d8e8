"""One config system for every command: pydantic models, loaded from YAML, overridden by flags.

Each component defines ``<component>/config.py`` with a subclass of :class:`BaseConfig`. Field
descriptions double as ``--help`` text (see :mod:`afscope.cli.options`); ``extra="forbid"`` makes a
typo in a YAML file an error that names the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from afscope.errors import ConfigError

C = TypeVar("C", bound="BaseConfig")


class BaseConfig(BaseModel):
    """Base of all command configs: strict keys, validated on assignment, JSON-serializable."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (secrets are excluded by marking their fields ``exclude=True``)."""
        return self.model_dump(mode="json")


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid config"]
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "<root>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (typo?)"
        lines.append(f"  field {loc!r}: {msg}")
    return "\n".join(lines)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; any failure is a :class:`ConfigError` naming the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config fields, got {type(data).__name__}")
    return data


def build_config(
    cls: type[C], path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> C:
    """Validate ``cls`` from an optional YAML file with ``overrides`` (flags) applied on top."""
    data: dict[str, Any] = load_yaml(path) if path is not None else {}
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, str(path) if path else cls.__name__)) from None
