"""The built wheel, installed as a user installs it: headless without Qt, then with ``rosace[desktop]``.

One wheel is built per session from a copy of the source files, and one fresh venv
(no system site-packages: it must prove Qt is absent) is shared by both tests: the
headless test runs first, then the desktop test adds the ``desktop`` extra to the same
venv. Run alone, or after the desktop test, the headless test builds its own venv.
Dependencies come from the configured package index; ``--no-compile`` keeps installs short.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from rosace_core.plugins import import_file
from rosace_desktop.launch import free_port
from rosace_sim.testing import wait_for

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# What a wheel is built from: the packages, their data and the build configuration.
SOURCES = ("pyproject.toml", "setup.py", "README.md", "modules", "rosace_desktop", "resources")
INSTALL_TIMEOUT = 900


class Venv:
    """A fresh virtual environment, driven through the test's own pip (``pip --python``)."""

    def __init__(self, path: Path):
        self.path = path
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=300)
        scripts = path / ("Scripts" if os.name == "nt" else "bin")
        suffix = ".exe" if os.name == "nt" else ""
        self.python = scripts / f"python{suffix}"
        self.rosace = scripts / f"rosace{suffix}"
        self.desktop = False

    def install(self, requirement: str) -> None:
        subprocess.run([sys.executable, "-m", "pip", "--python", str(self.python), "install", "--no-compile", "-q",
                        "--disable-pip-version-check", requirement], check=True, timeout=INSTALL_TIMEOUT)

    def env(self) -> dict:
        """The environment of a user's shell: nothing pointing at the source tree."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "ROSACE_RESOURCES", "ROSACE_CONFIG")}
        env["QT_QPA_PLATFORM"] = "offscreen"
        return env

    def run(self, *args, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                              env=self.env(), cwd=cwd or self.path)

    def imports(self, module: str) -> subprocess.CompletedProcess:
        return self.run(self.python, "-c", f"import {module}")


class Venvs:
    """One wheel, one venv per session where the tests' order allows it."""

    def __init__(self, wheel: Path, root: Path):
        self.wheel = wheel
        self.root = root
        self.headless_venv: Venv | None = None

    def _new(self) -> Venv:
        venv = Venv(self.root / f"venv{len(list(self.root.glob('venv*')))}")
        venv.install(str(self.wheel))
        return venv

    def headless(self) -> Venv:
        if self.headless_venv is None:
            self.headless_venv = self._new()
        return self.headless_venv

    def with_desktop(self) -> Venv:
        venv, self.headless_venv = self.headless_venv or self._new(), None
        venv.install(f"{self.wheel}[desktop]")
        venv.desktop = True
        return venv


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel from a copy of the sources (a build leaves build/ and egg-info behind)."""
    src = tmp_path_factory.mktemp("wheel-src")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=skip)
        else:
            shutil.copy2(REPO / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--disable-pip-version-check", str(src), "-w", str(out)],
                   check=True, timeout=INSTALL_TIMEOUT)
    (built,) = out.glob("rosace-*.whl")
    return built


@pytest.fixture(scope="session")
def venvs(wheel, tmp_path_factory) -> Venvs:
    return Venvs(wheel, tmp_path_factory.mktemp("venvs"))


@pytest.fixture(scope="session")
def raw_night(tmp_path_factory) -> Path:
    """One small Alpy observation (science, arc, flat, 3 bias), written with the reduction tests' helpers."""
    helpers = import_file(REPO / "tests" / "rosace_reduction" / "conftest.py", "_wheel_test_reduction_frames")
    from rosace_reduction.instrument import load_instrument
    import numpy as np

    alpy = load_instrument("alpy600")
    truth = helpers.Truth()
    rng = np.random.default_rng(7)
    night = tmp_path_factory.mktemp("raw") / "20261120"
    folder = night / "HD_1234"
    helpers.write_frame(folder / "obs-1_01_LIGHT_001.fits", helpers.render(alpy, truth, "LIGHT", 60.0, rng), alpy, "LIGHT")
    helpers.write_frame(folder / "obs-1_02_ARC_001.fits", helpers.render(alpy, truth, "ARC", 5.0, rng), alpy, "ARC", exptime=5.0)
    helpers.write_frame(folder / "obs-1_03_FLAT_001.fits", helpers.render(alpy, truth, "FLAT", 2.0, rng), alpy, "FLAT", exptime=2.0)
    for i in range(3):
        helpers.write_frame(folder / f"obs-1_04_BIAS_{i:03d}.fits", helpers.render(alpy, truth, "BIAS", 0.0, rng), alpy, "BIAS", exptime=0.0)
    return night


def test_wheel_ships_resources_and_templates(wheel):
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"rosace_resources/{p.relative_to(REPO / 'resources').as_posix()}" for p in (REPO / "resources").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert shipped - names == set(), "resources missing from the wheel"
    for package in ("rosace_share/templates", "rosace_share/static", "rosace_share/migrations"):
        data = {f"{package}/{p.relative_to(REPO / 'modules' / package).as_posix()}" for p in (REPO / "modules" / package).rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}
        assert data and data - names == set(), f"{package} missing from the wheel"


def test_headless_wheel_reduces_and_serves_without_qt(venvs, raw_night, tmp_path):
    venv = venvs.headless()
    assert not venv.desktop
    for qt in ("PySide6", "pyqtgraph"):
        proc = venv.imports(qt)
        assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, f"{qt} is importable in the headless venv"

    # The code and its resources come from the venv, not from the source tree.
    where = venv.run(venv.python, "-c", "import rosace_core.resources as r; print(r.__file__); print(r.resource_path('instruments', 'alpy600.toml'))")
    assert where.returncode == 0, where.stderr
    code, resource = (Path(line) for line in where.stdout.splitlines())
    for path in (code, resource):
        assert venv.path.resolve() in path.resolve().parents, f"{path} is outside the venv"
    assert resource.is_file()

    # Without the desktop extra, the desktop says what to install.
    proc = venv.run(venv.rosace, "desktop")
    assert proc.returncode == 2 and 'rosace[desktop]' in proc.stderr and "Traceback" not in proc.stderr, proc.stderr

    out = tmp_path / "reduced"
    proc = venv.run(venv.rosace, "reduce", raw_night, "--output", out, "--workers", "1", "--json", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["counts"].get("reduced") == 1, report
    assert list(out.rglob("*.fits")), "no spectrum written"

    port = free_port()
    server = subprocess.Popen([str(venv.rosace), "share", "serve", "--port", str(port)], env=venv.env(), cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"

        def health():
            if server.poll() is not None:
                raise AssertionError(f"share server exited: {server.stdout.read()[-3000:]}")
            try:
                return requests.get(f"{base}/api/v1/health", timeout=30)
            except requests.ConnectionError:
                return None

        assert wait_for(health, timeout=180, poll=0.5).status_code == 200
        gallery = requests.get(f"{base}/gallery/", timeout=30)
        assert gallery.status_code == 200 and "<html" in gallery.text.lower()
        style = requests.get(f"{base}/gallery/static/style.css", timeout=30)
        assert style.status_code == 200
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


def test_desktop_extra_opens_the_desktop_offscreen(venvs):
    venv = venvs.with_desktop()
    assert venv.imports("PySide6.QtWidgets").returncode == 0
    dead = f"http://127.0.0.1:{free_port()}"
    proc = venv.run(venv.rosace, "desktop", "--remote", "--module-url", f"dome={dead}", "--only", "dome",
                    "--report-ready", "--exit-after", "3", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ready = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    assert ready["tabs"] == 1
