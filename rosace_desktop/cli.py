"""``rosace desktop`` and ``rosace selftest`` commands (registered by rosace_core.cli)."""

from __future__ import annotations

import sys

#: The distributions of the ``desktop`` extra, by the module name they are imported as.
DESKTOP_EXTRA = ("PySide6", "shiboken6", "pyqtgraph")


def missing_desktop_extra() -> str | None:
    """Return the message to print when Qt or pyqtgraph is not installed, else None."""
    from importlib.util import find_spec

    missing = [name for name in ("PySide6", "pyqtgraph") if find_spec(name) is None]
    if not missing:
        return None
    return (f"the desktop needs {' and '.join(missing)}, which this installation lacks (the headless modules "
            "and the command line work without them); install them with:  python -m pip install \"rosace[desktop]\"")


def _needs_desktop_extra(run):
    """Wrap a command so that a missing Qt prints how to install it instead of a traceback."""

    def command(args) -> int:
        message = missing_desktop_extra()
        if message is None:
            try:
                return run(args)
            except ImportError as exc:  # a broken Qt installation (a library missing from PySide6...)
                if (exc.name or "").split(".")[0] not in DESKTOP_EXTRA:
                    raise
                message = f"the desktop cannot import {exc.name}: {exc}; reinstall it with:  python -m pip install --force-reinstall \"rosace[desktop]\""
        print(f"error: {message}", file=sys.stderr)
        return 2

    return command


def _desktop(args) -> int:
    from rosace_desktop.app import run_desktop

    return run_desktop(args)


def _selftest(args) -> int:
    from rosace_desktop.selftest import run_selftest

    return run_selftest(args)


def register(sub) -> None:
    """Add the ``desktop`` and ``selftest`` subcommands to the ``rosace`` parser."""
    p = sub.add_parser(
        "desktop",
        help="open the desktop program (one tab per module)",
        description="Open the ROSACE desktop: one tab per module. By default each module is reached at the URL "
        "of the configuration if a server answers there, else started on this PC.",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--remote", action="store_true", help="connect every tab to an already-running server (URLs and tokens from the configuration)")
    where.add_argument("--local", action="store_true", help="start every module's server on this PC")
    p.add_argument("--module-url", action="append", metavar="MODULE=URL", help="connect one module to the server at URL (repeatable, or comma-separated)")
    p.add_argument("--token", help="bearer token for the remote servers (default: configuration, ROSACE_TOKEN, or this installation's)")
    p.add_argument("--only", metavar="MODULES", help="comma-separated modules to show (default: all registered)")
    p.add_argument("--exit-after", type=float, metavar="SECONDS", help=argparse_hidden())
    p.add_argument("--report-ready", action="store_true", help=argparse_hidden())
    p.set_defaults(func=_needs_desktop_extra(_desktop))

    p = sub.add_parser(
        "selftest",
        help="check this installation: import every module, start each server, open the desktop offscreen",
    )
    p.add_argument("--timeout", type=float, default=90.0, help="seconds each step may take (default 90)")
    p.add_argument("--screenshots", metavar="FOLDER", help="save a PNG of each tab there")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_needs_desktop_extra(_selftest))


def argparse_hidden():
    """Help text hiding an option meant for benchmarks and the self-test."""
    import argparse

    return argparse.SUPPRESS
