"""The guardian: parks and closes when the dome module is silent or hung, never opens, honours the lock.

In-memory devices (conftest fakes) on a 100x clock; the dome module it watches is
the real REST app over HTTP (or nothing listening: a dead module).
"""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

from rosace_core.rest import BackgroundServer
from rosace_demo.processes import guardian_args
from rosace_dome.api import create_app
from rosace_dome.drills import free_port
from rosace_dome.guardian import Guardian
from rosace_dome.settings import DomeSettings
from rosace_dome.shelter import Shelter

FAST = dict(poll_period=1.0, min_poll_wall=0.01, reopen_delay=60.0, shutter_timeout=100.0, park_timeout=60.0, close_retry=30.0,
            guardian={"period": 0.05, "silence": 2.0, "heartbeat_timeout": 1.0, "unsafe_grace": 30.0})


def settings(**over) -> DomeSettings:
    return DomeSettings(**{**FAST, **over})


def calls(device, what):
    return [t for t, w in device.calls if w == what]


def open_and_track(fakes):
    fakes.dome._state = fakes.dome._state.__class__("open")
    fakes.telescope.unpark()


def passes_until(guardian, predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = guardian.check_once()
        if predicate(p):
            return p
        time.sleep(0.05)
    return None


def test_silent_dome_module_parks_then_closes(fast_clock, fakes, tmp_path):
    open_and_track(fakes)
    g = Guardian(fakes, settings(), dome_url=f"http://127.0.0.1:{free_port()}", status_file=tmp_path / "guardian.json")
    first = g.check_once()
    assert first.acted is None, "the dome module gets `silence` seconds to come up"
    p = passes_until(g, lambda p: p.acted is not None)
    assert p is not None and "silent" in p.acted
    assert p.result == "closed and parked" and p.shelter == "closed"
    park, close = calls(fakes.telescope, "park"), calls(fakes.dome, "close_shutter")
    parked_seen = [t for t, w in fakes.telescope.calls if w == "at_park" and t > park[0]]
    assert park[0] < parked_seen[0] < close[0], "park, confirm the park, then close"
    assert calls(fakes.dome, "open_shutter") == [] and calls(fakes.telescope, "unpark") == []


def test_a_park_that_cannot_be_confirmed_raises_an_alarm_and_is_retried(fast_clock, fakes, tmp_path):
    open_and_track(fakes)
    fakes.telescope.park_fails = True
    g = Guardian(fakes, settings(), dome_url=f"http://127.0.0.1:{free_port()}")
    p = passes_until(g, lambda p: p.acted is not None)
    assert "park not confirmed" in p.result and "guardian_park_failed" in p.alarms
    assert passes_until(g, lambda p: len(calls(fakes.telescope, "park")) >= 3), "tries the safe actions again at every pass"
    assert calls(fakes.dome, "close_shutter") == [] and fakes.dome._state.value == "open"
    fakes.telescope.park_fails = False
    p = passes_until(g, lambda p: p.shelter == "closed")
    assert p is not None and fakes.telescope._at_park
    assert "guardian_park_failed" not in g.check_once().alarms


def test_a_dome_closes_its_shutter_even_when_the_mount_cannot_park(fast_clock, fakes):
    open_and_track(fakes)
    fakes.telescope.park_fails = True
    g = Guardian(fakes, settings(), dome_url=None, shelter_type="dome")
    p = passes_until(g, lambda p: p.acted is not None)
    assert p.shelter == "closed" and "guardian_park_failed" in p.alarms


@pytest.fixture
def dome_server(fast_clock, fakes, tmp_path):
    shelter = Shelter(fakes, settings(), state_file=tmp_path / "dome.json")
    app = create_app(None, shelter=shelter, start=True)
    with BackgroundServer(app) as server:
        yield server, shelter
    shelter.stop()


def test_a_live_dome_module_is_left_in_charge(dome_server, fakes):
    server, _ = dome_server
    open_and_track(fakes)
    g = Guardian(fakes, settings(), dome_url=server.url)
    for _ in range(12):
        p = g.check_once()
        assert p.dome_alive and p.acted is None
        time.sleep(0.05)
    assert calls(fakes.dome, "close_shutter") == []


def test_a_hung_safety_loop_behind_a_live_rest_api_counts_as_silent(dome_server, fakes):
    server, shelter = dome_server
    open_and_track(fakes)
    g = Guardian(fakes, settings(), dome_url=server.url)
    assert g.check_once().dome_alive
    shelter.stop()  # the REST API still answers, the poll counter stops moving
    p = passes_until(g, lambda p: p.acted is not None)
    assert p is not None and "silent" in p.acted and p.shelter == "closed"


def test_the_maintenance_lock_seen_last_is_honoured(dome_server, fakes):
    server, shelter = dome_server
    open_and_track(fakes)
    shelter.set_maintenance(True, "mirror cleaning")
    g = Guardian(fakes, settings(), dome_url=server.url)
    assert g.check_once().dome_alive
    shelter.stop()
    p = passes_until(g, lambda p: "guardian_locked" in p.alarms)
    assert p is not None and p.acted is None
    assert calls(fakes.dome, "close_shutter") == [] and calls(fakes.telescope, "park") == []


def test_unsafe_sky_with_a_dome_module_that_does_not_close(fast_clock, fakes, monkeypatch):
    """The dome module alive but not closing (a bug): after ``unsafe_grace`` clock seconds the guardian acts."""
    open_and_track(fakes)
    g = Guardian(fakes, settings(guardian={**FAST["guardian"], "unsafe_grace": 20.0}), dome_url=None)
    monkeypatch.setattr(g, "heartbeat", lambda: True)  # alive as far as the guardian can tell
    fakes.safety_monitor.safe = False
    first = g.check_once()
    assert first.acted is None and first.weather_safe is False
    p = passes_until(g, lambda p: p.acted is not None)
    assert p is not None and "unsafe for" in p.acted and p.shelter == "closed"
    assert p.time >= first.time.replace() and (p.time - first.time).total_seconds() >= 20.0


def test_the_newest_guardian_takes_over(fast_clock, fakes, tmp_path):
    status = tmp_path / "guardian.json"
    old = Guardian(fakes, settings(), dome_url=None, status_file=status)
    old._started_wall = time.time() - 10
    assert old._write_status()
    new = Guardian(fakes, settings(), dome_url=None, status_file=status)
    assert new._write_status()
    assert not old._write_status(), "the older guardian must leave"
    assert json.loads(status.read_text())["identity"] == new.identity


def test_demo_process_group_runs_the_guardian_beside_the_dome_module():
    assert guardian_args(["--config", "c.toml", "dome", "serve", "--port", "9"]) == ["--config", "c.toml", "dome", "guardian", "--port", "9"]
    assert guardian_args(["--config", "c.toml", "scheduler", "serve"]) is None


def test_cli_has_the_guardian_and_a_way_to_serve_without_it():
    from rosace_core.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["dome", "guardian", "--port", "8701", "--once"])
    assert args.once and args.port == 8701
    args = parser.parse_args(["dome", "serve", "--no-guardian"])
    assert args.no_guardian


