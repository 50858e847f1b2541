"""Safety drills: the safety authority killed, frozen or cut off with the roof open, on a real Alpaca server.

Each drill runs the dome module and its guardian as separate processes
(``rosace dome serve`` / ``rosace dome guardian``) against an Alpaca server,
opens the roof, unparks the mount (as the sequencer would), injects one fault
and measures the time until the roof is closed and the mount parked, read
straight from the Alpaca devices. Used by tests/rosace_dome/test_safety_drills.py
and benchmarks/bench_safety_drills.py.

Two Alpaca servers:

- ``rosace_sim``: ROSACE's simulated observatory, in this process, on a fast
  clock (``RATE`` simulated seconds per wall second; real roof and mount
  motion times);
- ``alpaca-simulators`` (PyPI, by P. Pedersen and D. Degen): a separate FastAPI
  process; moves are instant, no faults, so the mount fault variant of the
  unreadable-mount drill runs on rosace_sim only. Our processes run on a
  simulated clock at rate 1 starting at night (its devices do not care about
  time; the dome module's sun rule does).

Freezing a process (SIGSTOP) exists on POSIX only: that drill refuses to run elsewhere.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from rosace_core.alpaca import Dome, ShutterState, Telescope
from rosace_core.clock import Clock, get_clock, set_clock
from rosace_core.errors import ConflictError, DeviceError, RosaceError
from rosace_dome.client import DomeClient

if TYPE_CHECKING:
    from rosace_sim.testing import SimControl, SimObservatory

NIGHT = "2026-01-15T22:00:00+00:00"
TOKEN = "safety-drill"
RATE = 20.0

#: The dome module's options in every drill (clock seconds unless said otherwise).
DOME_OPTIONS: dict[str, Any] = {
    "poll_period": 1.0,
    "min_poll_wall": 0.1,
    "reopen_delay": 900.0,
    "park_timeout": 120.0,
    "shutter_timeout": 120.0,
    "close_retry": 30.0,
    "park_retry": 10.0,
    "gap_tolerance": 3.0,
    "guardian": {"period": 0.5, "silence": 3.0, "heartbeat_timeout": 1.0, "unsafe_grace": 60.0, "orphan_exit": 600.0},
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, step: float = 0.05) -> Any:
    """Poll ``predicate`` until truthy (return it) or ``timeout`` wall seconds (return the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (RosaceError, requests.RequestException):
            value = None
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


# --------------------------------------------------------------------------- Alpaca servers


class _AlpacaServer:
    """What the drills need of an Alpaca server: start (roof open or closed), stop, restart, rain."""

    name = ""
    port = 0
    _saved_clock: Clock | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, open_roof: bool = False):  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def restart(self, open_roof: bool = True) -> None:
        """The server goes away and comes back on the same port, the roof and mount as they were (open, unparked)."""
        self.stop()
        self.start(open_roof)

    def close(self) -> None:
        """Stop for good and give the process its clock back."""
        self.stop()
        if self._saved_clock is not None:
            set_clock(self._saved_clock)
            self._saved_clock = None


class RosaceSim(_AlpacaServer):
    """ROSACE's simulator, in-process, on a fast clock."""

    name = "rosace_sim"
    rate = RATE
    faults = True

    def __init__(self):
        self.sim: SimObservatory | None = None
        self.port = 0
        self._saved_clock = None

    @staticmethod
    def available() -> str | None:
        return None if importlib.util.find_spec("rosace_sim") else "rosace_sim is not installed"

    def _scenario(self, open_roof: bool) -> dict:
        return {
            "name": "safety-drill",
            "clock": {"start": NIGHT, "rate": RATE},
            "shelter": {"type": "rolloff", "shutter_time": 20, "stall_error_after": 120, "start_open": open_roof},
            "telescope": {"start_parked": not open_roof},
            "weather": {"update_interval": 10, "timeline": [{"at": "+0s", "cloud_cover": 0, "rain_rate": 0, "wind_speed": 3, "humidity": 55}]},
        }

    def start(self, open_roof: bool = False) -> RosaceSim:
        from rosace_sim.testing import SimObservatory

        if self._saved_clock is None:
            self._saved_clock = get_clock()
            set_clock(Clock.simulated(NIGHT, RATE))
        self.sim = SimObservatory(self._scenario(open_roof), port=self.port, keep_clock=True).start()
        self.port = self.sim.port
        return self


    def stop(self) -> None:
        if self.sim is not None:
            self.sim.stop()
            self.sim = None


    def _control(self) -> SimControl:
        if self.sim is None or self.sim.control is None:
            raise RuntimeError("the simulator is not started")
        return self.sim.control

    def rain(self) -> None:
        self._control().set_weather(rain_rate=3.0, cloud_cover=100, humidity=97)

    def clear(self) -> None:
        """Fair weather, no faults."""
        self._control().clear_faults()
        self._control().clear_weather()

    def mount_fault(self, duration: float) -> None:
        """The mount answers every call with a driver error for ``duration`` clock seconds."""
        self._control().inject_fault("telescope", "error", device_number=0, duration=duration)


