"""Build the ROSACE Windows installer: PyInstaller bundle, self-test, NSIS installer.

Usage (from anywhere)::

    python installer/build.py                 # bundle + self-test + installer
    python installer/build.py --no-installer  # bundle + self-test only (Linux, CI)
    python installer/build.py --installer-only --payload build/dist/rosace

Steps:

1. ``pyinstaller installer/rosace.spec`` -> ``<dist>/rosace/`` (one folder holding
   ``rosace(.exe)`` and ``rosace-desktop(.exe)``);
2. ``<dist>/rosace/rosace selftest`` -> must exit 0;
3. ``makensis installer/rosace.nsi`` -> ``<dist>/rosace-<version>-setup.exe``.

Every step prints what it runs; a failing step stops the build with its exit status.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALLER = ROOT / "installer"


def version() -> str:
    """Return ROSACE's version (from the source tree, so no install is needed)."""
    sys.path[:0] = [str(ROOT / "modules")]
    from rosace_core import __version__

    return __version__


def run(cmd: list[str], **kw) -> None:
    """Run a command, echoing it; raise SystemExit with its status if it fails."""
    print("build:", " ".join(str(c) for c in cmd), flush=True)
    status = subprocess.call([str(c) for c in cmd], **kw)
    if status != 0:
        raise SystemExit(f"build: {Path(str(cmd[0])).name} failed with status {status}")


def executable(folder: Path, name: str) -> Path:
    """Return the path of a program of the bundle (``.exe`` on Windows)."""
    return folder / (f"{name}.exe" if os.name == "nt" else name)


def build_bundle(dist: Path, work: Path) -> Path:
    """Run PyInstaller on rosace.spec; return the bundle folder."""
    dist.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    # Run from the work folder: the source tree's stale ``rosace.egg-info`` must not
    # shadow the installed distribution metadata (the entry points) for copy_metadata.
    run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
         "--distpath", dist, "--workpath", work, INSTALLER / "rosace.spec"], cwd=work)
    bundle = dist / "rosace"
    if not executable(bundle, "rosace").exists():
        raise SystemExit(f"build: no program in {bundle}")
    return bundle


def selftest(bundle: Path, timeout: float = 300) -> None:
    """Run the frozen ``rosace selftest`` (offscreen Qt) and require exit status 0."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    print("build: self-test of", bundle, flush=True)
    proc = subprocess.run([str(executable(bundle, "rosace")), "selftest"], env=env, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"build: frozen self-test failed with status {proc.returncode}")


def folder_size(folder: Path) -> int:
    """Total size in bytes of the files under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def makensis() -> str:
    """Return the makensis program (PATH, or NSIS's default Windows folder)."""
    found = shutil.which("makensis")
    if found:
        return found
    for base in (os.environ.get("ProgramFiles(x86)"), os.environ.get("ProgramFiles")):
        if base and (Path(base) / "NSIS" / "makensis.exe").exists():
            return str(Path(base) / "NSIS" / "makensis.exe")
    raise SystemExit("build: makensis not found (install NSIS: https://nsis.sourceforge.io, or `apt install nsis`)")


def build_installer(payload: Path, output: Path) -> Path:
    """Compile rosace.nsi around the bundle folder ``payload``; return the setup program."""
    output.parent.mkdir(parents=True, exist_ok=True)
    run([makensis(), "-V2", "-NOCD", f"-DVERSION={version()}", f"-DPAYLOAD={payload.resolve()}",
         f"-DOUTFILE={output.resolve()}", f"-DSRCDIR={INSTALLER}", INSTALLER / "rosace.nsi"])
    return output


def main(argv: list[str] | None = None) -> int:
    """Run the build steps asked for; return 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "build" / "dist", help="output folder (default build/dist)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "work", help="PyInstaller work folder")
    parser.add_argument("--no-installer", action="store_true", help="stop after the bundle and its self-test")
    parser.add_argument("--no-selftest", action="store_true", help="do not run the frozen self-test")
    parser.add_argument("--installer-only", action="store_true", help="only compile the NSIS script around --payload")
    parser.add_argument("--payload", type=Path, help="bundle folder to package (default <dist>/rosace)")
    args = parser.parse_args(argv)

    dist = args.dist.resolve()
    payload = (args.payload or dist / "rosace").resolve()
    if not args.installer_only:
        started = time.monotonic()
        payload = build_bundle(dist, args.work.resolve())
        print(f"build: bundle {payload} ({folder_size(payload) / 1e6:.0f} MB) in {time.monotonic() - started:.0f} s", flush=True)
        if not args.no_selftest:
            selftest(payload)
    if not args.no_installer:
        setup = build_installer(payload, dist / f"rosace-{version()}-setup.exe")
        print(f"build: installer {setup} ({setup.stat().st_size / 1e6:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
