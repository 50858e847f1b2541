"""Fixtures of the dome tests: small in-memory devices (unit tests) and a fast clock.

The fakes implement the same methods as the rosace_core.alpaca adapters the
dome module uses; the integration tests use the simulated observatory instead.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from rosace_core.alpaca import Reading, ShutterState
from rosace_core.clock import Clock, get_clock, set_clock
from rosace_core.errors import DeviceError, DeviceNotConnected

#: A winter night at the default site (43.75 N): the sun is far below the horizon.
NIGHT = datetime(2026, 1, 15, 22, 0, tzinfo=timezone.utc)


class FakeDevice:
    def __init__(self):
        self.disconnected = False
        self.calls: list[tuple[float, str]] = []

    def _touch(self, what: str):
        self.calls.append((time.time(), what))
        if self.disconnected:
            raise DeviceNotConnected(self.__class__.__name__, f"{what}: not connected")

    def connect(self, timeout: float = 30.0):
        if self.disconnected:
            raise DeviceNotConnected(self.__class__.__name__, "connect: refused")
        self.is_connected = True

    is_connected = True

    @property
    def connected(self) -> bool:
        self._touch("connected")
        return self.is_connected


class FakeDome(FakeDevice):
    """A roof whose moves take ``move_time`` clock seconds (or never end when ``stuck``)."""

    def __init__(self, state: str = "closed", move_time: float = 20.0):
        super().__init__()
        self._state = ShutterState(state)
        self._target: ShutterState | None = None
        self._end: datetime | None = None
        self.move_time = move_time
        self.stuck = False
        self.az = 0.0
        self.slews: list[float] = []

    @property
    def shutter(self) -> ShutterState:
        self._touch("shutter")
        if self._target is not None and not self.stuck and get_clock().now() >= self._end:
            self._state, self._target = self._target, None
        return self._state

    def _move(self, target: ShutterState, moving: ShutterState):
        self._state, self._target = moving, target
        self._end = get_clock().now() + timedelta(seconds=self.move_time)

    def open_shutter(self):
        self._touch("open_shutter")
        self._move(ShutterState.OPEN, ShutterState.OPENING)

    def close_shutter(self):
        self._touch("close_shutter")
        self._move(ShutterState.CLOSED, ShutterState.CLOSING)

    def abort(self):
        self._touch("abort")
        self._target = None

    @property
    def azimuth(self):
        self._touch("azimuth")
        return self.az

    @property
    def slewing(self):
        return False

    def slew_to_azimuth(self, az):
        self._touch("slew")
        self.slews.append(az)
        self.az = az

    def park(self):
        self._touch("park")

    def find_home(self):
        self._touch("home")


class FakeTelescope(FakeDevice):
    def __init__(self, at_park: bool = True, park_time: float = 10.0):
        super().__init__()
        self._at_park = at_park
        self._park_end: datetime | None = None
        self.park_time = park_time
        self.park_fails = False
        self.ra, self.dec, self.sidereal_time, self.side_of_pier = 0.0, 0.0, 0.0, -1

    @property
    def at_park(self) -> bool:
        self._touch("at_park")
        if self._park_end is not None and not self.park_fails and get_clock().now() >= self._park_end:
            self._at_park, self._park_end = True, None
        return self._at_park

    def park(self):
        self._touch("park")
        if self.park_fails:
            raise DeviceError("mount", "park: motor fault")
        self._park_end = get_clock().now() + timedelta(seconds=self.park_time)

    def unpark(self):
        self._at_park = False


class FakeMonitor(FakeDevice):
    def __init__(self):
        super().__init__()
        self.safe = True

    @property
    def is_safe(self) -> bool:
        self._touch("is_safe")
        return self.safe and self.is_connected  # ASCOM: false while not connected


class FakeConditions(FakeDevice):
    def __init__(self):
        super().__init__()
        self.values = {"cloud_cover": 10.0, "rain_rate": 0.0, "wind_speed": 3.0, "humidity": 60.0}
        self.ages = {k: 5.0 for k in self.values}

    def reading(self, name: str) -> Reading:
        self._touch(f"reading {name}")
        return Reading(name, self.values.get(name), self.ages.get(name))


@pytest.fixture
def fast_clock():
    """A simulated clock at 100x starting at night; the previous clock is restored after."""
    before = get_clock()
    clock = Clock.simulated(NIGHT, rate=100.0)
    set_clock(clock)
    yield clock
    set_clock(before)


@pytest.fixture
def fakes():
    """A fresh set of fake devices (dome, telescope, safety monitor, weather station)."""
    from rosace_dome.shelter import ShelterDevices

    return ShelterDevices(dome=FakeDome(), telescope=FakeTelescope(), safety_monitor=FakeMonitor(), conditions=FakeConditions())


def wait_for(predicate, timeout: float = 10.0, step: float = 0.01):
    """Poll ``predicate`` (wall seconds) until true; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


@pytest.fixture
def waiter():
    return wait_for


@pytest.fixture(autouse=True)
def _earth_orientation_loaded(earth_orientation):
    """The IERS table loaded before the first verdict (its sun altitude), as the served dome does at start-up.

    Read by the first verdict instead, it took longer than the tests' waits on a loaded machine.
    """
