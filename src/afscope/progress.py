"""Progress bars (rich) that the CLI can silence with ``--quiet``; the library never prints."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

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


_STAGES: list[list[Any]] = []  # [name, seconds (None while running), depth], in start order
_DEPTH = 0


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Name a long stage on stderr as it starts and when it ends, with its time.

    The times are also kept (:func:`stage_times`) so a pipeline can print them all at the end.
    Silent in quiet mode, like the bars.
    """
    global _DEPTH
    console = _console()
    indent = "  " * _DEPTH
    if not _QUIET:
        console.print(f"{indent}[bold cyan]>[/] {name}", highlight=False)
    t0 = time.perf_counter()
    ok = False
    entry: list[Any] = [name, None, _DEPTH]
    _STAGES.append(entry)
    _DEPTH += 1
    try:
        yield
        ok = True
    finally:
        _DEPTH -= 1
        dt = time.perf_counter() - t0
        entry[1] = dt
        if not _QUIET:
            mark = "[green]done[/]" if ok else "[red]failed[/]"
            console.print(f"{indent}  {mark} {name} in {format_seconds(dt)}", highlight=False)


def stage_times(reset: bool = False) -> list[tuple[str, float, int]]:
    """``[(stage name, seconds, nesting depth)]`` of the finished stages, in the order they
    started (a stage comes before the stages inside it)."""
    out = [(n, s, d) for n, s, d in _STAGES if s is not None]
    if reset:
        _STAGES.clear()
    return out


def format_seconds(seconds: float) -> str:
    """``4.2 s`` / ``3 min 05 s`` / ``1 h 02 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def trainer_progress(description: str) -> Any:
    """A ``transformers.TrainerCallback`` that shows a bar of optimizer steps with the last loss.

    The HF Trainer's own tqdm bar is off in afscope (it prints to stdout and ignores ``--quiet``);
    this one goes to stderr and follows :func:`set_quiet`.
    """
    from transformers import TrainerCallback

    class _Bar(TrainerCallback):
        def __init__(self) -> None:
            self.bar: Progress | None = None
            self.task: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.bar = progress_bar()
            self.bar.start()
            self.task = self.bar.add_task(description, total=state.max_steps,
                                          completed=state.global_step)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.bar is not None:
                self.bar.update(self.task, completed=state.global_step)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if self.bar is not None and logs:
                parts = [f"{k} {logs[k]:.4g}" for k in ("loss", "eval_loss") if k in logs]
                if parts:
                    self.bar.update(self.task, description=f"{description} ({', '.join(parts)})")

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.bar is not None:
                self.bar.stop()
                self.bar = None

    return _Bar()


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)
