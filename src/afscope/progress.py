"""Progress bars (rich) that the CLI can silence with ``--quiet``; the library never prints."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")
_QUIET = True  # libraries are silent unless the CLI turns bars on


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = quiet


def progress_bar() -> Progress:
    """A rich Progress on stderr, disabled in quiet mode."""
    from rich.console import Console

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=_QUIET, transient=False)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    with progress_bar() as p:
        yield from p.track(items, total=total, description=description)
