"""Frozen entry point of ``rosace-desktop.exe``: a tiny launcher of ``rosace.exe desktop``.

The desktop program carries no copy of ROSACE's Python code (about 30 MB of
archive, which PyInstaller embeds in every program): it runs the command-line
program of the same folder with the ``desktop`` command. On Windows the child is
started without a console window (``CREATE_NO_WINDOW``), so a double-click on
the shortcut shows the desktop only; elsewhere the launcher replaces itself
with the child (``os.execv``). The launcher's exit status is the desktop's.

Only the standard library is imported here, on purpose: the build analyses this
file separately and bundles just what it imports.
"""

import os
import subprocess
import sys
from pathlib import Path

_GLOBAL_WITH_VALUE = ("--config", "--log-level")


def desktop_argv(argv: list[str]) -> list[str]:
    """Turn the desktop program's arguments into ``rosace`` command-line arguments.

    A double-click gives no arguments: open the desktop. Global options
    (``--config X``) stay in front; the ``desktop`` command is inserted after
    them unless a command (``desktop``, ``selftest``) is already given.
    """
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _GLOBAL_WITH_VALUE:
            i += 2
        elif arg.startswith(tuple(f"{g}=" for g in _GLOBAL_WITH_VALUE)):
            i += 1
        else:
            break
    if i < len(argv) and argv[i] in ("desktop", "selftest"):
        return argv
    return [*argv[:i], "desktop", *argv[i:]]


def cli_program(folder: Path) -> Path:
    """Return the command-line program ``rosace(.exe)`` next to the launcher."""
    return folder / ("rosace.exe" if os.name == "nt" else "rosace")


def main(argv: list[str]) -> int:
    """Run ``rosace desktop`` (or the command given) and return its exit status."""
    args = desktop_argv(argv)
    if not getattr(sys, "frozen", False):
        # From the source tree: run the command line in this process. Imported by
        # name so that PyInstaller's analysis of this file does not follow it.
        import importlib

        return importlib.import_module("rosace_core.cli").main(args)
    program = cli_program(Path(sys.executable).resolve().parent)
    if not program.exists():
        # No console to print to on Windows; the status tells the shortcut it failed.
        return 2
    # Both programs are frozen: the child must start afresh, not take the launcher's
    # bootloader state (PyInstaller's documented switch for launching a frozen program).
    env = {**os.environ, "PYINSTALLER_RESET_ENVIRONMENT": "1"}
    if os.name == "nt":
        # A windowed launcher (no console: sys.stdout is None) starts the console
        # program with CREATE_NO_WINDOW, so no black window opens beside the desktop;
        # a console launcher (ROSACE_DESKTOP_CONSOLE=1 build) lets it share its console.
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.stdout is None else 0
        return subprocess.call([str(program), *args], creationflags=flags, env=env)
    os.execve(str(program), [str(program), *args], env)
    return 0  # not reached: execv replaces this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
