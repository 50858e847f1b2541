"""Frozen entry point of ``rosace-desktop.exe``: the desktop program (no console window)."""

import sys

from rosace_core.cli import main

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


if __name__ == "__main__":
    sys.exit(main(desktop_argv(sys.argv[1:])))