class AlpacaSimulators(_AlpacaServer):
    """The ``alpaca-simulators`` package from PyPI, run as its own process on loopback."""

    name = "alpaca-simulators"
    rate = 1.0
    faults = False

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self._saved_clock = None

    @staticmethod
    def available() -> str | None:
        if importlib.util.find_spec("alpaca_simulators") is None:
            return "alpaca-simulators is not installed (pip install alpaca-simulators)"
        return None

    def _config(self, open_roof: bool) -> Path:
        import yaml

        # The second Alpaca server of the drills is a dev-extra peer, never a product dependency:
        # found by name at run time (available() says when it is missing).
        peer = importlib.import_module("alpaca_simulators")
        if peer.__file__ is None:
            raise RuntimeError("alpaca-simulators is installed without its files")
        template = Path(peer.__file__).parent / "config" / "template.yaml"
        data = yaml.safe_load(template.read_text(encoding="utf-8"))
        devices = data["devices"]
        # The devices the drills use (the camera would need star catalogues).
        data["devices"] = {k: devices[k] for k in ("telescope", "dome", "safetymonitor", "observingconditions")}
        data["devices"]["dome"][0]["shutterstatus"] = 0 if open_roof else 1
        data["devices"]["telescope"][0]["atpark"] = not open_roof
        path = self.folder / f"alpaca-simulators-{'open' if open_roof else 'closed'}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path

    def start(self, open_roof: bool = False) -> AlpacaSimulators:
        if self._saved_clock is None:
            self._saved_clock = get_clock()
            set_clock(Clock.simulated(NIGHT, 1.0))
        self.port = self.port or free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        out = open(self.folder / "alpaca-simulators.log", "ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "alpaca_simulators.run_simulator", "--host", "127.0.0.1", "--port", str(self.port),
                 "--config", str(self._config(open_roof))],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(self.folder),
            )
        finally:
            out.close()
        ok = wait_until(lambda: requests.get(f"{self.url}/api/v1/dome/0/shutterstatus", timeout=1).status_code == 200, 60, 0.2)
        if not ok:
            raise RuntimeError(f"alpaca-simulators did not start on port {self.port}: see {self.folder / 'alpaca-simulators.log'}")
        return self


    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


    def _put(self, path: str, **form) -> None:
        requests.put(f"{self.url}/api/v1/{path}", data={**form, "ClientTransactionID": 1}, timeout=5).raise_for_status()

    def rain(self) -> None:
        self._put("safetymonitor/0/issafe", IsSafe="false")
        self._put("observingconditions/0/rainrate", RainRate=3.0)

    def clear(self) -> None:
        """Fair weather."""
        self._put("safetymonitor/0/issafe", IsSafe="true")
        self._put("observingconditions/0/rainrate", RainRate=0.0)

    def mount_fault(self, duration: float) -> None:  # pragma: no cover - not offered by this server
        raise NotImplementedError("alpaca-simulators injects no faults")


