"""Fixtures of the scheduler tests: a configuration in a temporary data folder, a fixed night."""

from __future__ import annotations

import shutil

import pytest

from rosace_core.config import config_from_dict

NIGHT = "2026-11-20"
EVENING = "2026-11-20T19:00:00Z"


@pytest.fixture
def config(tmp_path):
    """Default site (43.75 N), Alpy 600 mounted, data under tmp_path, no folder watcher thread."""
    return config_from_dict({"data": {"root": str(tmp_path / "data")}, "scheduler": {"watch_interval": 0}})


@pytest.fixture
def queue_folder(tmp_path, examples_dir):
    """A queue folder holding copies of the shipped example Observing Files."""
    folder = tmp_path / "queue"
    folder.mkdir()
    for p in examples_dir.iterdir():
        shutil.copy(p, folder / p.name)
    return folder


@pytest.fixture(autouse=True)
def _earth_orientation_loaded(earth_orientation):
    """Every scheduler test works with the IERS table loaded, as the served scheduler does (tests/conftest.py)."""
