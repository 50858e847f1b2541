"""The safety verdict: is it safe to have the shelter open, and if not, why.

:func:`evaluate` is a pure function of what the safety loop read (SafetyMonitor,
ObservingConditions readings with their ages, the sun's altitude, the
maintenance lock) and the configured limits. Anything that could not be read
counts as unsafe, with the reason: the absence of bad news is not good news.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime

from rosace_dome.settings import DomeSettings

#: Reason categories. Only WEATHER reasons start the re-open delay: the sun
#: setting or a lock being lifted says nothing about the sky staying clear.
WEATHER = "weather"
SUN = "sun"
MAINTENANCE = "maintenance"


@dataclass(frozen=True)
class Reason:
    """Why the verdict is unsafe: a stable ``code``, words for the operator, a category."""

    code: str
    text: str
    category: str = WEATHER


@dataclass
class SensorReport:
    """One sensor as the status shows it: value, limit, age and whether it passes."""

    name: str
    value: float | bool | None
    unit: str = ""
    min: float | None = None
    max: float | None = None
    max_age: float | None = None
    age: float | None = None
    ok: bool = False
    reason: str = ""

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "limit": {"min": self.min, "max": self.max},
            "max_age": self.max_age,
            "age": self.age,
            "ok": self.ok,
            "reason": self.reason,
        }


@dataclass
class SafetyInputs:
    """What one pass of the safety loop read. An exception stands for a failed read."""

    monitor: bool | BaseException | None = None
    readings: dict = field(default_factory=dict)  # name -> rosace_core.alpaca.Reading | BaseException
    sun_altitude: float | BaseException | None = None
    locked: bool = False
    lock_reason: str = ""


@dataclass
class Verdict:
    """The safety verdict with every reason and every sensor behind it."""

    safe: bool
    reasons: list[Reason]
    sensors: list[SensorReport]
    checked: datetime

    @property
    def weather_safe(self) -> bool:
        """True when nothing but the sun or the lock stands against opening."""
        return not any(r.category == WEATHER for r in self.reasons)

    @property
    def reason_texts(self) -> list[str]:
        return [r.text for r in self.reasons]


def _failure_text(exc: BaseException) -> str:
    return str(exc) or exc.__class__.__name__


def evaluate(inputs: SafetyInputs, settings: DomeSettings, checked: datetime) -> Verdict:
    """Return the verdict for ``inputs`` under ``settings``; ``checked`` is when they were read."""
    reasons: list[Reason] = []
    sensors: list[SensorReport] = []

    if settings.require_safety_monitor:
        mon = inputs.monitor
        report = SensorReport("safety_monitor", None)
        if isinstance(mon, BaseException):
            report.reason = f"safety monitor unreadable: {_failure_text(mon)}"
        elif mon is None:
            report.reason = "safety monitor not read yet"
        elif mon:
            report.value, report.ok = True, True
        else:
            report.value, report.reason = False, "safety monitor reports unsafe"
        if not report.ok:
            reasons.append(Reason("safety_monitor", report.reason))
        sensors.append(report)

    for name, limit in settings.limits.items():
        max_age = limit.max_age or settings.max_reading_age
        report = SensorReport(name, None, unit=limit.unit, min=limit.min, max=limit.max, max_age=max_age)
        reading = inputs.readings.get(name)
        if isinstance(reading, BaseException):
            report.reason = f"{name} unreadable: {_failure_text(reading)}"
        elif reading is None:
            report.reason = f"{name} not read yet"
        elif reading.value is None:
            report.reason = f"{name} not provided by the weather station"
        else:
            report.value, report.age = reading.value, reading.age
            # Judge a reading by when it was measured, not when we fetched it.
            if reading.age is None:
                report.reason = f"{name}: age of the reading unknown"
            elif reading.age > max_age:
                report.reason = f"{name} reading is stale ({reading.age:.0f} s old, limit {max_age:.0f} s)"
            elif limit.max is not None and reading.value > limit.max:
                report.reason = f"{name} {reading.value:g}{limit.unit and ' ' + limit.unit} above limit {limit.max:g}"
            elif limit.min is not None and reading.value < limit.min:
                report.reason = f"{name} {reading.value:g}{limit.unit and ' ' + limit.unit} below limit {limit.min:g}"
            else:
                report.ok = True
        if not report.ok:
            reasons.append(Reason(f"sensor:{name}", report.reason))
        sensors.append(report)

    sun = SensorReport("sun_altitude", None, unit="deg", max=settings.sun_max_altitude)
    if isinstance(inputs.sun_altitude, BaseException):
        sun.reason = f"sun altitude unknown: {_failure_text(inputs.sun_altitude)}"
    elif inputs.sun_altitude is None:
        sun.reason = "sun altitude not computed yet"
    else:
        sun.value = round(float(inputs.sun_altitude), 2)
        if inputs.sun_altitude > settings.sun_max_altitude:
            sun.reason = f"sun at {inputs.sun_altitude:.1f} deg, above {settings.sun_max_altitude:g} deg"
        else:
            sun.ok = True
    if not sun.ok:
        reasons.append(Reason("sun", sun.reason, SUN))
    sensors.append(sun)

    if inputs.locked:
        reasons.append(Reason("maintenance", f"maintenance lock: {inputs.lock_reason or 'no reason given'}", MAINTENANCE))

    return Verdict(safe=not reasons, reasons=reasons, sensors=sensors, checked=checked)


@functools.lru_cache(maxsize=8)
def _location(latitude: float, longitude: float, elevation: float):
    from astropy import units as u
    from astropy.coordinates import EarthLocation

    return EarthLocation.from_geodetic(longitude * u.deg, latitude * u.deg, elevation * u.m)


def sun_altitude(when: datetime, latitude: float, longitude: float, elevation: float = 0.0) -> float:
    """Return the sun's apparent altitude in degrees at ``when`` (offline astropy, no refraction)."""
    from astropy import units as u
    from astropy.coordinates import AltAz, get_body
    from astropy.time import Time

    t = Time(when)
    loc = _location(latitude, longitude, elevation)
    sun = get_body("sun", t, loc).transform_to(AltAz(obstime=t, location=loc))
    return float(sun.alt.to_value(u.deg))
