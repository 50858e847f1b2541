"""The shelter controller's rules, driven with in-memory devices and a 100x clock."""

from __future__ import annotations

import pytest

from rosace_core.errors import ConflictError
from rosace_dome.settings import DomeSettings
from rosace_dome.shelter import Shelter

FAST = dict(poll_period=1.0, min_poll_wall=0.01, reopen_delay=60.0, shutter_timeout=100.0, park_timeout=60.0, close_retry=30.0)


@pytest.fixture
def make_shelter(fast_clock, fakes, tmp_path):
    made = []

    def make(shelter_type="rolloff", devices=None, state_file=None, **options):
        s = Shelter(devices or fakes, DomeSettings(**{**FAST, **options}), shelter_type=shelter_type, state_file=state_file or tmp_path / "dome.json")
        made.append(s)
        return s.start()

    yield make
    for s in made:
        s.stop()


def open_roof(shelter, waiter):
    assert waiter(lambda: shelter.verdict is not None and shelter.state == "closed", 30)
    assert waiter(lambda: not shelter.open_refusals(), 30), shelter.open_refusals()
    job = shelter.open("test")
    assert job.wait(5), "open job did not finish"
    assert job.state == "succeeded", job.error
    assert shelter.state == "open" or waiter(lambda: shelter.state == "open", 30)


def calls(device, what):
    return [t for t, w in device.calls if w == what]


def test_opens_and_closes_when_the_weather_turns(make_shelter, fakes, waiter):
    s = make_shelter()
    open_roof(s, waiter)
    fakes.safety_monitor.safe = False
    assert waiter(lambda: s.state == "closed", 30)
    kinds = [(e.kind, e.message) for e in s.journal.events()]
    assert any(k == "command" and "close: unsafe: safety monitor reports unsafe" in m for k, m in kinds)
    assert any(k == "shelter" and "open -> closing" in m for k, m in kinds)
    assert s.status()["verdict"]["reasons"] == ["safety monitor reports unsafe"]


def test_unsafe_while_opening_reverses_to_closed(make_shelter, fakes, waiter):
    # A 600 s roof (6 s wall at 100x; 60 s were 0.6 s, which a loaded machine could let pass unseen)
    fakes.dome.move_time = 600.0
    s = make_shelter(shutter_timeout=1200.0)
    assert waiter(lambda: s.state == "closed" and s.verdict is not None, 30)
    job = s.open("test")
    assert waiter(lambda: s.state == "opening", 30)
    fakes.conditions.values["rain_rate"] = 1.2
    assert waiter(lambda: s.state == "closing", 30)
    assert job.wait(30) and job.state in ("aborted", "failed")
    assert waiter(lambda: s.state == "closed", 30)
    assert not s.journal.active_codes() & {"shutter_stuck"}


def test_mount_parked_before_the_roof_closes(make_shelter, fakes, waiter):
    s = make_shelter()
    open_roof(s, waiter)
    fakes.telescope.unpark()
    fakes.conditions.values["wind_speed"] = 20.0
    assert waiter(lambda: s.state == "closed", 30)
    park_cmd = calls(fakes.telescope, "park")[0]
    close_cmd = calls(fakes.dome, "close_shutter")[0]
    parked_seen = [t for t, w in fakes.telescope.calls if w == "at_park" and t > park_cmd]
    assert park_cmd < close_cmd
    assert fakes.telescope._at_park is True
    assert parked_seen and parked_seen[0] < close_cmd


def test_rolloff_stays_open_with_alarm_when_the_mount_cannot_park(make_shelter, fakes, waiter):
    s = make_shelter(park_retry=20.0)
    open_roof(s, waiter)
    fakes.telescope.unpark()
    fakes.telescope.park_fails = True
    fakes.safety_monitor.safe = False
    assert waiter(lambda: "park_failed" in s.journal.active_codes(), 30)
    # The close keeps trying the safe actions: several park attempts, never a roof move.
    assert waiter(lambda: len(calls(fakes.telescope, "park")) >= 3, 30)
    assert s._action is not None and not s._action.done and s._action.kind == "close"
    assert s.state == "open"
    assert calls(fakes.dome, "close_shutter") == []
    alarm = [a for a in s.status()["alarms"] if a["code"] == "park_failed"][0]
    assert "stays open" in alarm["message"] and alarm["active"]
    # The mount recovers (even with the sky safe again): park, then close, alarm cleared.
    fakes.safety_monitor.safe = True
    fakes.telescope.park_fails = False
    assert waiter(lambda: s.state == "closed", 30)
    assert fakes.telescope._at_park is True
    assert "park_failed" not in s.journal.active_codes()


