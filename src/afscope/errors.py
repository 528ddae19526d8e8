"""Error hierarchy. Every user-facing failure is an ``AfscopeError``; the CLI exits 2 on them.

Each class is also a ``ValueError`` so ordinary handlers still catch it (the scikit-learn habit).
Messages name the file, the record and the field, and say what was expected.
"""

from __future__ import annotations


class AfscopeError(ValueError):
    """Base class of all errors afscope raises on bad input or bad artifacts."""


class ConfigError(AfscopeError):
    """A config file or flag is invalid (unknown key, wrong type, clashing fields)."""


class DataError(AfscopeError):
    """A dataset file or record is malformed (missing field, unknown label, empty text, ...)."""


class ArtifactError(AfscopeError):
    """An artifact on disk (cache, model, SAE, probe) is missing, corrupt or from another config."""


class LeakageError(AfscopeError):
    """A training or selection step touched a record of an eval-only dataset."""


class BackendError(AfscopeError):
    """An LLM backend failed after its retries (HTTP error, timeout, CLI failure)."""


def where(path: object = None, record: int | None = None, field: str | None = None) -> str:
    """Format the location prefix of an error message: ``file.json: record 12: field 'text'``."""
    parts = []
    if path is not None:
        parts.append(str(path))
    if record is not None:
        parts.append(f"record {record}")
    if field is not None:
        parts.append(f"field {field!r}")
    return ": ".join(parts)