def backend(name: str, folder: Path):
    """A backend by name (``rosace_sim`` or ``alpaca-simulators``)."""
    if name == RosaceSim.name:
        return RosaceSim()
    if name == AlpacaSimulators.name:
        return AlpacaSimulators(folder)
    raise ValueError(f"unknown Alpaca server {name!r}")


# --------------------------------------------------------------------------- the dome module and its guardian


class Stack:
    """The dome module and its guardian as processes, configured for ``server``."""

    def __init__(self, server, folder: Path, *, telescope_number: int = 0, guardian: bool = True, **dome_options):
        import tomli_w

        self.server = server
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.guardian_wanted = guardian
        devices = {name: {"url": server.url, "device_number": 0} for name in ("dome", "telescope", "safety_monitor", "observing_conditions")}
        devices["telescope"]["device_number"] = telescope_number
        options = {**DOME_OPTIONS, **dome_options}
        options["guardian"] = {**DOME_OPTIONS["guardian"], **dome_options.get("guardian", {})}
        config = {"devices": {**devices, "shelter": "rolloff"}, "data": {"root": str(self.folder / "data")}, "dome": options,
                  "server": {"token": TOKEN}}
        self.config_path = self.folder / "rosace.toml"
        self.config_path.write_text(tomli_w.dumps(config), encoding="utf-8")
        self.client = DomeClient(f"http://127.0.0.1:{self.port}", token=TOKEN, timeout=2.0)
        self.dome_proc: subprocess.Popen | None = None
        self.guardian_proc: subprocess.Popen | None = None
        self.frozen = False

    def _spawn(self, action: str) -> subprocess.Popen:
        env = {**os.environ, "ROSACE_GUARDIAN": "external", "PYTHONUNBUFFERED": "1"}
        out = open(self.folder / f"{action}.log", "ab")
        try:
            return subprocess.Popen([sys.executable, "-m", "rosace_core.cli", "--config", str(self.config_path), "dome", action, "--port", str(self.port)],
                                    env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(self.folder))
        finally:
            out.close()

    def start(self) -> Stack:
        self.dome_proc = self._spawn("serve")
        if self.guardian_wanted:
            self.guardian_proc = self._spawn("guardian")
        ok = wait_until(lambda: (self.client.status().get("poll") or {}).get("count", 0) >= 2, 90, 0.2)
        if not ok:
            raise RuntimeError(f"dome module did not come up: see {self.folder / 'serve.log'}")
        return self

    def status(self) -> dict:
        return self.client.status()

    def open_and_track(self, mount: Telescope, dome: Dome | None = None) -> None:
        """Open the roof (no lease), then unpark the mount directly.

        Through the dome module when it lets the roof open; else (``dome`` given: a
        re-open delay left by an earlier drill of the same run) straight over Alpaca,
        as an operator at the controller would.
        """
        if dome is not None and not wait_until(lambda: self.status()["can_open"], 2, 0.1):
            dome.open_shutter()
        else:
            if not wait_until(lambda: self.status()["can_open"], 60, 0.1):
                raise RuntimeError(f"the dome module refuses to open: {self.status()['verdict']['reasons']}")
            self.client.open(source="drill")
        if not wait_until(lambda: self.status()["shelter"]["state"] == "open", 60, 0.1):
            raise RuntimeError(f"the roof did not open: {self.status()['shelter']}")
        mount.unpark()
        if not wait_until(lambda: mount.at_park is False and self.status()["mount"]["at_park"] is False, 30, 0.1):
            raise RuntimeError("the mount did not unpark")

    def _dome(self) -> subprocess.Popen:
        if self.dome_proc is None:
            raise RuntimeError("the dome module is not started")
        return self.dome_proc

    def kill_dome(self) -> None:
        self._dome().kill()
        self._dome().wait(10)

    def freeze_dome(self) -> None:
        stop = getattr(signal, "SIGSTOP", None)
        if stop is None:
            raise RuntimeError("freezing a process (SIGSTOP) is not available on this platform")
        os.kill(self._dome().pid, stop)
        self.frozen = True

    def thaw_dome(self) -> None:
        if self.frozen:
            os.kill(self._dome().pid, signal.SIGCONT)
            self.frozen = False

    def stop(self) -> None:
        self.client.session.close()
        self.thaw_dome()
        for proc in (self.guardian_proc, self.dome_proc):
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in (self.guardian_proc, self.dome_proc):
            if proc is None:
                continue
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


