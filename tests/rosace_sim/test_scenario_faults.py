"""Scenario weather timeline, live control, faults, discovery and the CLI."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests
from alpaca import exceptions as ax
from alpaca.camera import Camera
from alpaca.dome import Dome, ShutterState
from alpaca.observingconditions import ObservingConditions
from alpaca.safetymonitor import SafetyMonitor
from alpaca.telescope import Telescope

from rosace_core.clock import get_clock
from rosace_core.errors import ConfigError
from rosace_core.http import ApiError
from rosace_sim.scenario import load_scenario
from rosace_sim.testing import SimObservatory, wait_for


def _addr(sim):
    return sim.url.split("://", 1)[1]


def test_shipped_scenarios_load():
    demo = load_scenario("demo_night")
    assert demo.clock.rate == 60 and demo.shelter.type == "rolloff"
    assert any(s.be_emission for s in demo.stars)
    clear = load_scenario(None)
    assert clear.name == "clear"
    with pytest.raises(ConfigError, match="shelter.type"):
        load_scenario({"shelter": {"type": "tent"}})
    with pytest.raises(ConfigError, match="not found"):
        load_scenario("no_such_scenario")


def test_demo_night_weather_timeline_drives_safety():
    """Clear at first; overcast (unsafe) 4h30 in; clear again; rain before dawn."""
    from rosace_sim.observatory import Observatory

    obs = Observatory("demo_night")
    start = obs.scenario.clock.start
    from datetime import timedelta

    def at(hours):
        return obs.weather.values_at(start + timedelta(hours=hours))

    assert at(2)["safe"] is True
    assert at(5)["safe"] is False and at(5)["cloud_cover"] == 90
    assert at(7)["safe"] is True
    assert at(11.5)["safe"] is False and at(11.5)["rain_rate"] > 0


def test_timeline_and_live_weather_through_alpaca():
    scenario = {
        "clock": {"start": "2025-01-15T20:00:00Z", "rate": 100},
        "weather": {"update_interval": 60, "timeline": [
            {"at": "+0s", "cloud_cover": 0, "humidity": 50},
            {"at": "+5m", "cloud_cover": 95},
        ]},
    }
    with SimObservatory(scenario) as sim:
        sm = SafetyMonitor(_addr(sim), 0)
        sm.Connect()
        oc = ObservingConditions(_addr(sim), 0)
        oc.Connect()
        assert sm.IsSafe is True and oc.CloudCover == 0.0
        wait_for(lambda: not sm.IsSafe, timeout=10)  # 5 simulated minutes later: overcast
        assert oc.CloudCover == 95.0
        sim.control.set_weather(cloud_cover=10, rain_rate=3.0)
        assert oc.RainRate == 3.0 and sm.IsSafe is False
        sim.control.set_weather(rain_rate=None, cloud_cover=None, safe=True)
        assert sm.IsSafe is True
        sim.control.clear_weather()
        assert sm.IsSafe is False
        # Ages are honest: never more than the station's interval ...
        assert oc.TimeSinceLastUpdate("CloudCover") <= 60.0
        # ... until the station stops measuring: then the reading ages.
        sim.control.inject_fault("observingconditions", "stale")
        age0 = oc.TimeSinceLastUpdate("")
        time.sleep(1.0)  # 100 simulated seconds
        assert oc.TimeSinceLastUpdate("") >= age0 + 90


def test_control_needs_the_token():
    with SimObservatory(keep_clock=True) as sim:
        resp = requests.put(f"{sim.url}/sim/v1/weather", json={"cloud_cover": 50}, timeout=30)
        assert resp.status_code == 401
        assert requests.get(f"{sim.url}/sim/v1/state", timeout=30).status_code == 200
        with pytest.raises(ApiError) as err:
            sim.control.inject_fault("dome", "melt")
        assert err.value.status == 422
        with pytest.raises(ApiError):
            sim.control.set_weather(cloud_cover=150)


def test_faults_disconnect_error_slow_and_duration():
    with SimObservatory({"clock": {"start": "2025-01-15T20:00:00Z", "rate": 10}}) as sim:
        cam = Camera(_addr(sim), 0)
        cam.Connect()
        # 6 wall seconds: time for the four calls below on a loaded machine (2 s were not always)
        sim.control.inject_fault("camera", "disconnect", device_number=0, duration=60)
        with pytest.raises(ax.NotConnectedException):
            cam.StartExposure(1.0, True)
        assert cam.Connected is False
        with pytest.raises(ax.NotConnectedException):
            cam.Connect()
        # The guide camera is not affected.
        guide = Camera(_addr(sim), 1)
        guide.Connect()
        assert guide.CameraXSize == 640
        wait_for(lambda: not sim.control.faults()[0]["active"], timeout=30)
        cam.Connect()
        assert cam.CameraXSize == 3000
        sim.control.inject_fault("camera", "error")
        with pytest.raises(ax.DriverException) as err:
            cam.CameraState  # noqa: B018 - the read is the test
        assert err.value.number == 0x500
        sim.control.clear_faults()
        sim.control.inject_fault("camera", "slow", device_number=1)
        t0 = time.monotonic()
        guide.CameraXSize  # noqa: B018 - the read is the test
        assert time.monotonic() - t0 >= 1.5
        sim.control.clear_faults()
        sim.control.inject_fault("camera", "timeout", device_number=1)
        with pytest.raises(requests.Timeout):
            requests.get(f"{sim.url}/api/v1/camera/1/cameraxsize", timeout=1.0)
        sim.control.clear_faults()


def test_stuck_shutter_and_park_failure():
    # The stall turns into an error after 200 clock seconds (4 s wall): well after the test has
    # looked at the stalled shutter even on a loaded machine (at 60 s, 0.6 s of wall time of
    # margin, a loaded machine could read the error already).
    scenario = {"clock": {"start": "2025-01-15T20:00:00Z", "rate": 50}, "shelter": {"shutter_time": 20, "stall_error_after": 200},
                "faults": [{"at": "+0s", "device": "telescope", "kind": "park_fail"}]}
    with SimObservatory(scenario) as sim:
        dome = Dome(_addr(sim), 0)
        dome.Connect()
        sim.control.inject_fault("dome", "stuck_shutter")
        dome.OpenShutter()
        time.sleep(0.6)  # 30 simulated seconds: a free shutter would be open
        assert dome.ShutterStatus == ShutterState.shutterOpening
        wait_for(lambda: dome.ShutterStatus == ShutterState.shutterError, timeout=30)
        sim.control.clear_faults("dome")
        dome.OpenShutter()
        wait_for(lambda: dome.ShutterStatus == ShutterState.shutterOpen, timeout=30)
        tel = Telescope(_addr(sim), 0)
        tel.Connect()
        tel.Unpark()
        tel.Park()
        wait_for(lambda: not tel.Slewing, timeout=10)
        assert tel.AtPark is False  # the scenario's park_fail fault
        sim.control.clear_faults()
        tel.Park()
        wait_for(lambda: tel.AtPark, timeout=10)


def test_rotating_dome_follows_azimuth():
    with SimObservatory({"clock": {"start": "2025-01-15T20:00:00Z", "rate": 20}, "shelter": {"type": "dome", "slew_rate": 5}}) as sim:
        dome = Dome(_addr(sim), 0)
        dome.Connect()
        assert dome.CanSetAzimuth and dome.AtPark and dome.Azimuth == 180.0
        dome.SlewToAzimuth(90.0)
        assert dome.Slewing
        wait_for(lambda: not dome.Slewing, timeout=30)  # 90 deg at 5 deg/s: 18 s simulated
        assert dome.Azimuth == pytest.approx(90.0)
        dome.Slaved = True
        tel = Telescope(_addr(sim), 0)
        tel.Connect()
        tel.Unpark()
        tel.SlewToCoordinatesAsync(84.411189 / 15, 21.142549)
        wait_for(lambda: not tel.Slewing and not dome.Slewing, timeout=20)
        assert abs(((dome.Azimuth - tel.Azimuth + 180) % 360) - 180) < 2.0


def test_discovery_answers():
    with SimObservatory(keep_clock=True, discovery_port=0) as sim:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(3)
        try:
            sock.sendto(b"alpacadiscovery1", ("127.0.0.1", sim.discovery_port))
            data, _ = sock.recvfrom(1024)
        finally:
            sock.close()
        assert json.loads(data) == {"AlpacaPort": sim.port}


def test_unique_ids_are_stable():
    with SimObservatory(keep_clock=True) as a, SimObservatory(keep_clock=True) as b:
        ids_a = requests.get(f"{a.url}/management/v1/configureddevices", timeout=30).json()["Value"]
        ids_b = requests.get(f"{b.url}/management/v1/configureddevices", timeout=30).json()["Value"]
        assert [d["UniqueID"] for d in ids_a] == [d["UniqueID"] for d in ids_b]
        assert len({d["UniqueID"] for d in ids_a}) == len(ids_a)


def test_clock_is_restored():
    before = get_clock()
    with SimObservatory({"clock": {"start": "2030-06-01T00:00:00Z", "rate": 5}}):
        assert get_clock().now().year == 2030
    assert get_clock() is before


def test_cli_parser_has_sim_serve():
    from rosace_core.cli import build_parser

    args = build_parser().parse_args(["sim", "serve", "--scenario", "demo_night", "--port", "12345", "--discovery-port", "-1"])
    assert args.port == 12345 and args.scenario == "demo_night" and args.discovery_port == -1
    assert callable(args.func)
