"""The package's data flow, checked on the source: library code never reaches up into the CLI.

DESIGN.md: `pose -> data -> models -> engine -> stream / web -> apps`; `apps/` only parses flags, calls
the library and prints. Every import statement (top level or inside a function) is read with `ast`,
so a lazy import inside a function counts too.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "posec3d"
# __main__ is the `python -m posec3d` entry point: the CLI by definition.
LIBRARY = sorted(p for p in PACKAGE.rglob("*.py")
                 if p.relative_to(PACKAGE).parts[0] != "apps" and p.name != "__main__.py")

# What each library package must never import (prefix match on the dotted module name).
FORBIDDEN = {
    "": ("posec3d.apps", "typer", "rich"),
    "models": ("posec3d.data", "posec3d.pose", "posec3d.engine", "posec3d.stream", "posec3d.web"),
    "data": ("posec3d.models", "posec3d.engine", "posec3d.stream", "posec3d.web"),
    "pose": ("posec3d.models", "posec3d.engine", "posec3d.stream", "posec3d.web"),
    "engine": ("posec3d.stream", "posec3d.web"),
    "stream": ("posec3d.web", "gradio", "fastapi"),
}


def imported_modules(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, node.module)]
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def violations(path: Path) -> list[str]:
    parts = path.relative_to(PACKAGE).parts
    package = parts[0] if len(parts) > 1 else ""
    banned = FORBIDDEN[""] + FORBIDDEN.get(package, ())
    return [f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
            for line, name in imported_modules(path.read_text(encoding="utf-8"))
            if any(name == b or name.startswith(b + ".") for b in banned)]


def test_the_checker_sees_lazy_and_from_imports():
    source = "import numpy\ndef f():\n    from posec3d.apps.progress import progress_bar\n    import typer\n"
    names = [n for _, n in imported_modules(source)]
    assert names == ["numpy", "posec3d.apps.progress", "posec3d.apps.progress.progress_bar", "typer"]


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_library_module_keeps_the_data_flow(path):
    assert violations(path) == []