# --------------------------------------------------------------------------- the drills


@dataclass
class Result:
    """One drill: wall and clock seconds from the fault to roof closed and mount parked."""

    drill: str
    server: str
    wall: float | None
    clock: float | None
    detail: dict = field(default_factory=dict)

    @property
    def secured(self) -> bool:
        return self.wall is not None

    def to_dict(self) -> dict:
        return {"drill": self.drill, "server": self.server, "wall": self.wall, "clock": self.clock, **self.detail}


def _devices(server, reset: bool = True) -> tuple[Dome, Telescope]:
    """The roof and the mount, straight over Alpaca; ``reset``: fair weather, roof closed, mount parked."""
    dome, mount = Dome(server.url, 0, retries=1), Telescope(server.url, 0, retries=1)
    dome.connect(timeout=5)
    mount.connect(timeout=5)
    if reset:
        server.clear()
        if dome.shutter != ShutterState.CLOSED:
            dome.close_shutter()
        if not mount.at_park:
            mount.park()
        if not wait_until(lambda: _secured(dome, mount), 30):
            raise RuntimeError("could not close the roof and park the mount before the drill")
    return dome, mount


def _secured(dome: Dome, mount: Telescope) -> bool:
    try:
        return dome.shutter == ShutterState.CLOSED and mount.at_park
    except DeviceError:
        try:  # a restarted server forgets connections
            dome.connect(timeout=2)
            mount.connect(timeout=2)
        except DeviceError:
            pass
        return False


def _time_to_secure(dome: Dome, mount: Telescope, timeout: float) -> tuple[float | None, float | None]:
    clock = get_clock()
    t0, c0 = time.monotonic(), clock.now()
    if wait_until(lambda: _secured(dome, mount), timeout, 0.05):
        return round(time.monotonic() - t0, 2), round((clock.now() - c0).total_seconds(), 1)
    return None, None


def drill_kill(server, folder: Path, timeout: float = 60.0, guardian: bool = True, stack: Stack | None = None) -> Result:
    """kill -9 of the dome module with the roof open and the mount tracking, then rain.

    ``guardian=False``: the reference, as before the guardian existed (nothing closes).
    """
    dome, mount = _devices(server)
    own = stack is None
    stack = stack or Stack(server, folder, guardian=guardian).start()
    try:
        stack.open_and_track(mount, None if own else dome)
        stack.kill_dome()
        server.rain()
        wall, clock = _time_to_secure(dome, mount, timeout)
        return Result("kill -9" if guardian else "kill -9, no guardian", server.name, wall, clock,
                      {"closed_by": "guardian" if guardian else None, "timeout_wall": timeout})
    finally:
        if own:
            stack.stop()


def drill_freeze(server, folder: Path, timeout: float = 60.0, stack: Stack | None = None) -> Result:
    """SIGSTOP of the dome module with the roof open, then rain; then SIGCONT: the module must not re-open early."""
    dome, mount = _devices(server)
    own = stack is None
    stack = stack or Stack(server, folder).start()
    try:
        stack.open_and_track(mount, None if own else dome)
        stack.freeze_dome()
        server.rain()
        wall, clock = _time_to_secure(dome, mount, timeout)
        stack.thaw_dome()
        status = wait_until(lambda: stack.status() if stack.status()["shelter"]["state"] == "closed" else None, 30, 0.1) or {}
        detail = {"closed_by": "guardian", "after_thaw_state": (status.get("shelter") or {}).get("state"),
                  "after_thaw_can_open": status.get("can_open"), "after_thaw_reopen_at": status.get("reopen_at")}
        return Result("SIGSTOP", server.name, wall, clock, detail)
    finally:
        if own:
            stack.stop()


