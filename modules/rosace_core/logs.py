"""Logging set-up: console plus a rotating file in the user log folder."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

import platformdirs

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def log_dir() -> Path:
    """Return the user log folder (created if missing)."""
    path = Path(platformdirs.user_log_dir("rosace", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def setup_logging(name: str = "rosace", level: str | int = "INFO", *, to_file: bool = True, folder: Path | None = None) -> Path | None:
    """Configure the root logger; return the log file path (or None).

    ``name`` names the file (``<name>.log``), so each process of a demo night
    writes its own.
    """
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        if getattr(handler, "_rosace", False):
            root.removeHandler(handler)
    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter(_FORMAT))
    console._rosace = True  # type: ignore[attr-defined]
    root.addHandler(console)
    path = None
    if to_file:
        folder = folder or log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.log"
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler._rosace = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    for noisy in ("waitress", "urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path
