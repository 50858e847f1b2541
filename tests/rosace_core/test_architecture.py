"""Architecture rules checked by machine: module cores import neither Qt nor Flask."""

from __future__ import annotations

import re
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


# Import statements at any indentation (function-level imports count too). A scan of
# the text rather than ast.parse: CPython 3.11's parser intermittently raises
# "AST constructor recursion depth mismatch" when other test threads are alive.
IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+import\b|import[ \t]+([\w., \t]+))", re.M)


def imported_names(text: str) -> list[str]:
    names = []
    for source, plain in IMPORT.findall(text):
        if source:
            names.append(source)
        else:
            names += [part.split()[0] for part in plain.split(",") if part.strip()]
    return names


def test_the_scan_sees_every_kind_of_import():
    text = "import os, flask as f\nfrom PySide6.QtCore import Qt\ndef g():\n    import pyqtgraph\n"
    assert imported_names(text) == ["os", "flask", "PySide6.QtCore", "pyqtgraph"]


@pytest.mark.parametrize("path", list(core_files()), ids=lambda p: str(p.relative_to(MODULES)))
def test_core_has_no_qt_or_flask_import(path):
    for name in imported_names(path.read_text(encoding="utf-8")):
        assert name.split(".")[0] not in FORBIDDEN, f"{path}: imports {name}"


def test_every_module_core_is_checked():
    checked = {p.relative_to(MODULES).parts[0] for p in core_files()}
    for module in ("rosace_core", "rosace_dome", "rosace_scheduler", "rosace_sequencer", "rosace_reduction", "rosace_share", "rosace_sim"):
        assert module in checked
