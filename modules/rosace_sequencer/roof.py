"""The roof and the safety verdict, seen by the sequencer.

A :class:`RoofGuard` answers three questions: may I observe now (``acquire``),
is it still safe (``is_safe``), and I am done (``release``). Two implementations:

- :class:`DomeLeaseGuard`: the dome module over REST. The sequencer holds a roof
  lease, renewed at half-life; the dome keeps the roof open while the lease lives
  and the weather is safe, and closes it on its own when either ends. The
  sequencer never closes the roof itself: the dome module is the safety authority.
  When the dome module does not answer, the sequencer reads the SafetyMonitor
  itself: unsafe or unreadable, or the dome still silent after
  ``failures_allowed`` tries, it stops observing and parks the mount (the
  interrupted observation goes back to the scheduler); the guardian process
  closes the roof.
- :class:`SafetyMonitorGuard`: no dome module ("each module works alone"): the roof is
  assumed open (or absent) and the verdict comes from the Alpaca SafetyMonitor.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from rosace_core.clock import get_clock, now
from rosace_core.errors import ConflictError, DeviceError, DeviceNotConnected, NotFoundError, RosaceError

from rosace_sequencer.hardware import Control, Unsafe

log = logging.getLogger(__name__)


class RoofGuard(Protocol):
    """What the sequencer needs from the roof and the safety authority."""

    def acquire(self, control: Control) -> None:
        """Make sure the roof is open and safe to observe; raise Unsafe otherwise."""

    def keep_alive(self) -> None:
        """Renew whatever keeps the roof open (cheap when nothing is due)."""

    def is_safe(self) -> bool:
        """Return False as soon as observing must stop."""

    def sky_ok(self) -> bool:
        """Return True when conditions would let the roof open (checked before asking for a target)."""

    def release(self) -> None:
        """Say the sequencer no longer needs the roof open."""


class SafetyMonitorGuard:
    """No dome module: the Alpaca SafetyMonitor alone says whether it is safe."""

    def __init__(self, safety_monitor, *, failures_allowed: int = 2):
        self.monitor = safety_monitor
        self.failures_allowed = failures_allowed
        self._failures = 0
        self._connected = False

    def _connect(self) -> None:
        # ASCOM: a monitor not connected reports unsafe, so connect before asking
        if not self._connected:
            self.monitor.connect(timeout=10.0)
            self._connected = True

    def sky_ok(self) -> bool:
        """True when it is safe to observe (the SafetyMonitor alone decides)."""
        try:
            self._connect()
        except DeviceError as exc:
            log.warning("safety monitor unreachable: %s", exc)
            return False
        return self.is_safe()

    def is_safe(self) -> bool:
        try:
            safe = self.monitor.is_safe
            self._failures = 0
            return safe
        except DeviceError as exc:
            # A monitor that stops answering must end up meaning "unsafe", but one lost
            # reply should not abort a long exposure.
            self._failures += 1
            log.warning("safety monitor unreadable (%s), %d in a row", exc, self._failures)
            return self._failures <= self.failures_allowed

    def acquire(self, control: Control) -> None:
        try:
            self._connect()
        except DeviceError as exc:
            raise Unsafe(f"safety monitor unreachable: {exc}") from None
        if not self.is_safe():
            raise Unsafe("the safety monitor says unsafe")

    def keep_alive(self) -> None:
        return None

    def release(self) -> None:
        return None


class DomeLeaseGuard:
    """The dome module over REST: a roof lease plus the dome's safety verdict."""

    def __init__(self, client, *, holder: str = "sequencer", duration: float = 600.0, open_timeout: float = 600.0,
                 failures_allowed: int = 2, safety_monitor=None, park=None, status_timeout: float = 3.0):
        self.client = client
        self.safety_monitor = safety_monitor  # read directly when the dome module is unreachable
        self.park = park  # callable parking the mount, run when the dome module is unreachable
        self.status_timeout = status_timeout  # wall seconds: a hung dome module is noticed quickly
        self._parking: threading.Thread | None = None
        self.holder = holder
        self.duration = duration
        self.open_timeout = open_timeout
        self.failures_allowed = failures_allowed
        self.lease_id: str | None = None
        self._renewed = 0.0  # wall time of the last renewal
        self._failures = 0
        self.last_status: dict = {}
        self._lease_lock = threading.RLock()
        self._heartbeat: threading.Thread | None = None
        self._stop_heartbeat = threading.Event()

    def _start_heartbeat(self) -> None:
        """Renew the lease from a thread while it is held.

        Steps such as camera cooling or a long exposure do not pass through the
        sequence's check points for minutes; without this the lease would run out
        and the dome would park the mount under a running acquisition. If the
        process dies, the thread dies with it and the lease expires as it should.
        """
        if self._heartbeat is not None and self._heartbeat.is_alive():
            return
        self._stop_heartbeat.clear()

        def beat():
            while not self._stop_heartbeat.wait(max(0.05, get_clock().wall(self.duration) / 4.0)):
                if self.lease_id is not None:
                    self.keep_alive()

        self._heartbeat = threading.Thread(target=beat, name="roof-lease-heartbeat", daemon=True)
        self._heartbeat.start()

    def _status(self) -> dict:
        self.last_status = self.client.get("/status", timeout=self.status_timeout) or {}
        return self.last_status

    def _monitor_says(self) -> bool | None:
        """The SafetyMonitor read directly: True/False, or None when it cannot be read."""
        if self.safety_monitor is None:
            return None
        try:
            try:
                safe = self.safety_monitor.is_safe
            except DeviceNotConnected:
                self.safety_monitor.connect(timeout=5.0)
                safe = self.safety_monitor.is_safe
            if safe is False and self.safety_monitor.connected is False:
                # ASCOM: false while not connected; connect and ask again
                self.safety_monitor.connect(timeout=5.0)
                safe = self.safety_monitor.is_safe
            return bool(safe)
        except DeviceError as exc:
            log.warning("safety monitor unreadable too: %s", exc)
            return None

    def _park_without_dome(self, why: str) -> None:
        """Park the mount from a thread (the exposure is aborted meanwhile); once at a time."""
        if self.park is None or (self._parking is not None and self._parking.is_alive()):
            return
        log.warning("dome module unreachable (%s): stopping and parking the mount", why)

        def run():
            try:
                self.park()
            except Exception as exc:  # logged; the guardian still closes the roof
                log.error("park without the dome module failed: %s", exc)

        self._parking = threading.Thread(target=run, name="park-without-dome", daemon=True)
        self._parking.start()

    @staticmethod
    def _open_and_safe(status: dict) -> bool:
        return bool(status.get("safe")) and (status.get("shelter") or {}).get("state") == "open"

    def sky_ok(self) -> bool:
        """True when the dome module would let the roof open (or it is open): safe, not locked, no re-open delay."""
        try:
            status = self._status()
        except RosaceError:
            return False
        if self._open_and_safe(status):
            return True
        if not status.get("safe") or status.get("maintenance"):
            return False
        reopen_at = status.get("reopen_at")
        if reopen_at:
            from datetime import datetime

            try:
                return datetime.fromisoformat(str(reopen_at).replace("Z", "+00:00")) <= now()
            except ValueError:
                return True
        return True

    def is_safe(self) -> bool:
        try:
            status = self._status()
            self._failures = 0
        except RosaceError as exc:
            self._failures += 1
            log.warning("dome module unreachable (%s), %d in a row", exc, self._failures)
            # No safety authority: ask the sky ourselves. Only a SafetyMonitor that says
            # "safe" lets one lost reply pass; unsafe, unreadable or a dome that stays
            # silent stops the observation and parks.
            monitor = self._monitor_says()
            if monitor is True and self._failures <= self.failures_allowed:
                return True
            why = f"{exc}; safety monitor {'says unsafe' if monitor is False else 'unreadable' if monitor is None and self.safety_monitor is not None else 'says safe'}"
            self._park_without_dome(why)
            return False
        return self._open_and_safe(status)

    def _take_lease(self) -> None:
        with self._lease_lock:
            lease = self.client.post("/leases", {"holder": self.holder, "duration": self.duration})
            self.lease_id = str(lease["id"])
            self._renewed = time.monotonic()
        self._start_heartbeat()

    def acquire(self, control: Control) -> None:
        try:
            if self.lease_id is None:
                self._take_lease()
            else:
                self.keep_alive(force=True)
            status = self._status()
            if self._open_and_safe(status):
                return
            if not status.get("safe"):
                reasons = (status.get("verdict") or {}).get("reasons") or []
                raise Unsafe("the dome module says unsafe" + (f": {'; '.join(reasons)}" if reasons else ""))
            if (status.get("shelter") or {}).get("state") not in ("opening",):
                self.client.post("/open", {})
        except ConflictError as exc:
            raise Unsafe(f"the dome refuses to open: {exc}" + (f" ({'; '.join(exc.reasons)})" if exc.reasons else "")) from None
        except Unsafe:
            raise
        except RosaceError as exc:
            raise Unsafe(f"dome module: {exc}") from None
        clock = get_clock()
        deadline = time.monotonic() + clock.wall(self.open_timeout)
        while True:
            control.wait(5.0)
            try:
                status = self._status()
            except RosaceError as exc:
                raise Unsafe(f"dome module: {exc}") from None
            if self._open_and_safe(status):
                return
            state = (status.get("shelter") or {}).get("state")
            if not status.get("safe") or state in ("closing", "closed", "error"):
                if state != "closed" or not status.get("safe"):
                    raise Unsafe(f"roof did not open (state {state}, safe {status.get('safe')})")
            if time.monotonic() > deadline:
                raise Unsafe(f"roof not open after {self.open_timeout:.0f} s (state {state})")

    def keep_alive(self, force: bool = False) -> None:
        with self._lease_lock:
            self._keep_alive(force)

    def _keep_alive(self, force: bool = False) -> None:
        if self.lease_id is None:
            return
        half_life = get_clock().wall(self.duration) / 2.0
        if not force and time.monotonic() - self._renewed < half_life:
            return
        try:
            self.client.put(f"/leases/{self.lease_id}", {"duration": self.duration})
            self._renewed = time.monotonic()
        except NotFoundError:
            log.warning("roof lease %s expired; taking a new one", self.lease_id)
            self._take_lease()
        except RosaceError as exc:
            log.warning("could not renew the roof lease: %s", exc)

    def release(self) -> None:
        self._stop_heartbeat.set()
        with self._lease_lock:
            self._release()

    def _release(self) -> None:
        if self.lease_id is None:
            return
        try:
            self.client.delete(f"/leases/{self.lease_id}")
        except NotFoundError:
            pass
        except RosaceError as exc:
            log.warning("could not release the roof lease (it will expire by itself): %s", exc)
        self.lease_id = None
