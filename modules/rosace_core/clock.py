"""The observatory clock: real time, or a simulated clock shared by all processes.

A simulated clock is an instant in simulated time (``start``) tied to a wall
clock instant (``wall_epoch``, Unix seconds) and a ``rate`` (simulated seconds per
wall second). Every process of a run builds the same clock from the same three
numbers, passed in the environment variable ``ROSACE_CLOCK`` as
``sim:<ISO start>@<wall_epoch>x<rate>``, so every module agrees on "now".
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

ENV_VAR = "ROSACE_CLOCK"


def _parse_iso(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


@dataclass(frozen=True)
class Clock:
    """A clock; ``start=None`` means the real UTC clock.

    ``now()`` returns an aware UTC datetime; ``sleep(s)`` waits ``s`` simulated
    seconds (``s / rate`` wall seconds); ``wall(s)`` converts simulated seconds
    to wall seconds, for timeouts.
    """

    start: datetime | None = None
    wall_epoch: float = 0.0
    rate: float = 1.0

    @classmethod
    def real(cls) -> "Clock":
        """Return the real clock."""
        return cls()

    @classmethod
    def simulated(cls, start: datetime | str, rate: float = 1.0, wall_epoch: float | None = None) -> "Clock":
        """Return a simulated clock starting now (or at ``wall_epoch``) at ``start``."""
        if isinstance(start, str):
            start = _parse_iso(start)
        if rate <= 0:
            raise ValueError("clock rate must be positive")
        return cls(start=start.astimezone(timezone.utc), wall_epoch=time.time() if wall_epoch is None else wall_epoch, rate=float(rate))

    @classmethod
    def parse(cls, text: str) -> "Clock":
        """Build a clock from its ``ROSACE_CLOCK`` form (``real`` or ``sim:START@EPOCHxRATE``)."""
        text = text.strip()
        if text in ("", "real"):
            return cls.real()
        if not text.startswith("sim:"):
            raise ValueError(f"{ENV_VAR}: expected 'real' or 'sim:START@EPOCHxRATE', got {text!r}")
        body = text[4:]
        start, _, rest = body.rpartition("@")
        epoch, _, rate = rest.partition("x")
        return cls.simulated(_parse_iso(start), float(rate or 1.0), float(epoch))

    @classmethod
    def from_env(cls) -> "Clock":
        """Return the clock named in ``ROSACE_CLOCK``, or the real clock."""
        return cls.parse(os.environ.get(ENV_VAR, "real"))

    @property
    def is_simulated(self) -> bool:
        return self.start is not None

    def spec(self) -> str:
        """Return the ``ROSACE_CLOCK`` text that rebuilds this clock in another process."""
        if self.start is None:
            return "real"
        return f"sim:{self.start.isoformat()}@{self.wall_epoch!r}x{self.rate!r}"

    def now(self) -> datetime:
        """Return the current instant (aware, UTC)."""
        if self.start is None:
            return datetime.now(timezone.utc)
        return self.start + timedelta(seconds=(time.time() - self.wall_epoch) * self.rate)

    def timestamp(self) -> float:
        """Return the current instant as Unix seconds."""
        return self.now().timestamp()

    def now_time(self):
        """Return the current instant as an astropy ``Time``."""
        from astropy.time import Time

        return Time(self.now())

    def wall(self, sim_seconds: float) -> float:
        """Convert a duration in simulated seconds to wall seconds."""
        return sim_seconds / self.rate

    def sleep(self, sim_seconds: float, stop: threading.Event | None = None) -> bool:
        """Wait ``sim_seconds`` of clock time; return True early if ``stop`` is set."""
        wall = max(0.0, self.wall(sim_seconds))
        if stop is not None:
            return stop.wait(wall)
        time.sleep(wall)
        return False


_current: Clock | None = None


def get_clock() -> Clock:
    """Return the process-wide clock (from ``ROSACE_CLOCK`` on first use)."""
    global _current
    if _current is None:
        _current = Clock.from_env()
    return _current


def set_clock(clock: Clock) -> None:
    """Set the process-wide clock (and export it to child processes)."""
    global _current
    _current = clock
    os.environ[ENV_VAR] = clock.spec()


def now() -> datetime:
    """Return the current instant from the process-wide clock."""
    return get_clock().now()
