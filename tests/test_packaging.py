"""The distribution's declarations match the code: dependencies, extras, package data, the tab base."""

from __future__ import annotations

import glob
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from rosace_core.plugins import import_file

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
_scan = import_file(REPO / "tests" / "rosace_core" / "test_architecture.py", "_packaging_import_scan")
# Files that belong to the desktop: they may need the ``desktop`` extra.
DESKTOP_FILES = {"gui.py"}


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def _with_requirements(names: set[str]) -> set[str]:
    """``names`` and every distribution they require (extras aside), as installed here."""
    from importlib.metadata import PackageNotFoundError, requires

    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue
        todo += [n for r in reqs if "extra ==" not in r for n in _names([r])]
    return seen


def _product_files():
    for root in (REPO / "modules", REPO / "rosace_desktop"):
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" not in path.parts and "migrations" not in path.parts:
                yield path


def _third_party(path: Path) -> set[str]:
    own = {"rosace_core", "rosace_desktop", "rosace_resources"} | {p.name for p in (REPO / "modules").iterdir()}
    tops = {name.split(".")[0] for name in _scan.imported_names(path.read_text(encoding="utf-8")) if not name.startswith(".")}
    return {t for t in tops if t not in own and t not in sys.stdlib_module_names and t != "__future__"}


def test_product_imports_are_declared_where_they_are_needed():
    """A headless install holds the dependencies; the desktop's imports are in the desktop extra; nothing needs dev.

    A library that a dependency requires counts (erfa comes with astropy, werkzeug with flask).
    """
    base = _with_requirements(_names(PYPROJECT["project"]["dependencies"]))
    desktop = base | _with_requirements(_names(PYPROJECT["project"]["optional-dependencies"]["desktop"]))
    dists = packages_distributions()
    problems = []
    for path in _product_files():
        allowed = desktop if path.name in DESKTOP_FILES or path.parent.name == "rosace_desktop" else base
        for module in sorted(_third_party(path)):
            names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
            if not names & allowed:
                problems.append(f"{path.relative_to(REPO)} imports {module} ({', '.join(sorted(names))}): not in its dependencies")
    assert not problems, "\n".join(problems)


def test_dev_pulls_in_the_desktop_and_the_references():
    dev = PYPROJECT["project"]["optional-dependencies"]["dev"]
    assert any(r.startswith("rosace[") and "desktop" in r for r in dev)
    assert {"astroplan", "specreduce"} <= _names(dev)
    assert not {"astroplan", "specreduce", "pyside6-essentials", "pyqtgraph", "psycopg"} & _names(PYPROJECT["project"]["dependencies"])


@pytest.mark.parametrize("package, folder", [("rosace_resources", REPO / "resources"),
                                             ("rosace_share", REPO / "modules" / "rosace_share")])
def test_package_data_patterns_cover_every_data_file(package, folder):
    """Every file of resources/ (and the share's templates, static files, migrations) is named by a package-data pattern."""
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"][package]
    covered = {Path(p) for pattern in patterns for p in glob.glob(pattern, root_dir=folder) if (folder / p).is_file()}
    data = {p.relative_to(folder) for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc",)
            and not (p.suffix == ".py" and "migrations" not in p.parts)}
    assert data - covered == set(), f"not shipped in the wheel: {sorted(map(str, data - covered))}"


def test_module_tabs_use_only_the_small_tab_base():
    """A module's gui.py may import rosace_desktop.tab, never the shell's internals (window, app, dialogs...)."""
    for path in sorted((REPO / "modules").glob("*/gui.py")):
        for name in _scan.imported_names(path.read_text(encoding="utf-8")):
            if name.split(".")[0] == "rosace_desktop":
                assert name == "rosace_desktop.tab", f"{path.relative_to(REPO)} imports {name}"
