"""A rotating dome on the simulated observatory: slaving, and closing over a mount that cannot park."""

from __future__ import annotations

import time

import pytest

from rosace_core.alpaca import Dome, ShutterState, Telescope
from rosace_core.config import config_from_dict
from rosace_dome.api import create_app
from rosace_dome.slaving import azimuth_error, dome_azimuth

sim_testing = pytest.importorskip("rosace_sim.testing")

SCENARIO = {
    "name": "dome-slaving",
    "clock": {"start": "2026-01-15T22:00:00Z", "rate": 50.0},
    "shelter": {"type": "dome", "shutter_time": 20, "slew_rate": 20.0},
}
GEOMETRY = {"radius": 2.0, "mount_north": 0.2, "pier_height": 0.3, "gem_offset": 0.4, "interval": 10.0, "tolerance": 3.0}


def wait_for(predicate, timeout=15.0, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def test_dome_follows_the_mount_and_closes_even_if_the_mount_cannot_park(tmp_path):
    with sim_testing.SimObservatory(SCENARIO) as sim:
        devices = {n: {"url": sim.url, "device_number": 0} for n in ("dome", "telescope", "safety_monitor", "observing_conditions")}
        cfg = config_from_dict({
            "devices": {**devices, "shelter": "dome"},
            "data": {"root": str(tmp_path)},
            "dome": {"poll_period": 1.0, "min_poll_wall": 0.05, "park_timeout": 60.0, "reopen_delay": 0, "slaving": GEOMETRY},
        })
        app = create_app(cfg, token="t")
        shelter = app.extensions["rosace_dome"]
        try:
            dome, tel = Dome(sim.url, 0), Telescope(sim.url, 0)
            dome.connect()
            tel.connect()
            assert wait_for(lambda: shelter.verdict is not None and not shelter.open_refusals(), 10), shelter.open_refusals()
            job = shelter.open("test")
            assert job.wait(10) and job.state == "succeeded", job.error
            tel.unpark()
            tel.tracking = True
            lst = tel.sidereal_time * 15.0
            tel.slew_to((lst - 30.0) % 360.0, 20.0)  # two hours west of the meridian
            assert wait_for(lambda: not tel.slewing, 10)

            def on_target():
                target = dome_azimuth(tel.sidereal_time * 15.0 - tel.ra, tel.dec, cfg.site.latitude, tel.side_of_pier, shelter.settings.slaving)
                return azimuth_error(dome.azimuth, target) <= 3.0 and not dome.slewing

            assert wait_for(on_target, 15), shelter.status()["mount"]["slaving"]
            assert any(e.kind == "slaving" for e in shelter.journal.events())
            # The slit is not simply at the telescope's azimuth: the offsets matter.
            assert shelter.status()["shelter"]["azimuth"] is not None

            sim.control.inject_fault("telescope", "park_fail")
            sim.control.set_weather(rain_rate=2.0)
            assert wait_for(lambda: dome.shutter == ShutterState.CLOSED, 15)
            assert "park_failed" in shelter.journal.active_codes()
            assert not tel.at_park
        finally:
            shelter.stop()
