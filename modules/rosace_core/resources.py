"""Where ROSACE finds its shipped resources (line lists, instruments, examples).

The ``resources/`` folder sits at the top of the source tree and is shipped inside
the wheel as the package ``rosace_resources`` (setup.py maps it), found here with
:mod:`importlib.resources`. In order:

1. ``ROSACE_RESOURCES``: a user's own copy;
2. a PyInstaller bundle: ``resources/`` next to the bundle's data (installer/rosace.spec);
3. a source checkout (this file under ``modules/rosace_core`` of a tree holding
   ``pyproject.toml``): the tree's own ``resources/``, so that code run from a work
   tree through ``PYTHONPATH`` reads that tree's resources, not an installed copy;
4. the installed ``rosace_resources`` package (a wheel, or an editable install).
"""

from __future__ import annotations

import os
import sys
from functools import cache
from importlib import resources as _importlib_resources
from pathlib import Path

from rosace_core.errors import RosaceError

PACKAGE = "rosace_resources"


def resources_dir() -> Path:
    """Return the folder holding ROSACE's shipped resources."""
    env = os.environ.get("ROSACE_RESOURCES")
    if env:
        return Path(env)
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return _installed_dir()


@cache
def _installed_dir() -> Path:
    tree = Path(__file__).resolve().parents[2]
    if (tree / "pyproject.toml").is_file() and (tree / "resources").is_dir():
        return tree / "resources"
    try:
        found = _importlib_resources.files(PACKAGE)
    except ModuleNotFoundError:
        raise RosaceError(
            f"ROSACE's resources are missing: no package {PACKAGE!r} and no source tree at {tree}; "
            "reinstall rosace or set ROSACE_RESOURCES to a copy of its resources folder"
        ) from None
    # Wheels install unpacked, so the package is a real folder; callers need a Path
    # (they glob folders and hand paths to astropy), which a zipped package cannot give.
    if not isinstance(found, Path):
        raise RosaceError(f"ROSACE's resources must be installed as files, not inside an archive ({found})")
    return found


def resource_path(*parts: str) -> Path:
    """Return the path of a shipped resource, e.g. ``resource_path("linelists", "ne.csv")``."""
    return resources_dir().joinpath(*parts)
