"""Faults: scheduled in the scenario or injected live, each active for a while.

Kinds: ``disconnect`` (the device drops its connection and refuses to reconnect),
``timeout`` (the HTTP answer is held back far beyond a client's timeout),
``slow`` (every answer takes a couple of seconds), ``error`` (every call answers an
ASCOM driver error 0x500), ``stuck_shutter`` (the dome shutter stalls),
``park_fail`` (the mount stops short of its park position), ``stale`` (the
weather station stops measuring, so readings age honestly).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rosace_core.clock import get_clock

_ids = itertools.count(1)


@dataclass
class Fault:
    """One fault: on ``device`` number ``device_number`` from ``start`` for ``duration`` simulated seconds."""

    device: str
    kind: str
    device_number: int = 0
    start: datetime | None = None
    duration: float | None = None
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def end(self) -> datetime | None:
        if self.duration is None or self.start is None:
            return None
        return self.start + timedelta(seconds=self.duration)

    def active_at(self, when: datetime) -> bool:
        if self.start is not None and when < self.start:
            return False
        end = self.end
        return end is None or when < end

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "device": self.device,
            "device_number": self.device_number,
            "kind": self.kind,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "duration": self.duration,
        }


class FaultBook:
    """The faults of a run; thread-safe."""

    def __init__(self, faults: list[Fault] | None = None):
        self._lock = threading.Lock()
        self._faults: list[Fault] = list(faults or [])

    def add(self, fault: Fault) -> Fault:
        if fault.start is None:
            fault.start = get_clock().now()
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self, device: str | None = None, device_number: int | None = None) -> int:
        """Remove faults (all, or those of one device); return how many."""
        with self._lock:
            keep = [f for f in self._faults if (device and f.device != device) or (device_number is not None and f.device_number != device_number)]
            removed = len(self._faults) - len(keep)
            self._faults = keep
        return removed

    def active(self, device: str, device_number: int, kind: str, when: datetime | None = None) -> Fault | None:
        when = when or get_clock().now()
        with self._lock:
            for f in self._faults:
                if f.device == device and f.device_number == device_number and f.kind == kind and f.active_at(when):
                    return f
        return None

    def first_start(self, device: str, device_number: int, kind: str) -> datetime | None:
        """Start of the currently active fault of that kind (for 'since when')."""
        f = self.active(device, device_number, kind)
        return f.start if f else None

    def all(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def to_list(self, active_only: bool = False) -> list[dict]:
        when = get_clock().now()
        return [dict(f.to_dict(), active=f.active_at(when)) for f in self.all() if not active_only or f.active_at(when)]
