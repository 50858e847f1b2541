"""Architecture rules checked by machine: module cores import neither Qt nor Flask."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MODULES = Path(__file__).resolve().parents[2] / "modules"
# Files allowed to import Flask or Qt: the REST, client, GUI and server edges of a module.
EDGE = {"api.py", "gui.py", "__main__.py", "server.py", "web.py", "rest.py", "cli.py", "testing.py"}
EDGE_DIRS = {"gui", "web", "server", "api"}
FORBIDDEN = ("PySide6", "flask", "shiboken6", "pyqtgraph")


def core_files():
    for path in sorted(MODULES.rglob("*.py")):
        rel = path.relative_to(MODULES)
        if path.name in EDGE or EDGE_DIRS & set(rel.parts[1:-1]):
            continue
        yield path


@pytest.mark.parametrize("path", list(core_files()), ids=lambda p: str(p.relative_to(MODULES)))
def test_core_has_no_qt_or_flask_import(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            assert not name.split(".")[0] in FORBIDDEN, f"{path}: imports {name}"


def test_every_module_core_is_checked():
    checked = {p.relative_to(MODULES).parts[0] for p in core_files()}
    for module in ("rosace_core", "rosace_dome", "rosace_scheduler", "rosace_sequencer", "rosace_reduction", "rosace_share", "rosace_sim"):
        assert module in checked
