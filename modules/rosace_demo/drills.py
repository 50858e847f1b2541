"""Fault drills for a demo night: each injects one fault at the right moment.

A drill has a trigger (a predicate on the night and its latest snapshot) and an
action (what goes wrong). The drill tests run a short night with one drill and
check that the observatory handled it (tests/rosace_demo/test_drills.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from rosace_core.http import RestClient


@dataclass
class Drill:
    """One fault: ``action(night)`` runs once, the first time ``trigger(night, snap)`` is true."""

    name: str
    trigger: Callable[[Any, dict], bool]
    action: Callable[[Any], Any]
    done: bool = False
    fired_at: str | None = None
    note: str = ""
    data: dict = field(default_factory=dict)


def sim_control(night) -> RestClient:
    """A client of the simulator's /sim/v1 control API."""
    return RestClient(night.url("sim"), token=night.token, timeout=10)


def exposing_science(night, snap: dict) -> bool:
    """True while the sequencer is in a science exposure."""
    seq = snap.get("sequencer") or {}
    obs = seq.get("observation") or {}
    message = str(obs.get("message") or seq.get("message") or "")
    return obs.get("step") == "science" and message.startswith("science") and "LIGHT" in message


def roof_open(night, snap: dict) -> bool:
    return ((snap.get("dome") or {}).get("shelter") or {}).get("state") == "open"


def weather_unsafe_during_exposure(clear_after: float = 1800.0) -> Drill:
    """Clouds and rain arrive during a science exposure, clear again ``clear_after`` s later."""

    def action(night):
        sim = sim_control(night)
        sim.put(f"{night.url('sim')}/sim/v1/weather", {"cloud_cover": 100, "rain_rate": 3.0, "humidity": 97})
        drill.data["unsafe_at"] = night.now()
        obs = (night.snapshots[-1].get("sequencer") or {}).get("observation") or {}
        drill.data["file_id"] = obs.get("file_id")
        drill.data["observation_id"] = obs.get("observation_id")

        def clear_later():
            night.clock.sleep(clear_after)
            sim.put(f"{night.url('sim')}/sim/v1/weather", {"cloud_cover": 0, "rain_rate": 0.0, "humidity": 60})

        import threading

        threading.Thread(target=clear_later, daemon=True).start()
        return f"rain during {obs.get('file_id')} ({obs.get('observation_id')})"

    drill = Drill("weather unsafe during an exposure", exposing_science, action)
    return drill


def camera_disconnect(duration: float = 600.0) -> Drill:
    """The spectrograph camera drops off during a science exposure."""

    def action(night):
        obs = (night.snapshots[-1].get("sequencer") or {}).get("observation") or {}
        drill.data["observation_id"] = obs.get("observation_id")
        sim_control(night).post(f"{night.url('sim')}/sim/v1/faults", {"device": "camera", "device_number": 0, "kind": "disconnect", "duration": duration})
        return f"camera 0 disconnected for {duration:.0f} s during {obs.get('observation_id')}"

    drill = Drill("camera disconnect", exposing_science, action)
    return drill


def kill_process(name: str, *, restart_after: float = 0.0, trigger=exposing_science) -> Drill:
    """Kill a module process (no clean shutdown); the demo restarts it after ``restart_after`` wall s."""

    def action(night):
        obs = (night.snapshots[-1].get("sequencer") or {}).get("observation") or {}
        drill.data["observation_id"] = obs.get("observation_id")
        night.hold_restart(name, restart_after)
        night.procs.kill(name)
        drill.data["killed_at"] = night.now()
        return f"{name} killed during {obs.get('observation_id') or 'the night'}; restarted after {restart_after:.0f} s (wall)"

    drill = Drill(f"{name} process killed", trigger, action)
    return drill


def malformed_file() -> Drill:
    """A broken Observing File is dropped into the scheduler's queue folder during the night."""

    def action(night):
        path = night.folder / "queue" / "broken_dropped.yaml"
        path.write_text("rosace: 1\nid: broken-dropped\nobserver: {name: X}\ntarget:\n  name: nowhere\n  ra: 400\n", encoding="utf-8")
        drill.data["path"] = path
        return f"dropped {path.name}"

    drill = Drill("malformed Observing File dropped into the queue", roof_open, action)
    return drill


def scheduler_unreachable(outage_wall: float = 20.0) -> Drill:
    """The scheduler process dies and stays down for ``outage_wall`` wall seconds."""
    drill = kill_process("scheduler", restart_after=outage_wall, trigger=roof_open)
    drill.name = "scheduler unreachable"
    return drill


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float = 0.2) -> bool:
    """Poll ``predicate`` until true or ``timeout`` wall seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False
