"""The Windows installer: NSIS script compiles, desktop program arguments, frozen bundle self-test."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALLER = ROOT / "installer"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, INSTALLER / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], ["desktop"]),
        (["--config", "obs.toml"], ["--config", "obs.toml", "desktop"]),
        (["--config=obs.toml", "--remote"], ["--config=obs.toml", "desktop", "--remote"]),
        (["selftest"], ["selftest"]),
        (["--log-level", "DEBUG", "desktop", "--local"], ["--log-level", "DEBUG", "desktop", "--local"]),
    ],
)
def test_desktop_program_arguments_become_the_desktop_command(argv, expected):
    assert _load("entry_desktop").desktop_argv(argv) == expected


def test_cli_program_is_found_next_to_the_launcher(tmp_path):
    program = _load("entry_desktop").cli_program(tmp_path)
    assert program.parent == tmp_path and program.name == ("rosace.exe" if os.name == "nt" else "rosace")


@pytest.mark.skipif(os.name == "nt", reason="POSIX launcher path (execve); Windows uses CREATE_NO_WINDOW")
def test_frozen_launcher_runs_the_cli_program_with_the_desktop_command(tmp_path):
    # A stand-in for the frozen ``rosace`` next to the launcher: it records what it receives.
    record = tmp_path / "record.json"
    fake = tmp_path / "rosace"
    fake.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                    f"json.dump({{'argv': sys.argv[1:], 'reset': os.environ.get('PYINSTALLER_RESET_ENVIRONMENT')}},"
                    f" open({str(record)!r}, 'w'))\nsys.exit(3)\n")
    fake.chmod(0o755)
    # The launcher as frozen: sys.frozen set, sys.executable = rosace-desktop in the same folder.
    code = ("import sys, importlib.util; sys.frozen = True; "
            f"sys.executable = {str(tmp_path / 'rosace-desktop')!r}; "
            f"spec = importlib.util.spec_from_file_location('entry_desktop', {str(INSTALLER / 'entry_desktop.py')!r}); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            "sys.exit(m.main(['--config', 'obs.toml']))")
    proc = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert proc.returncode == 3  # the child's status: the launcher replaced itself with it
    assert json.loads(record.read_text()) == {"argv": ["--config", "obs.toml", "desktop"], "reset": "1"}


@pytest.mark.skipif(shutil.which("makensis") is None, reason="NSIS (makensis) not installed")
def test_nsis_script_compiles_around_a_payload(tmp_path):
    payload = tmp_path / "payload"
    (payload / "_internal").mkdir(parents=True)
    (payload / "rosace.exe").write_bytes(b"MZ dummy console program")
    (payload / "rosace-desktop.exe").write_bytes(b"MZ dummy desktop program")
    (payload / "_internal" / "base_library.zip").write_bytes(b"PK" + b"\0" * 1000)
    build = _load("build")
    setup = build.build_installer(payload, tmp_path / "out" / "rosace-setup.exe")
    data = setup.read_bytes()
    assert data[:2] == b"MZ" and len(data) > 30_000  # a Windows program holding the NSIS stub


def test_nsis_script_installs_per_user_and_keeps_user_data():
    nsi = (INSTALLER / "rosace.nsi").read_text(encoding="utf-8")
    assert "RequestExecutionLevel user" in nsi
    assert '$LOCALAPPDATA\\Programs\\' in nsi and "HKLM" not in nsi
    assert "$SMPROGRAMS" in nsi and "$DESKTOP\\" in nsi
    uninstall = nsi[nsi.index('Section "Uninstall"'):]
    # The uninstaller deletes the program folder only, never the user's rosace data folder.
    assert "$LOCALAPPDATA\\rosace" not in uninstall.replace("%LOCALAPPDATA%\\rosace", "")
    assert "RMDir /r \"$INSTDIR\"" not in uninstall


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_frozen_bundle_builds_and_passes_its_selftest(tmp_path):
    pytest.importorskip("PyInstaller")
    dist, work = tmp_path / "dist", tmp_path / "work"
    build = subprocess.run([sys.executable, str(INSTALLER / "build.py"), "--dist", str(dist), "--work", str(work),
                            "--no-installer", "--no-selftest"], capture_output=True, text=True, timeout=840)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    bundle = dist / "rosace"
    exe = bundle / ("rosace.exe" if os.name == "nt" else "rosace")
    assert exe.exists() and (bundle / ("rosace-desktop.exe" if os.name == "nt" else "rosace-desktop")).exists()
    assert (bundle / "_internal" / "resources" / "config" / "rosace.toml").exists()
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([str(exe), "selftest", "--json"], capture_output=True, text=True, timeout=300, env=env)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0 and report["ok"] and report["frozen"], proc.stdout[-4000:] + proc.stderr[-2000:]
    assert {s["name"] for s in report["steps"] if s["ok"]} >= {f"serve {m}" for m in ("dome", "scheduler", "sequencer", "reduction", "share")}
    # The desktop program is a small launcher, not a second copy of the Python archive.
    desktop = bundle / ("rosace-desktop.exe" if os.name == "nt" else "rosace-desktop")
    assert desktop.stat().st_size < 8_000_000 < exe.stat().st_size
    # Linux: Qt's ICU data library was rewritten with the parts ROSACE needs (installer/slim_icu.py).
    for icu in (bundle / "_internal").rglob("libicudata.so.*"):
        assert icu.is_symlink() or icu.stat().st_size < 10_000_000, icu
