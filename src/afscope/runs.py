"""Run directories: every command writes its artifacts next to a ``manifest.json``.

The manifest records what is needed to trust and reproduce the run: the config, package versions,
the git sha of the afscope checkout, model ids and file hashes, dataset content hashes and timings.
A run can be reproduced from its folder alone (``afscope <cmd> --config RUN/manifest.json`` reads
``config`` back).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import json
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from afscope.errors import AfscopeError
from afscope.fileio import atomic_write_json

MANIFEST = "manifest.json"
SHARD_MANIFEST = "manifest.shard-{i}-of-{n}.json"
ERROR_LOG = "error.log"
_last_error_log: Path | None = None
_PACKAGES = ("afscope", "torch", "transformers", "safetensors", "numpy", "scikit-learn", "pydantic",
             "gguf", "accelerate", "datasets")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_sha() -> str | None:
    """Sha of the afscope source checkout (None for an installed wheel); ``+dirty`` if modified."""
    src = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


def default_run_dir(command: str, root: str | Path = "runs") -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{command.replace(' ', '-')}-{stamp}"


class Run:
    """A run directory being written. Use :func:`start_run` as a context manager.

    The manifest is rewritten (atomically) at each :meth:`save`, so a killed run still leaves a
    readable manifest with ``status: "running"``.
    """

    def __init__(self, path: Path, command: str, config: dict[str, Any],
                 manifest_name: str = MANIFEST):
        self.path = path
        self.manifest_name = manifest_name
        self.manifest: dict[str, Any] = {
            "command": command,
            "config": config,
            "status": "running",
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "versions": package_versions(),
            "git_sha": git_sha(),
            "models": {},
            "datasets": {},
            "timings_s": {},
            "outputs": {},
        }

    def add_dataset(self, name: str, info: dict[str, Any]) -> None:
        self.manifest["datasets"][name] = info

    def add_model(self, name: str, info: dict[str, Any]) -> None:
        self.manifest["models"][name] = info

    def add_output(self, name: str, value: Any) -> None:
        self.manifest["outputs"][name] = value

    @contextlib.contextmanager
    def timer(self, name: str) -> Iterator[None]:
        """Time a stage into ``timings_s`` and name it on stderr (see :func:`afscope.progress.stage`)."""
        from afscope.progress import stage

        t0 = time.perf_counter()
        try:
            with stage(f"{self.manifest['command']}: {name}"):
                yield
        finally:
            self.manifest["timings_s"][name] = round(
                self.manifest["timings_s"].get(name, 0.0) + time.perf_counter() - t0, 4)

    def save(self) -> None:
        atomic_write_json(self.path / self.manifest_name, self.manifest)


def write_error_log(path: Path, exc: BaseException) -> Path:
    """Write ``exc``'s traceback to ``path``; the first log written since :func:`last_error_log`
    was last read (the innermost failing run) is the one the CLI points the user to."""
    global _last_error_log
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"afscope {package_versions()['afscope']}, python {sys.version.split()[0]}, "
                    f"{platform.platform()}\n{' '.join(sys.argv)}\n\n{text}", encoding="utf-8")
    if _last_error_log is None:
        _last_error_log = path
    return path


def last_error_log(reset: bool = True) -> Path | None:
    """The error log of the innermost run that failed with an unexpected exception, if any."""
    global _last_error_log
    path = _last_error_log
    if reset:
        _last_error_log = None
    return path


@contextlib.contextmanager
def start_run(command: str, config: dict[str, Any], path: str | Path | None = None, *,
              manifest_name: str = MANIFEST) -> Iterator[Run]:
    """Open a run directory, yield the :class:`Run`, and write the final manifest on exit.

    ``manifest_name`` lets concurrent shard processes share one directory without clobbering.
    """
    run_path = Path(path) if path is not None else default_run_dir(command)
    created = not run_path.exists()
    run_path.mkdir(parents=True, exist_ok=True)
    run = Run(run_path, command, config, manifest_name)
    run.save()
    t0 = time.perf_counter()
    discarded = False
    try:
        yield run
    except BaseException as e:
        if isinstance(e, AfscopeError) and created:
            # bad input: leave nothing behind (an interrupted run is kept, for resume)
            shutil.rmtree(run_path, ignore_errors=True)
            raise
        if isinstance(e, AfscopeError) and manifest_name != MANIFEST and _only_manifests(run_path):
            # the shards of a run that started together all fail on the same bad input: each
            # takes its manifest away, and the last one out removes the directory
            (run_path / manifest_name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                run_path.rmdir()
            discarded = True
            raise
        run.manifest["status"] = "failed"
        run.manifest["error"] = f"{type(e).__name__}: {e}"
        if not isinstance(e, (AfscopeError, KeyboardInterrupt)):
            run.manifest["error_log"] = ERROR_LOG
            write_error_log(run_path / ERROR_LOG, e)
        raise
    else:
        run.manifest["status"] = "complete"
    finally:
        if run_path.exists() and not discarded:
            run.manifest["timings_s"]["total"] = round(time.perf_counter() - t0, 4)
            run.manifest["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(
                timespec="seconds")
            run.save()


def _only_manifests(path: Path) -> bool:
    """``path`` holds run manifests (and their temp files) and nothing else: no artifact yet
    (or it is gone: another shard removed it)."""
    try:
        return all(f.name.lstrip(".").startswith("manifest") for f in path.iterdir())
    except OSError:
        return True


def manifest_name(shard: tuple[int, int] | None) -> str:
    """``manifest.json``, or ``manifest.shard-i-of-n.json`` for shard ``(i, n)`` of a run (so the
    processes of one sharded run can share its directory)."""
    return MANIFEST if shard is None else SHARD_MANIFEST.format(i=shard[0], n=shard[1])


def shard_manifests(*paths: str | Path, count: int | None = None) -> dict[str, dict[str, Any]]:
    """The shard manifests (``manifest.shard-i-of-n.json``, ``n == count`` if given) in
    ``paths``, by file name, sorted.

    A file that is not valid JSON (a process killed mid-write cannot leave one: manifests are
    written atomically) is skipped rather than trusted.
    """
    out: dict[str, dict[str, Any]] = {}
    pattern = SHARD_MANIFEST.format(i="*", n="*" if count is None else count)
    for path in paths:
        for f in sorted(Path(path).glob(pattern)):
            try:
                out.setdefault(f.name, json.loads(f.read_text(encoding="utf-8")))
            except ValueError:
                continue
    return dict(sorted(out.items()))


@contextlib.contextmanager
def start_merged_run(command: str, path: str | Path, shards: dict[str, dict[str, Any]],
                     config: dict[str, Any] | None = None) -> Iterator[Run]:
    """:func:`start_run` for the merge step of a sharded run: ``path/manifest.json`` takes the
    config (``config``, else the first shard's, without its ``shard``), the models and datasets of
    the first shard manifest, and lists every shard manifest with its status, platform, timings and
    outputs under ``outputs.shards``."""
    first = next(iter(shards.values()), {})
    if config is None:
        config = dict(first.get("config", {}))
        if "shard" in config:
            config["shard"] = None
    with start_run(command, config, path) as run:
        run.manifest["models"] = dict(first.get("models", {}))
        run.manifest["datasets"] = dict(first.get("datasets", {}))
        run.add_output("shards", {
            name: {k: m.get(k) for k in ("status", "platform", "started", "finished",
                                         "timings_s", "outputs")}
            for name, m in shards.items()})
        yield run
