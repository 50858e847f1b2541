"""Shared test set-up: offscreen Qt, offline astropy, user folders in a temporary place."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before anything imports platformdirs or Qt: every test run gets its own user
# folders (config, token, data, logs), so tests never touch the real ones and
# child processes (servers started by tests) inherit the same folders.
_HOME = Path(tempfile.mkdtemp(prefix="rosace-tests-"))
for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"), ("XDG_STATE_HOME", "state"), ("XDG_CACHE_HOME", "cache")):
    os.environ[var] = str(_HOME / sub)
    (_HOME / sub).mkdir(parents=True, exist_ok=True)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.pop("ROSACE_CONFIG", None)
os.environ.pop("ROSACE_CLOCK", None)

import pytest  # noqa: E402

from rosace_core.astro import configure_offline  # noqa: E402

configure_offline()

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture
def examples_dir() -> Path:
    """The shipped example Observing Files."""
    return REPO / "resources" / "observing_files"


@pytest.fixture(scope="session")
def earth_orientation():
    """The IERS table read once, as every ``rosace <module> serve`` does at start-up.

    A module app served in-process by a test skips that start-up, so without this its first
    request that needs UT1 read the table itself: 3-5 s of CPU on an idle machine, over 30 s
    on a loaded one, past a client's 10 s timeout (ReadTimeout in the scheduler API tests).
    """
    from rosace_core.astro import load_earth_orientation

    return load_earth_orientation()
