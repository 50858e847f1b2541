"""Where the shipped resources are found: override, source tree, installed package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from rosace_core import resources

REPO = Path(__file__).resolve().parents[2]


def test_source_tree_resources_are_found():
    assert resources.resources_dir() == REPO / "resources"
    assert resources.resource_path("instruments", "alpy600.toml").is_file()


def test_environment_variable_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("ROSACE_RESOURCES", str(tmp_path))
    assert resources.resource_path("linelists", "ne.csv") == tmp_path / "linelists" / "ne.csv"


def _site_with(tmp_path: Path, *, with_resources: bool) -> Path:
    """A site folder laid out as a wheel installs ROSACE: rosace_core and rosace_resources, no source tree."""
    site = tmp_path / "site"
    shutil.copytree(REPO / "modules" / "rosace_core", site / "rosace_core", ignore=shutil.ignore_patterns("__pycache__"))
    if with_resources:
        shutil.copytree(REPO / "resources", site / "rosace_resources", ignore=shutil.ignore_patterns("__pycache__"))
    return site


def _run(site: Path, code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ROSACE_RESOURCES"}
    env["PYTHONPATH"] = str(site)
    # -S: no site-packages, so neither an installed nor an editable rosace can answer.
    return subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, cwd=site, timeout=120)


def test_installed_package_is_found_with_importlib_resources(tmp_path):
    site = _site_with(tmp_path, with_resources=True)
    proc = _run(site, "from rosace_core.resources import resource_path; print(resource_path('instruments', 'alpy600.toml'))")
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == site / "rosace_resources" / "instruments" / "alpy600.toml"


def test_missing_resources_raise_a_clear_error(tmp_path):
    site = _site_with(tmp_path, with_resources=False)
    proc = _run(site, "from rosace_core.resources import resource_path\n"
                      "try:\n    resource_path('instruments')\nexcept Exception as exc:\n    print(type(exc).__name__, exc)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("RosaceError") and "ROSACE_RESOURCES" in proc.stdout, proc.stdout
