"""Every third-party module imported under ``src/`` is a declared dependency of afscope.

The package once imported ``peft`` without declaring it; CI stayed green because the developer's
machine had it, and every new user's demo died after six minutes. This reads the imports of
``src/`` statically (inside functions too), maps each top-level module to the distribution that
provides it (``importlib.metadata.packages_distributions``) and compares with ``pyproject.toml``.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules(src: Path) -> dict[str, list[tuple[Path, int, bool]]]:
    """``top-level module -> [(file, line, guarded)]`` for every absolute import under ``src``.

    ``guarded``: the import sits inside a function or a ``try`` (so a missing optional package
    fails only when that code runs, where the CLI names the extra)."""
    out: dict[str, list[tuple[Path, int, bool]]] = {}

    def visit(node: ast.AST, path: Path, guarded: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = guarded or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Try))
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            for name in names:
                out.setdefault(name.split(".")[0], []).append((path, child.lineno, guarded))
            visit(child, path, inner)

    for path in sorted(src.rglob("*.py")):
        visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), path, False)
    return out


def declared(pyproject: Path) -> tuple[set[str], dict[str, set[str]]]:
    """Core distributions and ``extra -> distributions`` declared in ``pyproject.toml``."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    core = {normalize(Requirement(r).name) for r in project["dependencies"]}
    extras = {extra: {normalize(Requirement(r).name) for r in reqs}
              for extra, reqs in project.get("optional-dependencies", {}).items()}
    return core, extras


def undeclared_imports(src: Path, pyproject: Path) -> list[str]:
    """One message per import that no declared distribution provides, or that needs an extra
    but is imported at module level (so ``import afscope...`` itself would fail without it)."""
    core, extras = declared(pyproject)
    optional = set().union(*extras.values()) if extras else set()
    providers = importlib.metadata.packages_distributions()
    problems = []
    for module, sites in sorted(imported_modules(src).items()):
        if module in sys.stdlib_module_names or module in ("afscope", "__future__"):
            continue
        dists = {normalize(d) for d in providers.get(module, [])}
        where = ", ".join(f"{p.relative_to(src.parent)}:{line}" for p, line, _ in sites[:3])
        if not dists:
            problems.append(f"{module} (imported at {where}) is not installed: declare it")
        elif dists & core:
            continue
        elif dists & optional:
            loose = [f"{p.relative_to(src.parent)}:{line}" for p, line, g in sites if not g]
            if loose:
                problems.append(f"{module} is only in an extra but imported at module level "
                                f"at {', '.join(loose)}")
        else:
            problems.append(f"{module} (imported at {where}) comes from {sorted(dists)}, "
                            "which pyproject.toml does not declare")
    return problems


def test_every_import_of_src_is_a_declared_dependency():
    assert undeclared_imports(ROOT / "src", ROOT / "pyproject.toml") == []


def test_optional_modules_are_named_with_their_extra_by_the_cli():
    from afscope.cli import EXTRAS

    _, extras = declared(ROOT / "pyproject.toml")
    for module, (dist, extra) in EXTRAS.items():
        assert normalize(dist) in extras[extra], (module, dist, extra)


def test_the_check_catches_an_undeclared_and_an_unguarded_optional_import(tmp_path):
    src = tmp_path / "src" / "pkg"
    src.mkdir(parents=True)
    (src / "a.py").write_text("import numpy\nimport peft\n\ndef f():\n    import yaml\n")
    (src / "b.py").write_text("import yaml\n\ndef g():\n    import click\n")
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["numpy>=1"]\n'
        '[project.optional-dependencies]\nfmt = ["pyyaml"]\ncli = ["click"]\n')
    problems = undeclared_imports(tmp_path / "src", tmp_path / "pyproject.toml")
    assert len(problems) == 2, problems
    assert problems[0].startswith("peft (imported at src/pkg/a.py:2)")
    assert "pyproject.toml does not declare" in problems[0]
    assert problems[1] == "yaml is only in an extra but imported at module level at src/pkg/b.py:1"
