"""The roof guard when the dome module is unreachable: the sequencer asks the SafetyMonitor itself, stops and parks.

Real HTTP throughout: the simulator's SafetyMonitor and mount, and a dome module
URL where nothing answers (a killed module) or a server that never replies (a frozen one).
"""

from __future__ import annotations

import socket

import pytest

from rosace_core.alpaca import SafetyMonitor, Telescope
from rosace_dome.client import DomeClient
from rosace_sequencer.roof import DomeLeaseGuard

sim_testing = pytest.importorskip("rosace_sim.testing")

SCENARIO = {
    "name": "roof-guard",
    "clock": {"start": "2026-01-15T22:00:00Z", "rate": 50.0},
    "telescope": {"start_parked": False},
    "weather": {"update_interval": 10, "timeline": [{"at": "+0s", "cloud_cover": 0, "rain_rate": 0, "wind_speed": 3, "humidity": 55}]},
}


@pytest.fixture(scope="module")
def sim():
    with sim_testing.SimObservatory(SCENARIO) as sim:
        yield sim


@pytest.fixture
def devices(sim):
    sim.control.clear_weather()
    monitor, mount = SafetyMonitor(sim.url, 0, retries=1), Telescope(sim.url, 0, retries=1)
    monitor.connect()
    mount.connect()
    if mount.at_park:
        mount.unpark()
    return monitor, mount


def dead_dome() -> DomeClient:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return DomeClient(f"http://127.0.0.1:{port}")


def test_dome_unreachable_and_rain_stops_at_once_and_parks(sim, devices):
    monitor, mount = devices
    guard = DomeLeaseGuard(dead_dome(), safety_monitor=monitor, park=mount.park, status_timeout=0.5)
    sim.control.set_weather(rain_rate=3.0, cloud_cover=100, humidity=97)
    sim_testing.wait_for(lambda: not monitor.is_safe, 10)
    assert guard.is_safe() is False, "the SafetyMonitor says unsafe: no grace for a lost reply"
    assert sim_testing.wait_for(lambda: mount.at_park, 20)


def test_dome_unreachable_under_a_clear_sky_tolerates_a_lost_reply_then_parks(sim, devices):
    monitor, mount = devices
    guard = DomeLeaseGuard(dead_dome(), safety_monitor=monitor, park=mount.park, status_timeout=0.5, failures_allowed=2)
    assert guard.is_safe() is True and guard.is_safe() is True
    assert not mount.at_park
    assert guard.is_safe() is False, "a dome module that stays silent stops the observation"
    assert sim_testing.wait_for(lambda: mount.at_park, 20)


def test_a_frozen_dome_module_stops_the_observation(sim, devices):
    monitor, mount = devices
    with socket.socket() as server:  # accepts connections, never answers: a SIGSTOPped process
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        client = DomeClient(f"http://127.0.0.1:{server.getsockname()[1]}")
        guard = DomeLeaseGuard(client, safety_monitor=monitor, park=mount.park, status_timeout=0.5, failures_allowed=0)
        assert guard.is_safe() is False
    assert sim_testing.wait_for(lambda: mount.at_park, 20)