def drill_unreadable_mount(server, folder: Path, timeout: float = 60.0) -> Result:
    """The dome module configured with a wrong mount device number: the roof must not open.

    Then rain: the roof stays closed over the parked mount. The bound is zero: it never opened.
    """
    dome, mount = _devices(server)
    own = True
    stack = Stack(server, folder, telescope_number=9, guardian=False).start()
    try:
        status = wait_until(lambda: (st := stack.status())["mount"]["error"] and st, 30, 0.1)
        refused: list[str] = []
        try:
            stack.client.open(source="drill")
        except ConflictError as exc:
            refused = list(exc.reasons)
        server.rain()
        wait_until(lambda: not stack.status()["safe"], 30, 0.1)
        secured = _secured(dome, mount)
        return Result("unreadable mount (wrong device number)", server.name, 0.0 if secured and refused else None, 0.0 if secured and refused else None,
                      {"refused": refused, "mount_error": (status or {}).get("mount", {}).get("error")})
    finally:
        if own:
            stack.stop()


def drill_mount_fault(server, folder: Path, outage: float = 60.0, timeout: float = 60.0, stack: Stack | None = None) -> Result:
    """The mount stops answering (driver errors) for ``outage`` clock seconds while open, with rain meanwhile.

    The dome module raises park_failed and keeps trying; the roof closes once the park is confirmed.
    """
    dome, mount = _devices(server)
    own = stack is None
    stack = stack or Stack(server, folder).start()
    try:
        stack.open_and_track(mount, None if own else dome)
        server.mount_fault(outage)
        server.rain()
        alarm = wait_until(lambda: any(a["active"] and "park_failed" in a["code"] for a in stack.status()["alarms"]), 30, 0.1)
        wall, clock = _time_to_secure(dome, mount, timeout)
        return Result("unreadable mount (driver errors while open)", server.name, wall, clock,
                      {"outage_clock": outage, "park_failed_alarm": bool(alarm)})
    finally:
        if own:
            stack.stop()


def drill_server_restart(server, folder: Path, down: float = 2.0, timeout: float = 60.0, stack: Stack | None = None) -> Result:
    """The Alpaca server restarts (state kept: roof open, mount unparked) while no lease is held.

    The conditions were unknown while it was down: the roof must close once it answers,
    even though its first readings are fine, and the park_failed alarm must clear.
    """
    dome, mount = _devices(server)
    own = stack is None
    stack = stack or Stack(server, folder).start()
    try:
        stack.open_and_track(mount, None if own else dome)
        server.stop()
        wait_until(lambda: stack.status()["mount"]["error"] or stack.status()["shelter"]["state"] == "unknown", 30, 0.1)
        time.sleep(down)
        server.start(open_roof=True)
        dome, mount = _devices(server, reset=False)
        wall, clock = _time_to_secure(dome, mount, timeout)
        alarms = wait_until(lambda: not [a for a in stack.status()["alarms"] if a["active"] and a["code"] == "park_failed"], 20, 0.1)
        events = [e["message"] for e in stack.client.events(limit=500, kind="command")]
        return Result("Alpaca server restart with the roof open", server.name, wall, clock,
                      {"park_failed_cleared": bool(alarms), "close_commands": [m for m in events if "close" in m][-3:]})
    finally:
        if own:
            stack.stop()


def sequence_freeze_then_kill(server, folder: Path) -> list[Result]:
    """SIGSTOP then (thawed, same processes) kill -9: two drills for one start of the dome module."""
    stack = Stack(server, folder).start()
    try:
        return [drill_freeze(server, folder, stack=stack), drill_kill(server, folder, stack=stack)]
    finally:
        stack.stop()


def sequence_mount_then_restart(server, folder: Path) -> list[Result]:
    """The mount-fault drill (where the server injects faults), then the server restart, on one dome module."""
    stack = Stack(server, folder).start()
    try:
        results = [drill_mount_fault(server, folder, stack=stack)] if server.faults else []
        return results + [drill_server_restart(server, folder, stack=stack)]
    finally:
        stack.stop()


DRILLS = {
    "kill": drill_kill,
    "freeze": drill_freeze,
    "unreadable_mount": drill_unreadable_mount,
    "mount_fault": drill_mount_fault,
    "server_restart": drill_server_restart,
}
