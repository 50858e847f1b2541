"""The shelter controller: the observatory's safety authority.

:class:`Shelter` owns the roof (roll-off) or dome, reads the safety devices in
its own thread every ``poll_period`` (independently of every request, and
whatever a device does), and acts on the verdict:

- unsafe (weather, stale or unreadable sensors, the sun) or the last lease run
  out: park the mount, wait for AtPark, then close. A roll-off roof never closes
  on an unparked mount (an alarm instead); a dome closes its shutter regardless
  (both configurable);
- after an unsafe period the roof re-opens only after ``reopen_delay`` of
  continuous safe verdicts;
- shutter motion is a multi-second transition with a timeout; a move that does
  not finish raises an alarm.

Motions run as jobs (``rosace_core.jobs``) so that the loop keeps polling while
the roof moves. The state (leases, maintenance lock, re-open time, events,
alarms) is persisted to a JSON file and, on start, reconciled with what the
devices report: nothing is assumed.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from rosace_core.alpaca import ShutterState
from rosace_core.clock import get_clock
from rosace_core.errors import Aborted, ConflictError, DeviceError, DeviceNotConnected, DeviceTimeout
from rosace_core.jobs import Job, JobRunner
from rosace_core.state import atomic_write_json
from rosace_dome.journal import Journal
from rosace_dome.leases import Lease, LeaseBook
from rosace_dome.safety import SafetyInputs, Verdict, evaluate, sun_altitude
from rosace_dome.settings import DomeSettings
from rosace_dome.slaving import azimuth_error, dome_azimuth

log = logging.getLogger(__name__)

STATES = ("open", "closed", "opening", "closing", "error", "unknown")
_STALE = object()  # marks a shutter reading overtaken by a newer one


@dataclass
class ShelterDevices:
    """The devices the dome module reaches. ``telescope`` may be None (no interlock possible)."""

    dome: Any
    telescope: Any = None
    safety_monitor: Any = None
    conditions: Any = None

    @classmethod
    def from_config(cls, config) -> "ShelterDevices":
        """Build Alpaca adapters from ``config.devices``.

        One attempt per call (no retries): the safety loop must not stall for
        tens of seconds on a dead device; a failed read simply counts as unsafe.
        """
        from rosace_core import alpaca

        d = config.devices

        def make(kind, dev, name):
            return kind(dev.url, dev.device_number, retries=1, name=f"{name} ({dev.url}, #{dev.device_number})")

        return cls(
            dome=make(alpaca.Dome, d.dome, "dome"),
            telescope=make(alpaca.Telescope, d.telescope, "mount"),
            safety_monitor=make(alpaca.SafetyMonitor, d.safety_monitor, "safety monitor"),
            conditions=alpaca.ObservingConditions(d.observing_conditions.url, d.observing_conditions.device_number, retries=1,
                                                  units=getattr(d.observing_conditions, "units", None),
                                                  name=f"weather station ({d.observing_conditions.url}, #{d.observing_conditions.device_number})"),
        )

    def all(self) -> dict[str, Any]:
        return {k: v for k, v in (("dome", self.dome), ("telescope", self.telescope), ("safety_monitor", self.safety_monitor), ("conditions", self.conditions)) if v is not None}


class Shelter:
    """Roof or dome control with its independent safety loop.

    ``site`` is (latitude, longitude, elevation) in degrees and metres.
    Public methods are thread-safe; times are observatory clock time.
    """

    def __init__(
        self,
        devices: ShelterDevices,
        settings: DomeSettings | None = None,
        *,
        shelter_type: str = "rolloff",
        site: tuple[float, float, float] = (43.75, 6.92, 1270.0),
        state_file: Path | None = None,
        runner: JobRunner | None = None,
    ):
        self.devices = devices
        self.settings = settings or DomeSettings()
        self.shelter_type = shelter_type
        self.site = site
        self.state_file = Path(state_file) if state_file else None
        self.runner = runner or JobRunner()
        self.journal = Journal(alarm_command=self.settings.alarm_command, alarm_url=self.settings.alarm_url)
        self.leases = LeaseBook(self.settings.lease_max_duration)
        self._lock = threading.RLock()
        self._save_lock = threading.Lock()  # one state-file write at a time, newest snapshot last
        self._save_seq = 0
        self._saved_seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._preempt = threading.Event()

        self.state = "unknown"
        self.device_state: str | None = None
        self.shelter_error: str | None = None
        self.azimuth: float | None = None
        self.at_park: bool | None = None
        self.mount_error: str | None = None
        self.verdict: Verdict | None = None
        self.verdict_since: datetime | None = None
        self.locked = False
        self.lock_reason = ""
        self.lock_since: datetime | None = None
        self.last_unsafe: datetime | None = None
        self.reopen_at: datetime | None = None
        self.polls = 0
        self.last_poll: datetime | None = None
        self.last_poll_wall: float | None = None
        self.slaving: dict = {}

        self._action: Job | None = None  # the running shelter motion (open/close)
        self._motion: str | None = None  # "opening" / "closing" while our job moves the roof
        self._stuck: str | None = None  # target of a move that timed out
        self._close_wanted: str | None = None  # reason of a pending automatic close (lease expiry, restart)
        self._close_retry_at: datetime | None = None
        self._sun_cache: tuple[datetime, float] | None = None
        self._connect_tried: dict[str, float] = {}
        self._next_slave: datetime | None = None
        self._persisted: dict = {}
        self._reconciled = False
        self._state_set_at = 0.0  # monotonic time a job last set the state from a fresh device read
        self._load_state()

    # ------------------------------------------------------------------ clock

    @property
    def clock(self):
        return get_clock()

    def now(self) -> datetime:
        return self.clock.now()

    def _wall_poll(self) -> float:
        return max(self.clock.wall(self.settings.poll_period), self.settings.min_poll_wall)

    # ------------------------------------------------------------------ life cycle

    def start(self) -> "Shelter":
        """Connect the devices and start the safety loop (idempotent)."""
        if self._thread and self._thread.is_alive():
            return self
        self._stop.clear()
        self.journal.record(
            self.now(), "start", f"dome module started ({self.shelter_type}); reading the devices before anything else",
            persisted_state=self._persisted.get("state"),
        )
        self._thread = threading.Thread(target=self._loop, name="dome-safety-loop", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the safety loop (the roof is left as it is) and save the state."""
        self._stop.set()
        self._preempt.set()
        if self._thread:
            self._thread.join(timeout)
        self._save_state()

    @property
    def running(self) -> bool:
        return bool(self._thread and self._thread.is_alive())

    def _loop(self) -> None:
        for name, dev in self.devices.all().items():
            self._try_connect(name, dev, force=True)
        next_tick = time.monotonic()
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # the loop must outlive any bug in one pass
                log.exception("safety loop pass failed")
            next_tick += self._wall_poll()
            delay = next_tick - time.monotonic()
            if delay < 0:  # a slow pass: start the next one now rather than catch up in a burst
                next_tick = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    def _try_connect(self, name: str, dev, force: bool = False) -> None:
        last = self._connect_tried.get(name, 0.0)
        if not force and time.monotonic() - last < 5.0:
            return
        self._connect_tried[name] = time.monotonic()
        try:
            dev.connect(timeout=5.0)
        except Exception as exc:
            log.debug("connect %s failed: %s", name, exc)

    def _read(self, name: str, fn: Callable[[], Any]) -> Any:
        """Read one value; return the exception instead of raising (a failed read is data)."""
        dev = self.devices.all().get(name)
        try:
            value = fn()
        except DeviceNotConnected as exc:
            if dev is not None:
                self._try_connect(name, dev)
            return exc
        except Exception as exc:
            return exc
        return value

    # ------------------------------------------------------------------ the safety loop

    def poll_once(self) -> Verdict:
        """Read every device once, judge, act; return the verdict (the loop calls this)."""
        d = self.devices
        inputs = SafetyInputs()
        # The SafetyMonitor first: it is the quickest path from "unsafe" to acting.
        if self.settings.require_safety_monitor:
            inputs.monitor = self._read("safety_monitor", lambda: d.safety_monitor.is_safe) if d.safety_monitor else DeviceError("safety monitor", "not configured")
            if inputs.monitor is False:
                # ASCOM: IsSafe is false while the device is not connected (e.g. it restarted
                # after us): tell that apart, and reconnect, rather than stay unsafe forever.
                connected = self._read("safety_monitor", lambda: d.safety_monitor.connected)
                if connected is False:
                    self._try_connect("safety_monitor", d.safety_monitor)
                    inputs.monitor = DeviceNotConnected("safety monitor", "not connected (IsSafe stays false until it is); reconnecting")
            if inputs.monitor is False and d.safety_monitor is not None:
                # ASCOM: a SafetyMonitor that lost its connection says "unsafe" instead of
                # raising, so a False verdict is also the cue to (re)connect it (rate-limited).
                self._try_connect("safety_monitor", d.safety_monitor)
        station_down: BaseException | None = None if d.conditions else DeviceError("weather station", "not configured")
        for name in self.settings.limits:
            if station_down is not None:
                # One dead answer is enough: each further call could cost a full timeout.
                inputs.readings[name] = station_down
                continue
            reading = self._read("conditions", functools.partial(d.conditions.reading, name))
            if isinstance(reading, (DeviceTimeout, DeviceNotConnected)):
                station_down = reading
            inputs.readings[name] = reading
        inputs.sun_altitude = self._sun_altitude()
        shutter_read_at = time.monotonic()
        shutter = self._read("dome", lambda: d.dome.shutter)
        park = self._read("telescope", lambda: d.telescope.at_park) if d.telescope else DeviceError("mount", "not configured")
        if self.shelter_type == "dome":
            azimuth = self._read("dome", lambda: d.dome.azimuth)
            self.azimuth = None if isinstance(azimuth, BaseException) else round(float(azimuth), 2)
        now = self.now()
        with self._lock:
            inputs.locked, inputs.lock_reason = self.locked, self.lock_reason
            verdict = evaluate(inputs, self.settings, now)
            self._note_gap(now)
            if shutter_read_at < self._state_set_at:
                shutter = _STALE  # a move finished while we were reading: its newer word stands
            self._note_devices(now, inputs, shutter, park)
            self._note_verdict(now, verdict)
            self.polls += 1
            self.last_poll = now
            self.last_poll_wall = time.time()
            self._act(now, verdict)
        if self.shelter_type == "dome" and self.settings.slaving.enabled:
            self._slave(now)
        return verdict

    def _sun_altitude(self):
        now = self.now()
        # The sun moves 0.25 deg a minute: one computation a minute is plenty.
        if self._sun_cache and abs((now - self._sun_cache[0]).total_seconds()) < 60:
            return self._sun_cache[1]
        try:
            alt = sun_altitude(now, *self.site)
        except Exception as exc:
            return exc
        self._sun_cache = (now, alt)
        return alt

    def _note_devices(self, now: datetime, inputs: SafetyInputs, shutter, park) -> None:
        if shutter is _STALE:
            pass
        elif isinstance(shutter, BaseException):
            state, self.shelter_error = "unknown", f"shelter unreadable: {shutter}"
            self.device_state = None
            self.journal.raise_alarm(now, "device:dome", f"cannot read the shelter: {shutter}")
        else:
            self.device_state = shutter.value if isinstance(shutter, ShutterState) else str(shutter)
            state, self.shelter_error = self.device_state, None
            self.journal.clear_alarm(now, "device:dome", "shelter answers again")
            if self._stuck and state in (self._stuck, "open", "closed"):
                self._stuck = None
            if state in ("open", "closed") and self._motion is None:
                self.journal.clear_alarm(now, "shutter_stuck", f"shelter {state} again")
            if self._stuck:
                state = "error"
        if shutter is not _STALE:
            self._set_state(now, state)

        if isinstance(park, BaseException):
            if self.mount_error is None:
                self.journal.record(now, "mount", f"mount unreadable: {park}")
            self.mount_error = str(park)
            self.at_park = None
        else:
            if self.at_park is not None and bool(park) != self.at_park:
                self.journal.record(now, "mount", "mount parked" if park else "mount unparked")
            self.at_park, self.mount_error = bool(park), None
            if self.at_park:
                self.journal.clear_alarm(now, "park_failed", "mount at park")

        failures = {
            "safety_monitor": [inputs.monitor] if isinstance(inputs.monitor, BaseException) else [],
            "conditions": [v for v in inputs.readings.values() if isinstance(v, BaseException)],
        }
        for name, errors in failures.items():
            if errors:
                self.journal.raise_alarm(now, f"device:{name}", f"cannot read the {name.replace('_', ' ')}: {errors[0]}")
            else:
                self.journal.clear_alarm(now, f"device:{name}", "answers again")

        if not self._reconciled and self.device_state is not None:
            self._reconciled = True
            leases = self.leases.active()
            persisted = self._persisted.get("state")
            self.journal.record(
                now, "reconcile",
                f"shelter found {self.device_state} at start (last saved state: {persisted or 'none'}); "
                f"{len(leases)} lease(s) on record, mount {'parked' if self.at_park else 'not parked' if self.at_park is False else 'unknown'}; "
                "the safety rules decide what happens next",
                found=self.device_state, persisted=persisted, leases=len(leases),
            )
            if self.device_state in ("open", "opening") and not leases:
                self.journal.record(now, "reconcile", "roof open with no lease: it stays open only while safe", found=self.device_state)

    def _set_state(self, now: datetime, state: str) -> None:
        if state not in STATES:
            state = "unknown"
        with self._lock:
            if state == self.state:
                return
            old, self.state = self.state, state
            why = self.shelter_error or (f"roof {self._motion} on our command" if self._motion else "reported by the device")
            self.journal.record(now, "shelter", f"shelter {old} -> {state} ({why})", old=old, new=state)
            self._save_state()

    def _note_gap(self, now: datetime) -> None:
        """A stretch without any reading (the process frozen, the loop stalled) counts as unknown, so unsafe.

        The re-open delay is then counted from the first reading after the gap: what the
        sky did while nobody looked is unknown.
        """
        if self.last_poll_wall is None:
            return
        gap = time.time() - self.last_poll_wall
        if gap <= max(self.settings.gap_tolerance, 5 * self._wall_poll()):
            return
        self.last_unsafe = now
        reopen = now + timedelta(seconds=self.settings.reopen_delay)
        if self.reopen_at is None or reopen > self.reopen_at:
            self.reopen_at = reopen
        self.journal.record(now, "verdict", f"no reading for {gap:.0f} s (wall): conditions unknown meanwhile; re-open delay restarted",
                            gap=round(gap, 1))
        if self.state not in ("closed",) and not self.locked and not self.leases.active():
            self._close_wanted = self._close_wanted or f"conditions unknown for {gap:.0f} s (wall) with the roof {self.state} and no lease"
        self._save_state()

    def _note_verdict(self, now: datetime, verdict: Verdict) -> None:
        before = self.verdict
        self.verdict = verdict
        if not verdict.weather_safe:
            self.last_unsafe = now
            reopen = now + timedelta(seconds=self.settings.reopen_delay)
            if self.reopen_at is None or reopen > self.reopen_at:
                self.reopen_at = reopen
        if before is None or before.safe != verdict.safe or before.reason_texts != verdict.reason_texts:
            if before is None or before.safe != verdict.safe:
                self.verdict_since = now
            text = "safe" if verdict.safe else "unsafe: " + "; ".join(verdict.reason_texts)
            # Reason texts carry live values; log only when the set of causes changes.
            if before is None or before.safe != verdict.safe or [r.code for r in before.reasons] != [r.code for r in verdict.reasons]:
                self.journal.record(now, "verdict", text, safe=verdict.safe, reasons=verdict.reason_texts)
                self._save_state()

    def _act(self, now: datetime, verdict: Verdict) -> None:
        for lease in self.leases.expire(now):
            self.journal.record(now, "lease", f"lease of {lease.holder} expired at {lease.expires.isoformat()}", lease=lease.id, holder=lease.holder)
            if not self.leases.active():
                self._close_wanted = f"last lease expired ({lease.holder} stopped renewing it)"
            self._save_state()
        if self.reopen_at is not None and now >= self.reopen_at and verdict.weather_safe:
            self.reopen_at = None
            self.journal.record(now, "reopen", "re-open delay over: the roof may open again")
            self._save_state()

        unsafe = [r for r in verdict.reasons if r.category != "maintenance"]
        reason = None
        if unsafe:
            reason = "unsafe: " + "; ".join(r.text for r in unsafe)
            if self.state != "closed" and not self.locked:
                # Sticky: a close wanted for bad or unknown conditions is carried out even if
                # the next reading is fine (a flapping sensor, a restarted server that answers
                # "safe" before its first real measurement): the re-open delay applies anyway.
                self._close_wanted = self._close_wanted or reason
        elif self._close_wanted:
            reason = self._close_wanted
        if self.state == "closed" and self.device_state == "closed":
            self._close_wanted = None
            self._close_retry_at = None
            self.journal.clear_alarm(now, "locked_unsafe", "roof closed")
            if (self._action is None or self._action.done or self._action.kind != "close") and self.shelter_type != "dome":
                # A roll-off roof closes only on a parked mount (or by hand): nothing left for the
                # mount to hit, the park failure is moot now. A dome closes over an unparked mount:
                # its alarm stays until the mount reports parked.
                self.journal.clear_alarm(now, "park_failed", "roof closed")
            return
        if reason is None:
            self.journal.clear_alarm(now, "locked_unsafe", "safe again")
            return
        if self.locked:
            # People may be working in the shelter: never move it on our own under a lock.
            self.journal.raise_alarm(now, "locked_unsafe", f"{reason}; maintenance lock on: the roof is left as it is")
            return
        if self._action is not None and not self._action.done and self._action.kind == "close":
            return
        if self._close_retry_at is not None and now < self._close_retry_at:
            return
        self._close_retry_at = now + timedelta(seconds=self.settings.close_retry)
        self._start_close(reason, automatic=True)

    # ------------------------------------------------------------------ slaving

    def _slave(self, now: datetime) -> None:
        if self._next_slave is not None and now < self._next_slave:
            return
        self._next_slave = now + timedelta(seconds=self.settings.slaving.interval)
        if self.state not in ("open", "opening") or self.at_park is not False:
            self.slaving = {"active": False}
            return
        tel, dome = self.devices.telescope, self.devices.dome
        try:
            ra, dec, lst, pier = tel.ra, tel.dec, tel.sidereal_time, tel.side_of_pier
            target = dome_azimuth(lst * 15.0 - ra, dec, self.site[0], pier, self.settings.slaving)
            az = dome.azimuth
            self.azimuth = az
            self.slaving = {"active": True, "target": round(target, 2), "azimuth": round(az, 2), "error": round(azimuth_error(az, target), 2)}
            if azimuth_error(az, target) > self.settings.slaving.tolerance and not dome.slewing:
                dome.slew_to_azimuth(target)
                self.journal.record(now, "slaving", f"dome to azimuth {target:.1f} deg (was {az:.1f})", target=target)
        except (DeviceError, ValueError) as exc:
            self.slaving = {"active": False, "error": str(exc)}

    # ------------------------------------------------------------------ commands

    def open_refusals(self) -> list[str]:
        """Reasons why the roof may not open now (empty: it may)."""
        now = self.now()
        with self._lock:
            reasons: list[str] = []
            if self.verdict is None:
                reasons.append("safety not evaluated yet: the first reading of the devices is still running")
            else:
                reasons.extend(r.text for r in self.verdict.reasons if r.category != "maintenance")
            if self.locked:
                reasons.append(f"maintenance lock: {self.lock_reason or 'no reason given'}")
            if self.reopen_at is not None and now < self.reopen_at:
                wait = (self.reopen_at - now).total_seconds()
                reasons.append(
                    f"re-open delay: {self.settings.reopen_delay / 60:g} min of continuous safe readings needed after an unsafe period "
                    f"({wait / 60:.1f} min left, until {self.reopen_at.isoformat(timespec='seconds')})"
                )
            if self._action is not None and not self._action.done and self._action.kind == "close":
                reasons.append("the shelter is closing")
            if self.at_park is None:
                # Unknown is unsafe: a mount we cannot read may be anywhere under the roof.
                reasons.append(f"mount state unknown ({self.mount_error or 'not read yet'}): the roof opens only over a mount known to be parked")
            elif self.shelter_type == "rolloff" and self.at_park is False:
                reasons.append("mount not parked: a roll-off roof moves only over a parked mount")
            if self.state == "unknown":
                reasons.append(f"shelter state unknown ({self.shelter_error or 'not read yet'})")
        return reasons

    def open(self, source: str = "request") -> Job:
        """Start opening; raise ConflictError with the reasons when it is not allowed."""
        with self._lock:
            refusals = self.open_refusals()
            if refusals:
                raise ConflictError("the roof may not open now", refusals)
            if self._action is not None and not self._action.done and self._action.kind == "open":
                return self._action
            self._close_wanted = None
            self._close_retry_at = None
            self._preempt.clear()
            self.journal.record(self.now(), "command", f"open requested by {source}", command="open", source=source)
            job = self.runner.submit("open", self._open_job, {"source": source})
            self._action = job
            return job

    def close(self, reason: str = "requested", source: str = "request") -> Job:
        """Start parking the mount and closing (returns the running close job if there is one)."""
        with self._lock:
            if self._action is not None and not self._action.done and self._action.kind == "close":
                return self._action
            return self._start_close(f"{reason} by {source}" if reason == "requested" else reason, automatic=False)

    def _start_close(self, reason: str, automatic: bool) -> Job:
        if self._action is not None and not self._action.done and self._action.kind == "open":
            self._preempt.set()
            self._action.abort()
        self.journal.record(self.now(), "command", f"close: {reason}", command="close", automatic=automatic)
        job = self.runner.submit("close", lambda j: self._close_job(j, reason, automatic), {"reason": reason, "automatic": automatic})
        self._action = job
        return job

    def park(self, source: str = "request") -> Job:
        """Start parking the mount (and a rotating dome); the roof does not move."""
        self.journal.record(self.now(), "command", f"park requested by {source}", command="park")
        return self.runner.submit("park", self._park_job, {"source": source})

    def home(self, source: str = "request") -> Job:
        """Start finding the dome's home position (rotating dome)."""
        self.journal.record(self.now(), "command", f"home requested by {source}", command="home")

        def run(job: Job):
            self.devices.dome.find_home()
            self._wait(job, lambda: not self.devices.dome.slewing, self.settings.shutter_timeout, "dome home")
            return {"azimuth": self.devices.dome.azimuth}

        return self.runner.submit("home", run, {"source": source})

    def set_maintenance(self, locked: bool, reason: str = "", source: str = "request") -> dict:
        """Set or lift the maintenance lock: while locked the roof never opens and never moves on its own."""
        now = self.now()
        with self._lock:
            changed = locked != self.locked
            self.locked, self.lock_reason = locked, (reason if locked else "")
            if changed:
                self.lock_since = now
                self.journal.record(now, "maintenance", (f"maintenance lock on: {reason or 'no reason given'}" if locked else "maintenance lock lifted") + f" (by {source})", locked=locked)
                if not locked:
                    self.journal.clear_alarm(now, "locked_unsafe", "lock lifted")
                self._save_state()
        return {"locked": self.locked, "reason": self.lock_reason, "since": self.lock_since.isoformat() if self.lock_since else None}

    def acquire_lease(self, holder: str, duration: float) -> Lease:
        lease = self.leases.acquire(holder, duration, self.now())
        self.journal.record(self.now(), "lease", f"lease taken by {holder} for {duration:g} s", lease=lease.id, holder=holder)
        self._save_state()
        return lease

    def renew_lease(self, lease_id: str, duration: float) -> Lease:
        lease = self.leases.renew(lease_id, duration, self.now())
        self._save_state()
        return lease

    def release_lease(self, lease_id: str) -> Lease:
        lease = self.leases.release(lease_id)
        with self._lock:
            self.journal.record(self.now(), "lease", f"lease of {lease.holder} released", lease=lease.id, holder=lease.holder)
            if not self.leases.active():
                # The last holder is done: the roof was open for it, so park and close.
                self._close_wanted = f"last lease released ({lease.holder} is done)"
            self._save_state()
        return lease

    # ------------------------------------------------------------------ jobs

    def _wait(self, job: Job | None, done: Callable[[], bool], timeout: float, what: str, preempt: bool = False) -> None:
        """Poll ``done`` until true; DeviceTimeout after ``timeout`` clock seconds."""
        deadline = self.now() + timedelta(seconds=timeout)
        step = min(max(self._wall_poll() / 2, 0.02), 1.0)
        while True:
            if preempt and self._preempt.is_set():
                raise Aborted(f"{what}: interrupted by a close")
            if job is not None:
                job.check_abort()
            try:
                if done():
                    return
            except DeviceError as exc:
                log.debug("%s: read failed while waiting: %s", what, exc)
            if self.now() > deadline:
                raise DeviceTimeout("shelter", f"{what}: not done after {timeout:g} s")
            if self._stop.wait(step):
                raise Aborted(f"{what}: module stopping")

    def _sleep(self, job: Job, seconds: float) -> None:
        """Wait ``seconds`` of clock time (wall floor ``min_poll_wall``); Aborted if the job or the module stops."""
        deadline = time.monotonic() + max(self.clock.wall(seconds), self.settings.min_poll_wall)
        while time.monotonic() < deadline:
            job.check_abort()
            if self._stop.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
                raise Aborted("module stopping")

    def _open_job(self, job: Job) -> dict:
        dome = self.devices.dome
        with self._lock:
            self._motion = "opening"
        try:
            job.progress(0.05, "opening the shutter")
            dome.open_shutter()
            self._wait_shutter(job, ShutterState.OPEN, "open", preempt=True)
            self.journal.clear_alarm(self.now(), "shutter_stuck", "roof opened")
            return {"state": "open"}
        finally:
            with self._lock:
                if self._motion == "opening":
                    self._motion = None

    def _wait_shutter(self, job: Job, target: ShutterState, what: str, preempt: bool = False) -> None:
        """Wait for the shutter to reach ``target``; alarm and raise if it stalls, errs or times out."""
        failed: list[str] = []

        def arrived() -> bool:
            state = self.devices.dome.shutter
            if state == ShutterState.ERROR:
                failed.append("the device reports a shutter error")
                return True
            return state == target

        try:
            self._wait(job, arrived, self.settings.shutter_timeout, what, preempt=preempt)
        except DeviceTimeout:
            self._stuck_move(what)
            raise
        if failed:
            self._stuck_move(what, failed[0])
            raise DeviceError("shelter", f"{what}: {failed[0]}")
        with self._lock:
            # The device said so just now: show it without waiting for the next poll.
            self.device_state, self._stuck = target.value, None
            self._state_set_at = time.monotonic()
            self._set_state(self.now(), target.value)

    def _stuck_move(self, target: str, why: str = "") -> None:
        now = self.now()
        with self._lock:
            self._stuck = target
            # Shown at once, as a successful move is: the next poll would say "error" anyway
            # (a stuck shelter), and until then the status would contradict its own alarm.
            self._set_state(now, "error")
        try:
            state = self.devices.dome.shutter.value
        except DeviceError as exc:
            state = f"unreadable ({exc})"
        why = why or f"not done within {self.settings.shutter_timeout:g} s"
        self.journal.raise_alarm(now, "shutter_stuck", f"shutter did not {target}: {why} (device says {state})")
        try:
            self.devices.dome.abort()
        except DeviceError:
            pass

    def _park_mount(self, job: Job | None, reason: str) -> None:
        tel = self.devices.telescope
        if tel is None:
            raise DeviceError("mount", "no mount configured: cannot park it")
        try:
            if tel.at_park:
                return
        except DeviceError:
            pass
        self.journal.record(self.now(), "command", f"mount park commanded ({reason})", command="park_mount")
        tel.park()
        self._wait(job, lambda: tel.at_park, self.settings.park_timeout, "mount park")
        self.journal.record(self.now(), "mount", "mount reached park (AtPark true)")

    def _close_job(self, job: Job, reason: str, automatic: bool) -> dict:
        dome = self.devices.dome
        close_anyway = self.settings.close_if_mount_unparked
        if close_anyway is None:
            close_anyway = self.shelter_type == "dome"
        job.progress(0.05, "parking the mount")
        attempt = 0
        while True:
            attempt += 1
            try:
                self._park_mount(job, reason)
                self.journal.clear_alarm(self.now(), "park_failed", "mount parked")
                break
            except Aborted:
                raise
            except DeviceError as exc:
                if close_anyway:
                    self.journal.raise_alarm(self.now(), "park_failed", f"mount failed to park ({exc}): closing the dome shutter anyway")
                    break
                # Never close a roll-off roof on a mount not known to be parked; but never
                # give up either: alarm, then try the safe actions again until the mount
                # parks (or an operator aborts this job).
                self.journal.raise_alarm(
                    self.now(), "park_failed",
                    f"mount park not confirmed ({exc}): the roll-off roof stays open to avoid hitting the telescope; "
                    f"trying again every {self.settings.park_retry:g} s",
                )
                job.progress(0.05, f"mount park not confirmed (attempt {attempt}): {exc}; retrying")
                try:
                    self.devices.telescope.connect(timeout=5.0)
                except Exception:
                    pass
                self._sleep(job, self.settings.park_retry)
        job.progress(0.4, "closing the shutter")
        with self._lock:
            self._motion = "closing"
        try:
            self.journal.record(self.now(), "command", f"shutter close commanded ({reason})", command="close_shutter")
            try:
                dome.close_shutter()
            except DeviceNotConnected:
                # A restarted Alpaca server forgets its connections: connect and ask again.
                dome.connect(timeout=5.0)
                dome.close_shutter()
            self._wait_shutter(job, ShutterState.CLOSED, "close")
            self.journal.clear_alarm(self.now(), "shutter_stuck", "roof closed")
            with self._lock:
                self._close_wanted = None
                self._close_retry_at = None
            return {"state": "closed"}
        finally:
            with self._lock:
                if self._motion == "closing":
                    self._motion = None

    def _park_job(self, job: Job) -> dict:
        self._park_mount(job, "requested")
        if self.shelter_type == "dome":
            try:
                self.devices.dome.park()
            except DeviceError as exc:
                self.journal.record(self.now(), "dome", f"dome park not done: {exc}")
        return {"at_park": True}

    # ------------------------------------------------------------------ status

    def status(self) -> dict:
        """The whole state as the REST ``/status`` shows it."""
        now = self.now()
        with self._lock:
            v = self.verdict
            return {
                "time": now.isoformat(),
                "shelter": {
                    "type": self.shelter_type,
                    "state": self.state,
                    "device_state": self.device_state,
                    "azimuth": self.azimuth,
                    "moving": self._motion,
                    "error": self.shelter_error,
                    "action": self._action.to_dict() if self._action is not None else None,
                },
                "safe": bool(v and v.safe),
                "verdict": {
                    "safe": bool(v and v.safe),
                    "reasons": v.reason_texts if v else ["safety not evaluated yet"],
                    "codes": [r.code for r in v.reasons] if v else ["pending"],
                    "since": self.verdict_since.isoformat() if self.verdict_since else None,
                    "checked": v.checked.isoformat() if v else None,
                },
                "sensors": [s.to_dict() for s in v.sensors] if v else [],
                "mount": {"at_park": self.at_park, "error": self.mount_error, "slaving": self.slaving},
                "leases": [lease.to_dict(now) for lease in self.leases.active()],
                "alarms": [a.to_dict() for a in self.journal.alarms()],
                "maintenance": self.locked,
                "maintenance_reason": self.lock_reason,
                "reopen_at": self.reopen_at.isoformat() if self.reopen_at else None,
                "can_open": not self.open_refusals(),
                "poll": {"period": self.settings.poll_period, "count": self.polls, "last": self.last_poll.isoformat() if self.last_poll else None,
                         "last_wall": self.last_poll_wall, "running": self.running},
            }

    # ------------------------------------------------------------------ persistence

    def _save_state(self) -> None:
        """Write the state file atomically; an alarm while it cannot be written.

        The snapshot is taken under the controller's lock and numbered; the file is
        written under the save lock, and a snapshot older than the one already on
        disk is dropped: concurrent saves never interleave, the file always ends
        with the newest state (a lease granted is a lease on disk), and the safety
        loop never waits behind a queue of disk writes.
        """
        if self.state_file is None:
            return
        with self._lock:
            now = self.now()
            self._save_seq += 1
            seq = self._save_seq
            data = {
                "version": 1,
                "saved": now.isoformat(),
                "state": self.state,
                "locked": self.locked,
                "lock_reason": self.lock_reason,
                "lock_since": self.lock_since.isoformat() if self.lock_since else None,
                "last_unsafe": self.last_unsafe.isoformat() if self.last_unsafe else None,
                "reopen_at": self.reopen_at.isoformat() if self.reopen_at else None,
                "close_wanted": self._close_wanted or (("interrupted close: " + str(self._action.params.get("reason"))) if self._action is not None and self._action.kind == "close" and not self._action.done else None),
                "leases": [lease.to_dict() for lease in self.leases.active()],
                **self.journal.dump(),
            }
        with self._save_lock:
            if seq < self._saved_seq:
                return  # a newer state is already on disk
            try:
                atomic_write_json(self.state_file, data)  # a power cut leaves the old file or the new one
                self._saved_seq = seq
            except OSError as exc:
                log.error("cannot save the dome state to %s: %s", self.state_file, exc)
                self.journal.raise_alarm(now, "state_save", f"cannot save the dome state to {self.state_file}: {exc}")
                return
        if "state_save" in self.journal.active_codes():
            self.journal.clear_alarm(now, "state_save", "the state file is written again")
            self._save_state()  # with the cleared alarm

    def _load_state(self) -> None:
        if self.state_file is None or not self.state_file.exists():
            return
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
            self.journal.load(data)
            self.locked = bool(data.get("locked"))
            self.lock_reason = data.get("lock_reason") or ""
            self.lock_since = datetime.fromisoformat(data["lock_since"]) if data.get("lock_since") else None
            self.last_unsafe = datetime.fromisoformat(data["last_unsafe"]) if data.get("last_unsafe") else None
            self.reopen_at = datetime.fromisoformat(data["reopen_at"]) if data.get("reopen_at") else None
            self._close_wanted = data.get("close_wanted")
            self.leases.restore([Lease.from_dict(lease) for lease in data.get("leases") or []])
            self._persisted = data
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # A damaged file must not stop the safety authority: start from what the devices say.
            log.error("dome state file %s unreadable (%s): starting without it", self.state_file, exc)
            self._persisted = {"error": str(exc)}
