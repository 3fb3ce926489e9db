"""The package's shape: every library it imports is declared, and test- or benchmark-only code stays out of it."""

from __future__ import annotations

import ast
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "babyface"


def imported_top_level_modules() -> dict[str, str]:
    """Top-level module name → one file of the package that imports it (absolute imports only)."""
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def declared_distributions() -> set[str]:
    """The dependencies, and the extras a user may install for a feature (not the test tools)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = [name for extra, names in project["optional-dependencies"].items() if extra != "test" for name in names]
    names = project["dependencies"] + extras
    return {name.split(";")[0].split("[")[0].split("=")[0].split("<")[0].split(">")[0].strip().lower().replace("_", "-")
            for name in names}


def test_every_imported_library_is_declared() -> None:
    distributions = packages_distributions()
    declared = declared_distributions()
    undeclared = {}
    for module, where in imported_top_level_modules().items():
        if module in sys.stdlib_module_names or module in ("babyface", "__future__"):
            continue
        owners = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}  # an extra not installed here
        if not owners & declared:
            undeclared[module] = (where, sorted(owners))
    assert not undeclared, f"imported but not in pyproject's dependencies: {undeclared}"


@pytest.mark.parametrize("name", ["naive", "naive_pipeline"])
def test_benchmark_only_code_is_not_in_the_package(name: str) -> None:
    assert not list(PACKAGE.rglob(f"{name}.py"))
