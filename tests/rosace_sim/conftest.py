"""Fixtures of the simulator tests: one simulated observatory per module, on a fast clock."""

from __future__ import annotations

import pytest

from rosace_sim.testing import SimObservatory

#: A winter night, played 20x faster than real time: a 20 s shutter moves in 1 s.
FAST = {
    "clock": {"start": "2025-01-15T20:00:00Z", "rate": 20},
    "shelter": {"type": "rolloff", "shutter_time": 20},
    "telescope": {"slew_rate": 6.0, "settle_time": 1.0, "pointing_error": 6.0},
    "spectro_camera": {"cooling_time_constant": 60, "readout_time": 0.5},
    "stars": [
        {"name": "zet Tau", "ra": 84.411189, "dec": 21.142549, "vmag": 3.03, "spectral_type": "B1IVe", "be_emission": {"ew": -18.0}},
        {"name": "HD 35468", "ra": 81.282764, "dec": 6.349703, "vmag": 1.64, "spectral_type": "B2III"},
    ],
    "weather": {"update_interval": 30, "timeline": [{"at": "+0s", "cloud_cover": 0, "rain_rate": 0, "humidity": 50, "temperature": 3}]},
}


@pytest.fixture(scope="module")
def sim():
    """A running simulator (module scope: tests share it and must leave it as they found it)."""
    with SimObservatory(FAST) as s:
        yield s

