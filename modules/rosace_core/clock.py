"""The observatory clock: real time, or a simulated clock shared by all processes.

A simulated clock is an instant in simulated time (``start``) tied to a wall
clock instant (``wall_epoch``, Unix seconds) and a ``rate`` (simulated seconds per
wall second). Every process of a run builds the same clock from the same three
numbers, passed in the environment variable ``ROSACE_CLOCK`` as
``sim:<ISO start>@<wall_epoch>x<rate>``, so every module agrees on "now".

A run whose processes take a while to come up can hold the clock at its start
until they are all ready: ``sim:<ISO start>@file:<path>x<rate>`` names a file
that will hold the wall epoch. Until it exists the clock stands still at
``start``; the process that starts the run writes it (:func:`release`) once
every process answers, and from then on every process's clock runs from that
same instant.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

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
    to wall seconds, for timeouts. With ``epoch_file`` the wall epoch is read from
    that file, and the clock is held at ``start`` until the file exists.
    """

    start: datetime | None = None
    wall_epoch: float = 0.0
    rate: float = 1.0
    epoch_file: str | None = None
    _state: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

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
    def held(cls, start: datetime | str, rate: float, epoch_file: Path | str) -> "Clock":
        """Return a simulated clock held at ``start`` until ``epoch_file`` holds its wall epoch (see :func:`release`)."""
        clock = cls.simulated(start, rate, wall_epoch=0.0)
        return cls(start=clock.start, wall_epoch=0.0, rate=clock.rate, epoch_file=str(epoch_file))

    @classmethod
    def parse(cls, text: str) -> "Clock":
        """Build a clock from its ``ROSACE_CLOCK`` form (``real`` or ``sim:START@EPOCHxRATE``)."""
        text = text.strip()
        if text in ("", "real"):
            return cls.real()
        if not text.startswith("sim:"):
            raise ValueError(f"{ENV_VAR}: expected 'real' or 'sim:START@EPOCHxRATE', got {text!r}")
        body = text[4:]
        start, _, rest = body.partition("@")  # an ISO instant has no '@', a rate no 'x'
        epoch, _, rate = rest.rpartition("x") if "x" in rest else (rest, "", "")
        if epoch.startswith("file:"):
            return cls.held(_parse_iso(start), float(rate or 1.0), epoch[5:])
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
        if self.epoch_file is not None:
            return f"sim:{self.start.isoformat()}@file:{self.epoch_file}x{self.rate!r}"
        return f"sim:{self.start.isoformat()}@{self.wall_epoch!r}x{self.rate!r}"

    def epoch(self) -> float | None:
        """The wall instant (Unix s) at which the clock reads ``start``; None while a held clock waits."""
        if self.epoch_file is None:
            return self.wall_epoch
        value = self._state.get("epoch")
        if value is not None:
            return value
        checked = time.monotonic()
        if checked - self._state.get("checked", -1.0) < 0.05:  # one look at the file every 50 ms at most
            return None
        self._state["checked"] = checked
        try:
            value = float(Path(self.epoch_file).read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None
        self._state["epoch"] = value
        return value

    @property
    def running(self) -> bool:
        """False while a held clock waits for its release."""
        return self.epoch() is not None

    def at_wall(self, wall: float) -> datetime:
        """The clock's reading at wall instant ``wall`` (Unix s); a held clock reads ``start``."""
        if self.start is None:
            return datetime.fromtimestamp(wall, timezone.utc)
        epoch = self.epoch()
        if epoch is None:
            return self.start
        return self.start + timedelta(seconds=(wall - epoch) * self.rate)

    def now(self) -> datetime:
        """Return the current instant (aware, UTC)."""
        return self.at_wall(time.time())

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


def release(epoch_file: Path | str, wall_epoch: float | None = None) -> float:
    """Start every held clock waiting on ``epoch_file``: they read their start at ``wall_epoch`` (default now)."""
    value = time.time() if wall_epoch is None else float(wall_epoch)
    path = Path(epoch_file)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(repr(value), encoding="utf-8")
    os.replace(tmp, path)  # atomic: a reader sees no file or the whole number
    return value


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