def test_unknown_park_state_forbids_opening(make_shelter, fakes, waiter):
    fakes.telescope.disconnected = True
    s = make_shelter()
    assert waiter(lambda: s.verdict is not None and s.mount_error, 30)
    with pytest.raises(ConflictError) as err:
        s.open("test")
    assert any("mount state unknown" in r for r in err.value.reasons), err.value.reasons
    assert not s.status()["can_open"]
    fakes.telescope.disconnected = False
    assert waiter(lambda: not s.open_refusals(), 30), s.open_refusals()


def test_close_for_bad_weather_is_carried_out_when_the_next_reading_is_safe(make_shelter, fakes, waiter):
    """A restart answering "safe" right after an unsafe reading does not drop the pending close."""
    s = make_shelter(park_retry=30.0)
    open_roof(s, waiter)
    fakes.telescope.unpark()
    fakes.telescope.disconnected = True  # the mount does not answer for a while (server restarting)
    fakes.safety_monitor.safe = False
    assert waiter(lambda: "park_failed" in s.journal.active_codes(), 30)
    fakes.safety_monitor.safe = True  # the next readings are fine
    assert waiter(lambda: s.verdict.safe, 30)
    fakes.telescope.disconnected = False
    assert waiter(lambda: s.state == "closed", 30)
    assert fakes.telescope._at_park
    assert "park_failed" not in s.journal.active_codes()


def test_a_gap_in_the_readings_restarts_the_reopen_delay(make_shelter, fakes, waiter, fast_clock):
    s = make_shelter(reopen_delay=900.0, gap_tolerance=0.3)
    assert waiter(lambda: s.verdict is not None and s.verdict.safe and s.last_poll_wall is not None, 30)
    assert s.reopen_at is None
    # The loop freezes (as under SIGSTOP) for a second of wall time, 100 s of clock time.
    s.last_poll_wall -= 1.0
    assert waiter(lambda: s.reopen_at is not None, 30)
    left = (s.reopen_at - s.now()).total_seconds()
    assert 800 < left <= 900, left
    with pytest.raises(ConflictError) as err:
        s.open("test")
    assert any("re-open delay" in r and "15 min" in r for r in err.value.reasons), err.value.reasons


def test_dome_closes_its_shutter_even_when_the_mount_cannot_park(make_shelter, fakes, waiter):
    s = make_shelter(shelter_type="dome")
    open_roof(s, waiter)
    fakes.telescope.unpark()
    fakes.telescope.park_fails = True
    fakes.safety_monitor.safe = False
    assert waiter(lambda: s.state == "closed", 30)
    assert "park_failed" in s.journal.active_codes()


def test_roll_off_refuses_to_open_over_an_unparked_mount(make_shelter, fakes, waiter):
    fakes.telescope.unpark()
    s = make_shelter()
    assert waiter(lambda: s.verdict is not None and s.at_park is False, 30)
    with pytest.raises(ConflictError) as err:
        s.open("test")
    assert any("mount not parked" in r for r in err.value.reasons)


def test_last_lease_expiry_parks_and_closes(make_shelter, fakes, waiter):
    s = make_shelter()
    open_roof(s, waiter)
    fakes.telescope.unpark()
    lease = s.acquire_lease("sequencer", 60)
    assert waiter(lambda: s.state == "closed", 30)
    assert fakes.telescope._at_park
    msgs = [e.message for e in s.journal.events()]
    assert any("lease of sequencer expired" in m for m in msgs)
    assert any("last lease expired" in m for m in msgs)
    assert s.leases.active() == [] and lease.holder == "sequencer"


