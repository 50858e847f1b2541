"""Leases: the dead-man switch of whoever wants the roof open.

A client (the sequencer) takes a lease for a few minutes and renews it while it
works. If it crashes or loses the network its lease runs out, and when the last
lease has run out the dome parks the mount and closes. Expiry is in observatory
clock time.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rosace_core.errors import NotFoundError, RosaceError


class LeaseError(RosaceError):
    """A lease request is out of bounds (e.g. longer than the allowed maximum)."""


@dataclass
class Lease:
    """One holder's request to keep the roof open until ``expires``."""

    id: str
    holder: str
    acquired: datetime
    expires: datetime

    def to_dict(self, now: datetime | None = None) -> dict:
        data: dict[str, Any] = {"id": self.id, "holder": self.holder, "acquired": self.acquired.isoformat(), "expires": self.expires.isoformat()}
        if now is not None:
            data["remaining"] = round(max(0.0, (self.expires - now).total_seconds()), 1)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Lease":
        return cls(data["id"], data["holder"], datetime.fromisoformat(data["acquired"]), datetime.fromisoformat(data["expires"]))


class LeaseBook:
    """The current leases; thread-safe."""

    def __init__(self, max_duration: float):
        self.max_duration = max_duration
        self._leases: dict[str, Lease] = {}
        self._lock = threading.Lock()

    def _check(self, duration: float) -> None:
        if not duration > 0:
            raise LeaseError("lease duration must be positive")
        if duration > self.max_duration:
            raise LeaseError(f"lease duration {duration:g} s exceeds the maximum of {self.max_duration:g} s")

    def acquire(self, holder: str, duration: float, now: datetime) -> Lease:
        """Grant a new lease of ``duration`` seconds; raise LeaseError if out of bounds."""
        self._check(duration)
        lease = Lease(uuid.uuid4().hex[:12], holder, now, now + timedelta(seconds=duration))
        with self._lock:
            self._leases[lease.id] = lease
        return lease

    def renew(self, lease_id: str, duration: float, now: datetime) -> Lease:
        """Extend a live lease to ``now + duration``; NotFoundError if unknown or already expired."""
        self._check(duration)
        with self._lock:
            lease = self._leases.get(lease_id)
            if lease is None or lease.expires <= now:
                raise NotFoundError(f"no live lease {lease_id!r} (it expired or was released)")
            lease.expires = now + timedelta(seconds=duration)
            return lease

    def release(self, lease_id: str) -> Lease:
        """Give a lease back; NotFoundError if unknown."""
        with self._lock:
            lease = self._leases.pop(lease_id, None)
        if lease is None:
            raise NotFoundError(f"no lease {lease_id!r}")
        return lease

    def expire(self, now: datetime) -> list[Lease]:
        """Remove and return the leases that have run out at ``now``."""
        with self._lock:
            gone = [lease for lease in self._leases.values() if lease.expires <= now]
            for lease in gone:
                del self._leases[lease.id]
        return gone

    def active(self) -> list[Lease]:
        with self._lock:
            return sorted(self._leases.values(), key=lambda lease: lease.expires)

    def restore(self, leases: list[Lease]) -> None:
        with self._lock:
            self._leases = {lease.id: lease for lease in leases}
