"""Logging set-up: console plus a rotating file in the user log folder.

Timestamps are read on the process clock (:mod:`rosace_core.clock`): under a
simulated clock (a demo night) a log line carries the simulated instant the
display and the modules show, not the wall time.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

import platformdirs

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class ClockFormatter(logging.Formatter):
    """A formatter whose ``asctime`` is the process clock's reading when the record was made."""

    def formatTime(self, record, datefmt=None):  # noqa: N802 (logging's name)
        from rosace_core.clock import get_clock

        clock = get_clock()
        if not clock.is_simulated:
            return super().formatTime(record, datefmt)
        when = clock.at_wall(record.created)
        return when.strftime(datefmt) if datefmt else when.strftime("%Y-%m-%d %H:%M:%S") + f",{when.microsecond // 1000:03d}"


def log_dir() -> Path:
    """Return the user log folder (created if missing)."""
    path = Path(platformdirs.user_log_dir("rosace", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def setup_logging(name: str = "rosace", level: str | int = "INFO", *, to_file: bool = True, folder: Path | None = None,
                  console_level: str | int | None = None) -> Path | None:
    """Configure the root logger; return the log file path (or None).

    ``name`` names the file (``<name>.log``), so each process of a demo night
    writes its own. ``console_level`` (default ``level``) lets the console show
    less than the file keeps (a live display owns the terminal).
    """
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        if getattr(handler, "_rosace", False):
            root.removeHandler(handler)
    console = logging.StreamHandler()
    console.setFormatter(ClockFormatter(_FORMAT))
    if console_level is not None:
        console.setLevel(console_level)
    console._rosace = True  # type: ignore[attr-defined]
    root.addHandler(console)
    path = None
    if to_file:
        folder = folder or log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.log"
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
        handler.setFormatter(ClockFormatter(_FORMAT))
        handler._rosace = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    for noisy in ("waitress", "urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path