def test_renewed_lease_keeps_the_roof_open(make_shelter, fakes, waiter):
    s = make_shelter()
    open_roof(s, waiter)
    lease = s.acquire_lease("sequencer", 50)
    for _ in range(6):  # 6 x 0.2 s wall = 120 s of clock time, well past the first expiry
        waiter(lambda: False, 0.2)
        s.renew_lease(lease.id, 50)
    assert s.state == "open"
    fakes.telescope.unpark()
    s.release_lease(lease.id)
    assert waiter(lambda: s.state == "closed", 30)
    assert fakes.telescope._at_park
    assert any("last lease released (sequencer is done)" in e.message for e in s.journal.events(kind="command"))


def test_reopen_delay_is_honoured(make_shelter, fakes, waiter, fast_clock):
    s = make_shelter(reopen_delay=150.0)
    assert waiter(lambda: s.verdict is not None, 30)
    fakes.conditions.values["cloud_cover"] = 95.0
    assert waiter(lambda: s.verdict is not None and not s.verdict.safe, 30)
    fakes.conditions.values["cloud_cover"] = 5.0
    assert waiter(lambda: s.verdict.safe, 30)
    with pytest.raises(ConflictError) as err:
        s.open("test")
    assert any("re-open delay" in r for r in err.value.reasons)
    assert s.status()["reopen_at"] is not None
    assert waiter(lambda: s.reopen_at is None, 30)
    job = s.open("test")
    assert job.wait(5) and job.state == "succeeded"


def test_stuck_shutter_raises_an_alarm(make_shelter, fakes, waiter):
    s = make_shelter(shutter_timeout=50.0)
    assert waiter(lambda: s.verdict is not None and s.state == "closed", 30)
    fakes.dome.stuck = True
    job = s.open("test")
    assert job.wait(5)
    assert job.state == "failed" and "not done after 50 s" in job.error
    assert "shutter_stuck" in s.journal.active_codes()
    assert waiter(lambda: s.state == "error", 30)


def test_disconnected_weather_station_is_unsafe_with_a_clear_status(make_shelter, fakes, waiter):
    s = make_shelter()
    open_roof(s, waiter)
    fakes.conditions.disconnected = True
    assert waiter(lambda: s.state == "closed", 30)
    st = s.status()
    assert not st["safe"]
    assert any("unreadable" in r and "not connected" in r for r in st["verdict"]["reasons"])
    assert "device:conditions" in {a["code"] for a in st["alarms"] if a["active"]}
    fakes.conditions.disconnected = False
    assert waiter(lambda: s.verdict.safe, 30)
    assert "device:conditions" not in s.journal.active_codes()


def test_maintenance_lock_blocks_open_and_automatic_moves(make_shelter, fakes, waiter):
    s = make_shelter()
    open_roof(s, waiter)
    s.set_maintenance(True, "mirror cleaning")
    with pytest.raises(ConflictError) as err:
        s.open("test")
    assert any("mirror cleaning" in r for r in err.value.reasons)
    fakes.safety_monitor.safe = False
    assert waiter(lambda: "locked_unsafe" in s.journal.active_codes(), 30)
    assert s.state == "open" and calls(fakes.dome, "close_shutter") == []
    s.set_maintenance(False)
    assert waiter(lambda: s.state == "closed", 30)


@pytest.mark.parametrize("weather_safe, expect", [(False, "closed"), (True, "open")])
def test_restart_with_the_roof_open_reconciles(make_shelter, fakes, waiter, tmp_path, weather_safe, expect):
    state = tmp_path / "restart.json"
    first = make_shelter(state_file=state)
    open_roof(first, waiter)
    first.stop()
    fakes.safety_monitor.safe = weather_safe
    second = make_shelter(state_file=state)
    assert waiter(lambda: second.state == expect, 30)
    waiter(lambda: False, 0.3)
    assert second.state == expect
    msgs = [e.message for e in second.journal.events(kind="reconcile")]
    # The first instance's events were persisted and reloaded: the second adds its own.
    assert "found closed" in msgs[0] and "last saved state: none" in msgs[0]
    assert any("found open" in m and "last saved state: open" in m for m in msgs[1:])
    assert any("no lease" in m for m in msgs)


