"""The dome's event log and alarms.

Every state change goes into the event log with its reason and time (clock
time); alarms are the events somebody must look at. An alarm is raised once per
condition (same code) until it clears, so a stuck roof does not flood the
operator, and each new alarm may call the configured hook (a program or a URL)
in the background so that a slow hook never delays the safety loop.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shlex
import subprocess
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

log = logging.getLogger(__name__)


@dataclass
class Event:
    """One entry of the event log."""

    seq: int
    time: datetime
    kind: str
    message: str
    data: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"seq": self.seq, "time": self.time.isoformat(), "kind": self.kind, "message": self.message, "data": self.data}

    @classmethod
    def from_dict(cls, d: dict) -> "Event":
        return cls(int(d["seq"]), datetime.fromisoformat(d["time"]), d["kind"], d["message"], d.get("data") or {})


@dataclass
class Alarm:
    """A condition an operator must know about; ``active`` until it clears."""

    id: int
    code: str
    message: str
    raised: datetime
    active: bool = True
    cleared: datetime | None = None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "code": self.code,
            "message": self.message,
            "raised": self.raised.isoformat(),
            "active": self.active,
            "cleared": self.cleared.isoformat() if self.cleared else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Alarm":
        return cls(int(d["id"]), d["code"], d["message"], datetime.fromisoformat(d["raised"]), bool(d.get("active", True)), datetime.fromisoformat(d["cleared"]) if d.get("cleared") else None)


class Journal:
    """Event log (last ``keep`` events) plus alarms; thread-safe."""

    def __init__(self, keep: int = 2000, alarm_command: list[str] | str | None = None, alarm_url: str | None = None):
        self._events: deque[Event] = deque(maxlen=keep)
        self._alarms: list[Alarm] = []
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._alarm_ids = itertools.count(1)
        self.alarm_command = alarm_command
        self.alarm_url = alarm_url
        self.listeners: list = []

    def record(self, when: datetime, kind: str, message: str, **data) -> Event:
        """Append an event; return it."""
        with self._lock:
            event = Event(next(self._seq), when, kind, message, data)
            self._events.append(event)
        log.info("%s: %s", kind, message)
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # a listener must never break the safety loop
                log.exception("event listener failed")
        return event

    def events(self, since: int = 0, limit: int = 200, kind: str | None = None) -> list[Event]:
        """Events with ``seq > since`` (oldest first), at most ``limit`` of the newest."""
        with self._lock:
            found = [e for e in self._events if e.seq > since and (kind is None or e.kind == kind)]
        return found[-limit:] if limit else found

    def raise_alarm(self, when: datetime, code: str, message: str) -> Alarm | None:
        """Raise an alarm unless one with this code is active; return the new alarm or None."""
        with self._lock:
            for alarm in self._alarms:
                if alarm.active and alarm.code == code:
                    alarm.message = message
                    return None
            alarm = Alarm(next(self._alarm_ids), code, message, when)
            self._alarms.append(alarm)
            # Keep every active alarm but only the last 50 cleared ones.
            cleared = [a for a in self._alarms if not a.active]
            if len(cleared) > 50:
                drop = {a.id for a in cleared[: len(cleared) - 50]}
                self._alarms = [a for a in self._alarms if a.id not in drop]
        self.record(when, "alarm", message, code=code, alarm=alarm.id)
        self._call_hook(alarm)
        return alarm

    def clear_alarm(self, when: datetime, code: str, why: str = "") -> bool:
        """Clear the active alarm with this code (prefix match when ``code`` ends with ':'); True if one was."""
        cleared = []
        with self._lock:
            for alarm in self._alarms:
                if alarm.active and (alarm.code == code or (code.endswith(":") and alarm.code.startswith(code))):
                    alarm.active = False
                    alarm.cleared = when
                    cleared.append(alarm)
        for alarm in cleared:
            self.record(when, "alarm_cleared", f"alarm cleared: {alarm.message}" + (f" ({why})" if why else ""), code=alarm.code, alarm=alarm.id)
        return bool(cleared)

    def acknowledge(self, when: datetime) -> int:
        """Forget the cleared alarms and clear the active ones by hand; return how many were active."""
        active = [a.code for a in self.alarms() if a.active]
        for code in active:
            self.clear_alarm(when, code, "acknowledged by the operator")
        with self._lock:
            self._alarms = [a for a in self._alarms if a.active]
        return len(active)

    def alarms(self) -> list[Alarm]:
        with self._lock:
            return list(self._alarms)

    def active_codes(self) -> set[str]:
        with self._lock:
            return {a.code for a in self._alarms if a.active}

    def dump(self, events: int = 300) -> dict:
        with self._lock:
            return {"events": [e.to_dict() for e in list(self._events)[-events:]], "alarms": [a.to_dict() for a in self._alarms]}

    def load(self, data: dict) -> None:
        events = [Event.from_dict(e) for e in data.get("events") or []]
        alarms = [Alarm.from_dict(a) for a in data.get("alarms") or []]
        with self._lock:
            self._events.extend(events)
            self._alarms = alarms
            self._seq = itertools.count(max([e.seq for e in events], default=0) + 1)
            self._alarm_ids = itertools.count(max([a.id for a in alarms], default=0) + 1)

    def _call_hook(self, alarm: Alarm) -> None:
        if not self.alarm_command and not self.alarm_url:
            return
        threading.Thread(target=self._run_hook, args=(alarm,), name="dome-alarm-hook", daemon=True).start()

    def _run_hook(self, alarm: Alarm) -> None:
        payload = {"module": "dome", **alarm.to_dict()}
        if self.alarm_command:
            cmd = self.alarm_command
            if isinstance(cmd, str):
                cmd = shlex.split(cmd, posix=os.name != "nt")
            env = {**os.environ, "ROSACE_ALARM_CODE": alarm.code, "ROSACE_ALARM_MESSAGE": alarm.message, "ROSACE_ALARM_TIME": alarm.raised.isoformat(), "ROSACE_ALARM_JSON": json.dumps(payload)}
            try:
                subprocess.run(list(cmd), env=env, timeout=60, check=False, capture_output=True)
            except (OSError, subprocess.SubprocessError) as exc:
                log.error("alarm command %s failed: %s", cmd, exc)
        if self.alarm_url:
            import requests

            try:
                requests.post(self.alarm_url, json=payload, timeout=10)
            except requests.RequestException as exc:
                log.error("alarm URL %s failed: %s", self.alarm_url, exc)
