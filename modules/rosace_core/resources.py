"""Where ROSACE finds its shipped resources (line lists, instruments, examples).

The ``resources/`` folder sits at the top of the source tree; in a PyInstaller
bundle it is copied next to the executable's data. ``ROSACE_RESOURCES`` overrides
both, which lets a user point at their own copy.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def resources_dir() -> Path:
    """Return the folder holding ROSACE's shipped resources."""
    env = os.environ.get("ROSACE_RESOURCES")
    if env:
        return Path(env)
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def resource_path(*parts: str) -> Path:
    """Return the path of a shipped resource, e.g. ``resource_path("linelists", "ne.csv")``."""
    return resources_dir().joinpath(*parts)