def test_restart_after_the_lease_ran_out_closes(make_shelter, fakes, waiter, tmp_path):
    state = tmp_path / "lease.json"
    first = make_shelter(state_file=state)
    open_roof(first, waiter)
    first.acquire_lease("sequencer", 1000)
    first.stop()
    assert "sequencer" in state.read_text()
    second = make_shelter(state_file=state, poll_period=5.0)
    assert second.leases.active(), "lease restored from the state file"
    lease = second.leases.active()[0]
    second.leases.renew(lease.id, 30, second.now())  # now it runs out soon
    assert waiter(lambda: second.state == "closed", 30)
    assert any("last lease expired" in e.message for e in second.journal.events())


def test_safety_loop_survives_a_bug_in_a_device(make_shelter, fakes, waiter, monkeypatch):
    class Broken(Exception):
        pass

    def explode(self):
        raise Broken("driver bug")

    s = make_shelter()
    assert waiter(lambda: s.polls > 2, 30)
    monkeypatch.setattr(type(fakes.safety_monitor), "is_safe", property(explode))
    n = s.polls
    assert waiter(lambda: s.polls > n + 3, 30)
    assert any("driver bug" in r for r in s.status()["verdict"]["reasons"])


def test_rotating_dome_follows_the_mount(make_shelter, fakes, waiter):
    tel = fakes.telescope
    # Zenith at the default site (43.75 N): H = LST - RA = 0, Dec = latitude; tube east of the pier.
    tel.ra, tel.dec, tel.sidereal_time, tel.side_of_pier = 90.0, 43.75, 6.0, 0
    s = make_shelter(shelter_type="dome", slaving={"radius": 2.0, "gem_offset": 0.5, "interval": 5.0, "tolerance": 3.0})
    open_roof(s, waiter)
    tel.unpark()
    assert waiter(lambda: fakes.dome.slews, 30)
    assert fakes.dome.slews[0] == pytest.approx(90.0)
    # Within tolerance: no further move.
    n = len(fakes.dome.slews)
    waiter(lambda: False, 0.3)
    assert len(fakes.dome.slews) == n
    assert s.status()["mount"]["slaving"]["active"] is True
    # Tube west of the pier: the slit goes to the west.
    tel.side_of_pier = 1
    assert waiter(lambda: fakes.dome.slews[-1] == pytest.approx(270.0), 30)


def test_alarm_hook_runs_the_configured_command(make_shelter, fakes, waiter, tmp_path):
    import json
    import sys

    out = tmp_path / "alarm.json"
    script = f"import os, pathlib; pathlib.Path({str(out)!r}).write_text(os.environ['ROSACE_ALARM_JSON'])"
    s = make_shelter(alarm_command=[sys.executable, "-c", script])
    assert waiter(lambda: s.verdict is not None, 30)
    fakes.safety_monitor.disconnected = True
    assert waiter(lambda: out.exists() and out.read_text(), 10)
    alarm = json.loads(out.read_text())
    assert alarm["code"] == "device:safety_monitor" and "not connected" in alarm["message"] and alarm["active"]


def test_python_m_rosace_dome_puts_global_options_first():
    import importlib.util

    spec = importlib.util.find_spec("rosace_dome.__main__")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module._argv(["--config", "x.toml", "--port", "9"]) == ["--config", "x.toml", "dome", "serve", "--port", "9"]
    assert module._argv(["--log-level=DEBUG"]) == ["--log-level=DEBUG", "dome", "serve"]


def test_safety_monitor_that_lost_its_connection_is_reconnected(make_shelter, fakes, waiter):
    s = make_shelter()
    assert waiter(lambda: s.verdict is not None and s.verdict.safe, 30)
    # The device restarted behind our back: it answers, but IsSafe is false until connected.
    fakes.safety_monitor.is_connected = False
    assert waiter(lambda: not s.verdict.safe and any("not connected" in r for r in s.verdict.reason_texts), 30)
    assert waiter(lambda: s.verdict.safe, 10), s.verdict.reason_texts
    assert fakes.safety_monitor.is_connected


def test_a_dead_weather_station_costs_one_call_per_pass(fast_clock, fakes, tmp_path):
    s = Shelter(fakes, DomeSettings(**FAST), state_file=tmp_path / "d.json")
    fakes.conditions.disconnected = True
    fakes.conditions.calls.clear()
    verdict = s.poll_once()
    assert len([w for _, w in fakes.conditions.calls if w.startswith("reading")]) == 1
    assert sum("weather station" in r or "not connected" in r for r in verdict.reason_texts) == 4
