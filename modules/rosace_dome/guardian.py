"""The guardian: a small process that parks the mount and closes the roof when nobody else will.

The dome module is the observatory's safety authority, and a single process.
Killed, frozen or cut off from its devices, it closes nothing. The guardian is
a second, much simpler process (``rosace dome guardian``; ``rosace dome serve``
starts one beside the module) whose only job is:

    if the dome module is silent, or the sky is unsafe and the roof still open,
    park the mount, confirm the park, then close the roof.

It talks straight to the Alpaca devices (its own connections, so nothing the
dome module holds can block it) and watches the dome module's heartbeat: the
safety loop's poll counter in ``GET /api/v1/dome/status``. A counter that does
not move for ``[dome.guardian] silence`` wall seconds (process killed, frozen,
loop stalled, or the status not answering within ``heartbeat_timeout``) means
the authority is gone.

Rules it keeps:

- it never opens anything and never unparks;
- a roll-off roof closes only over a mount whose park is confirmed (AtPark
  true); if the park cannot be confirmed, it raises an alarm and tries the safe
  actions again at every pass (a rotating dome closes its shutter regardless,
  as the dome module does, per ``close_if_mount_unparked``);
- it does not move the roof under a maintenance lock it last saw on the dome
  module (people may be inside);
- the weather verdict is the dome module's own rules (``rosace_dome.safety``),
  the sun excepted: anything unreadable counts as unsafe;
- while the dome module is alive it gives it ``unsafe_grace`` clock seconds to
  close for bad weather before acting itself (both closing is harmless: park and
  close are idempotent, in the same order).

Only one guardian guards a data folder: each writes its identity to
``<data>/state/guardian.json`` and leaves when a newer one has taken over. A
guardian whose dome module has gone leaves after ``orphan_exit`` wall seconds
once the roof is closed and the mount parked (or when nothing answers any
more); a restarted ``rosace dome serve`` starts a new one.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from rosace_core.alpaca import ShutterState
from rosace_core.clock import get_clock
from rosace_core.errors import DeviceError, DeviceNotConnected, DeviceTimeout
from rosace_dome.journal import Journal
from rosace_dome.safety import SafetyInputs, evaluate
from rosace_dome.settings import DomeSettings

log = logging.getLogger("rosace.guardian")

#: Environment variable read by ``rosace dome serve``: ``off`` (or ``external``: someone
#: else, e.g. the demo's process group, runs the guardian) means "do not start one".
ENV_VAR = "ROSACE_GUARDIAN"


@dataclass
class Pass:
    """What one pass of the guardian saw and did."""

    time: datetime
    dome_alive: bool
    silent_for: float
    weather_safe: bool | None
    weather_reasons: list[str]
    shelter: str
    at_park: bool | None
    acted: str | None = None
    result: str | None = None
    alarms: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "time": self.time.isoformat(), "dome_alive": self.dome_alive, "silent_for": round(self.silent_for, 1),
            "weather_safe": self.weather_safe, "weather_reasons": self.weather_reasons, "shelter": self.shelter,
            "at_park": self.at_park, "acted": self.acted, "result": self.result, "alarms": self.alarms,
        }


class Guardian:
    """The watchdog. ``devices`` is a :class:`~rosace_dome.shelter.ShelterDevices`."""

    def __init__(self, devices, settings: DomeSettings | None = None, *, dome_url: str | None, token: str | None = None,
                 shelter_type: str = "rolloff", status_file: Path | None = None):
        self.devices = devices
        self.settings = settings or DomeSettings()
        self.g = self.settings.guardian
        self.dome_url = dome_url.rstrip("/") if dome_url else None
        self.token = token
        self.shelter_type = shelter_type
        self.status_file = Path(status_file) if status_file else None
        self.identity = uuid.uuid4().hex
        self.journal = Journal(keep=500, alarm_command=self.settings.alarm_command, alarm_url=self.settings.alarm_url)
        self.session = requests.Session()
        self.started = time.monotonic()
        self._started_wall = time.time()
        self._last_count: Any = None
        self._progress_at = self.started  # the dome module gets ``silence`` s to come up
        self._dome_ever_seen = False
        self._locked = False  # the maintenance lock last seen on the dome module
        self._unsafe_since: datetime | None = None
        self._secured_since: float | None = None  # wall (monotonic) since the roof was seen closed, dome gone
        self._connected: set[str] = set()
        self.last: Pass | None = None
        self.stop_event = threading.Event()

    # ------------------------------------------------------------------ reading

    def now(self) -> datetime:
        return get_clock().now()

    def heartbeat(self) -> bool:
        """Ask the dome module for its status; True when its safety loop made progress lately."""
        if self.dome_url is None:
            return False
        mono = time.monotonic()
        try:
            resp = self.session.get(f"{self.dome_url}/api/v1/dome/status", timeout=self.g.heartbeat_timeout,
                                    headers={"Authorization": f"Bearer {self.token}"} if self.token else {})
            data = resp.json() if resp.status_code == 200 else None
        except (requests.RequestException, ValueError):
            data = None
        if isinstance(data, dict):
            poll = data.get("poll") or {}
            count = poll.get("count")
            running = poll.get("running", True)
            self._locked = bool(data.get("maintenance"))
            if running and count != self._last_count:
                self._last_count = count
                self._progress_at = mono
                self._dome_ever_seen = True
        return mono - self._progress_at < self.g.silence

    def silent_for(self) -> float:
        return time.monotonic() - self._progress_at

    def _read(self, name: str, fn) -> Any:
        dev = self.devices.all().get(name)
        try:
            if dev is not None and name not in self._connected:
                self._connect(name, dev)
            return fn()
        except DeviceNotConnected as exc:
            self._connected.discard(name)
            return exc
        except Exception as exc:  # a failed read is data: unknown, so unsafe
            return exc

    def _connect(self, name: str, dev) -> None:
        try:
            dev.connect(timeout=5.0)
            self._connected.add(name)
        except Exception as exc:
            log.debug("guardian: connect %s failed: %s", name, exc)

    def weather(self):
        """Read the SafetyMonitor and the weather station; return the verdict (sun not considered)."""
        d = self.devices
        inputs = SafetyInputs(sun_altitude=-90.0)  # the sun is the dome module's business, not an emergency
        if self.settings.require_safety_monitor:
            inputs.monitor = self._read("safety_monitor", lambda: d.safety_monitor.is_safe) if d.safety_monitor else DeviceError("safety monitor", "not configured")
        down = None if d.conditions else DeviceError("weather station", "not configured")
        for name in self.settings.limits:
            if down is not None:
                inputs.readings[name] = down
                continue
            reading = self._read("conditions", lambda n=name: d.conditions.reading(n))
            if isinstance(reading, (DeviceTimeout, DeviceNotConnected)):
                down = reading  # transport failure: one is enough, each further call could cost a timeout
            inputs.readings[name] = reading
        return evaluate(inputs, self.settings, self.now())

    # ------------------------------------------------------------------ acting

    def _wait(self, done, clock_seconds: float, what: str) -> bool:
        deadline = time.monotonic() + max(get_clock().wall(clock_seconds), 2.0)
        step = 0.05 if get_clock().rate > 1 else 0.5
        while time.monotonic() < deadline:
            try:
                if done():
                    return True
            except Exception as exc:
                log.debug("guardian: %s: read failed while waiting: %s", what, exc)
            if self.stop_event.wait(step):
                return False
        return False

    def secure(self, reason: str) -> str:
        """Park (and confirm), then close; return what happened. Raises nothing."""
        now = self.now()
        tel, dome = self.devices.telescope, self.devices.dome
        self.journal.record(now, "guardian", f"securing the observatory: {reason}")
        close_anyway = self.settings.close_if_mount_unparked
        if close_anyway is None:
            close_anyway = self.shelter_type == "dome"
        parked = False
        if tel is not None:
            at_park = self._read("telescope", lambda: tel.at_park)
            parked = at_park is True
            if not parked:
                try:
                    if isinstance(at_park, DeviceNotConnected):
                        self._connect("telescope", tel)
                    tel.park()
                    parked = self._wait(lambda: tel.at_park, self.settings.park_timeout, "mount park")
                    why = f"not at park after {self.settings.park_timeout:g} s"
                except DeviceError as exc:
                    why = str(exc)
                    self._connected.discard("telescope")
                if not parked:
                    self.journal.raise_alarm(
                        self.now(), "guardian_park_failed",
                        f"guardian: mount park not confirmed ({why})"
                        + ("; closing the dome shutter anyway" if close_anyway else "; the roll-off roof stays open, trying again"),
                    )
                    if not close_anyway:
                        return f"park not confirmed ({why}); roof left open, will retry"
        else:
            if not close_anyway:
                self.journal.raise_alarm(now, "guardian_park_failed", "guardian: no mount configured: a roll-off roof is not closed blind")
                return "no mount configured: roof left open"
        if parked:
            self.journal.clear_alarm(self.now(), "guardian_park_failed", "mount at park")
        try:
            try:
                dome.close_shutter()
            except DeviceNotConnected:
                self._connect("dome", dome)
                dome.close_shutter()
        except DeviceError as exc:
            self._connected.discard("dome")
            self.journal.raise_alarm(self.now(), "guardian_close_failed", f"guardian: close command failed: {exc}")
            return f"close failed: {exc}"
        if self._wait(lambda: dome.shutter == ShutterState.CLOSED, self.settings.shutter_timeout, "close"):
            self.journal.clear_alarm(self.now(), "guardian_close_failed", "roof closed")
            self.journal.record(self.now(), "guardian", "roof closed" + (" over a parked mount" if parked else ""))
            return "closed" + (" and parked" if parked else "")
        self.journal.raise_alarm(self.now(), "guardian_close_failed", f"guardian: roof not closed after {self.settings.shutter_timeout:g} s")
        return "close not confirmed"

    # ------------------------------------------------------------------ one pass

    def check_once(self) -> Pass:
        """Watch, judge, act once; return what was seen and done."""
        alive = self.heartbeat()
        verdict = self.weather()
        now = self.now()
        weather_reasons = [r.text for r in verdict.reasons if r.category == "weather"]
        weather_safe = not weather_reasons
        if weather_safe:
            self._unsafe_since = None
        elif self._unsafe_since is None:
            self._unsafe_since = now
        shutter = self._read("dome", lambda: self.devices.dome.shutter)
        park = self._read("telescope", lambda: self.devices.telescope.at_park) if self.devices.telescope else None
        shelter = shutter.value if isinstance(shutter, ShutterState) else "unknown"
        at_park = park if isinstance(park, bool) else None
        p = Pass(now, alive, self.silent_for(), weather_safe, weather_reasons, shelter, at_park)

        reason = None
        if not alive:
            reason = f"dome module silent for {self.silent_for():.0f} s (limit {self.g.silence:g} s)"
            if not weather_safe:
                reason += "; unsafe: " + "; ".join(weather_reasons)
        elif not weather_safe and self._unsafe_since is not None and (now - self._unsafe_since).total_seconds() >= self.g.unsafe_grace:
            reason = f"unsafe for {(now - self._unsafe_since).total_seconds():.0f} s and the roof not closed by the dome module: " + "; ".join(weather_reasons)

        if shelter == "closed":
            self.journal.clear_alarm(now, "guardian_park_failed", "roof closed")
            self.journal.clear_alarm(now, "guardian_close_failed", "roof closed")
            self.journal.clear_alarm(now, "guardian_locked", "roof closed")
        elif reason is not None:
            if self._locked:
                self.journal.raise_alarm(now, "guardian_locked", f"guardian: {reason}; maintenance lock on: the roof is left as it is")
                p.result = "maintenance lock: left as it is"
            else:
                p.acted = reason
                p.result = self.secure(reason)
                p.shelter = self._shelter_word()
        p.alarms = sorted(self.journal.active_codes())
        self.last = p
        return p

    def _shelter_word(self) -> str:
        value = self._read("dome", lambda: self.devices.dome.shutter)
        return value.value if isinstance(value, ShutterState) else "unknown"

    # ------------------------------------------------------------------ life

    def _write_status(self) -> bool:
        """Write our status; return False when a newer guardian has taken the file over."""
        if self.status_file is None:
            return True
        try:
            if self.status_file.exists():
                other = json.loads(self.status_file.read_text(encoding="utf-8"))
                if other.get("identity") not in (None, self.identity) and float(other.get("started_wall", 0)) > self._started_wall:
                    return False
        except (OSError, ValueError, TypeError):
            pass
        data = {"identity": self.identity, "pid": os.getpid(), "started_wall": self._started_wall, "dome_url": self.dome_url,
                "last": self.last.to_dict() if self.last else None, "alarms": [a.to_dict() for a in self.journal.alarms() if a.active]}
        try:
            self.status_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.status_file.with_name(f"{self.status_file.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
            os.replace(tmp, self.status_file)
        except OSError as exc:
            log.warning("guardian: cannot write %s: %s", self.status_file, exc)
        return True

    def run(self) -> int:
        """Loop until stopped, replaced by a newer guardian, or orphaned with nothing left to do."""
        self._write_status()
        log.info("guardian watching the dome module at %s (silence limit %g s) and the devices directly", self.dome_url, self.g.silence)
        while not self.stop_event.is_set():
            try:
                p = self.check_once()
            except Exception:  # the guardian must outlive any bug in one pass
                log.exception("guardian pass failed")
                p = None
            if not self._write_status():
                log.info("guardian: a newer guardian has taken over; leaving")
                return 0
            if p is not None and not p.dome_alive:
                done = p.shelter == "closed" and p.at_park is not False
                nothing = p.shelter == "unknown"
                if done or nothing:
                    self._secured_since = self._secured_since or time.monotonic()
                    if time.monotonic() - self._secured_since >= self.g.orphan_exit:
                        log.info("guardian: dome module gone for %.0f s and %s; leaving", p.silent_for,
                                 "the roof closed" if done else "no device answers")
                        return 0
                else:
                    self._secured_since = None
            else:
                self._secured_since = None
            self.stop_event.wait(self.g.period)
        return 0


def dome_url_for(config, host: str | None = None, port: int | None = None) -> str:
    """The dome module's URL: ``host``/``port`` as given to ``rosace dome serve``, else the configuration's."""
    if port:
        h = host or config.server.host or "127.0.0.1"
        if h in ("0.0.0.0", "::", ""):
            h = "127.0.0.1"
        return f"http://{h}:{port}"
    return config.module_url("dome")


def build(config, *, host: str | None = None, port: int | None = None, dome_url: str | None = None) -> Guardian:
    """Build a guardian from the observatory configuration (``[devices]``, ``[dome]``)."""
    from rosace_dome.settings import load_settings
    from rosace_dome.shelter import ShelterDevices

    settings, shelter_type, state_file = load_settings(config)
    return Guardian(
        ShelterDevices.from_config(config), settings,
        dome_url=dome_url or dome_url_for(config, host, port),
        token=config.module_token("dome"), shelter_type=shelter_type,
        status_file=Path(state_file).with_name("guardian.json"),
    )


def spawn(config, config_path: str | None, host: str | None, port: int | None, log_level: str = "INFO") -> subprocess.Popen | None:
    """Start ``rosace dome guardian`` as a separate process for a dome module about to serve.

    Not started when ``[dome.guardian] enabled = false`` or ``ROSACE_GUARDIAN`` is ``off``
    or ``external`` (someone else runs it). The child is not tied to this process: it
    must outlive a dome module that is killed.
    """
    from rosace_dome.settings import load_settings

    if os.environ.get(ENV_VAR, "").lower() in ("off", "0", "false", "no", "external"):
        return None
    settings, _, _ = load_settings(config)
    if not settings.guardian.enabled:
        return None
    args = [sys.executable, "-m", "rosace_core.cli", "--log-level", log_level]
    if config_path:
        args += ["--config", str(config_path)]
    args += ["dome", "guardian"]
    if host:
        args += ["--host", host]
    if port:
        args += ["--port", str(port)]
    flags = 0
    if sys.platform == "win32":
        flags = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
    kwargs: dict = {"creationflags": flags} if os.name == "nt" else {"start_new_session": True}
    child = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    log.info("started the guardian (pid %s)", child.pid)
    return child
