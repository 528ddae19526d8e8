"""Measurement helpers shared by the benchmark scripts: RSS sampling, CPU time, ``ru_maxrss``.

The scripts are run as ``python benchmarks/<name>.py`` and import this file from their own folder
(also in their spawned phase processes, which inherit the parent's ``sys.path``).
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path


def _rss_reader() -> Callable[[], int] | None:
    """A function returning the current RSS in bytes (``/proc/self/statm``, else psutil)."""
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    if Path("/proc/self/statm").exists():
        fd = os.open("/proc/self/statm", os.O_RDONLY)

        def read() -> int:
            return int(os.pread(fd, 128, 0).split()[1]) * page

        return read
    try:
        import psutil
    except ImportError:
        return None
    proc = psutil.Process()
    return lambda: int(proc.memory_info().rss)


class RssSampler:
    """Samples this process's RSS in a background thread; ``peak - baseline`` is the phase's cost.

    Use as ``with RssSampler() as rss:`` around the measured phase; with no way to read the RSS
    (no ``/proc`` and no psutil) baseline and peak stay 0.
    """

    def __init__(self, interval_s: float = 0.005):
        self.read = _rss_reader()
        self.interval_s = interval_s
        self.baseline = self.peak = self.read() if self.read else 0
        self.samples: list[tuple[float, int]] = []  # (seconds since start, rss)
        self._t0 = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self.read()
            self.peak = max(self.peak, rss)
            self.samples.append((time.perf_counter() - self._t0, rss))
            self._stop.wait(self.interval_s)

    def quarter_peaks(self) -> list[int]:
        """Peak RSS above the baseline in each quarter of the phase's wall time: flat when memory
        is bounded by the batch, rising when the phase accumulates per-token data."""
        if not self.samples:
            return []
        end = self.samples[-1][0] or 1.0
        peaks = [self.baseline] * 4
        for t, rss in self.samples:
            q = min(3, int(4 * t / end))
            peaks[q] = max(peaks[q], rss)
        return [p - self.baseline for p in peaks]

    def __enter__(self) -> RssSampler:
        if self.read:
            self.baseline = self.peak = self.read()
            self._t0 = time.perf_counter()
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.read:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self.read())


def maxrss_bytes() -> int:
    """This process's ``ru_maxrss`` in bytes (Linux reports KiB, macOS bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r) if sys.platform == "darwin" else int(r) * 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def mb(x: float) -> str:
    """Bytes as whole MiB with thousands separators: ``"1,234 MiB"``."""
    return f"{x / 2**20:,.0f} MiB"


def _guarded(fn: Callable[..., dict], *args: object) -> dict:
    try:
        return fn(*args)
    except Exception:  # an exception that does not unpickle would hang the pool
        import traceback

        return {"error": traceback.format_exc()}


def run_phase(fn: Callable[..., dict], *args: object) -> dict:
    """Run ``fn(*args)`` in a fresh spawned process (its own memory peak and imports); a failure
    ends the benchmark with the child's traceback."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    with ctx.Pool(processes=1, maxtasksperchild=1) as pool:
        out = pool.apply(_guarded, (fn, *args))
    if "error" in out:
        raise SystemExit(f"phase {fn.__name__} failed:\n{out['error']}")
    return out