@pytest.mark.slow
def test_dome_serve_starts_a_guardian_that_outlives_it(tmp_path):
    """`rosace dome serve` starts the guardian as its own process; killing the module leaves it running."""
    import subprocess

    import tomli_w

    data = tmp_path / "data"
    cfg = {"devices": {n: {"url": f"http://127.0.0.1:{free_port()}", "device_number": 0} for n in ("dome", "telescope", "safety_monitor", "observing_conditions")},
           "data": {"root": str(data)}, "dome": {"guardian": {"silence": 1.0, "period": 0.2, "orphan_exit": 60.0}}}
    path = tmp_path / "rosace.toml"
    path.write_text(tomli_w.dumps(cfg), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "ROSACE_GUARDIAN"}
    proc = subprocess.Popen([sys.executable, "-m", "rosace_core.cli", "--config", str(path), "dome", "serve", "--port", str(free_port())],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    status = data / "state" / "guardian.json"
    pid = None
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not status.exists():
            time.sleep(0.2)
        assert status.exists(), "no guardian started"
        pid = json.loads(status.read_text())["pid"]
        assert pid != proc.pid
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 30
        after = {}
        while time.monotonic() < deadline:
            after = json.loads(status.read_text())
            if (after.get("last") or {}).get("dome_alive") is False:
                break
            time.sleep(0.2)
        assert after["pid"] == pid, "the same guardian keeps watching after the module died"
        assert after["last"]["dome_alive"] is False, after
    finally:
        if proc.poll() is None:
            proc.kill()
        if pid is not None:
            try:
                os.kill(pid, __import__("signal").SIGTERM)
            except OSError:
                pass
