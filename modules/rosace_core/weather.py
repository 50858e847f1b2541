"""Weather readings checked before anyone judges the sky with them.

ASCOM ObservingConditions fixes the units (cloud cover and humidity in %, rain
rate in mm/h, wind in m/s, temperatures in degC, pressure in hPa, sky quality in
mag/arcsec^2...), but stations and drivers get them wrong: a cloud cover given as
a fraction (0-1) read as percent says 1 % under full overcast, and the roof stays
open. :class:`ReadingChecker` turns every reading into ASCOM units and checks it
is physically possible:

- a unit set in the configuration (``[devices.observing_conditions] units =
  {cloud_cover = "fraction"}``) is applied as given;
- otherwise ("auto") the unit is detected where the value tells: the device's
  SensorDescription naming it (km/h, knots, fraction...), a temperature above 150 read as kelvin, a pressure
  of tens of thousands as pascals; a cloud cover or humidity between 0 and 1 is
  taken as a fraction (the cautious reading: 0.8 is 80 %, never 0.8 %) until the
  sensor has once read above 1, with a warning saying how to set the unit;
- a value outside the quantity's possible range raises
  :class:`WeatherReadingError` (a :class:`~rosace_core.errors.DeviceError`, so the
  dome counts the quantity as unreadable, i.e. unsafe), naming the quantity, the
  value, the range and the configuration key that fixes it.

No library here: astropy.units knows the conversions but not what a weather
station's wrong unit looks like, which is the point of this module; the factors
are the standard ones.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Callable

from rosace_core.errors import DeviceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quantity:
    """One ObservingConditions quantity: its ASCOM unit, possible range and other units it may come in."""

    unit: str
    low: float
    high: float
    #: unit name -> function turning a value in that unit into the ASCOM unit
    units: dict[str, Callable[[float], float]] = field(default_factory=dict)
    #: auto-detection by value: (predicate on the raw value, unit name)
    detect: tuple[tuple[Callable[[float], bool], str], ...] = ()


def _same(v: float) -> float:
    return v


_PERCENT = {"percent": _same, "%": _same, "fraction": lambda v: v * 100.0}
_TEMPERATURE = {"C": _same, "degC": _same, "K": lambda v: v - 273.15, "F": lambda v: (v - 32.0) * 5.0 / 9.0}
_SPEED = {"m/s": _same, "km/h": lambda v: v / 3.6, "mph": lambda v: v * 0.44704, "knots": lambda v: v * 0.514444}

#: ROSACE name (rosace_core.alpaca.CONDITIONS) -> what a possible reading looks like.
QUANTITIES: dict[str, Quantity] = {
    "cloud_cover": Quantity("%", 0.0, 100.0, {**_PERCENT, "okta": lambda v: v * 100.0 / 8.0}),
    "humidity": Quantity("%", 0.0, 100.0, dict(_PERCENT)),
    "rain_rate": Quantity("mm/h", 0.0, 500.0, {"mm/h": _same, "in/h": lambda v: v * 25.4}),
    "wind_speed": Quantity("m/s", 0.0, 120.0, dict(_SPEED)),
    "wind_gust": Quantity("m/s", 0.0, 120.0, dict(_SPEED)),
    "temperature": Quantity("degC", -90.0, 70.0, dict(_TEMPERATURE), ((lambda v: v > 150.0, "K"),)),
    "dew_point": Quantity("degC", -100.0, 70.0, dict(_TEMPERATURE), ((lambda v: v > 150.0, "K"),)),
    "pressure": Quantity("hPa", 300.0, 1100.0,
                         {"hPa": _same, "mbar": _same, "Pa": lambda v: v / 100.0, "kPa": lambda v: v * 10.0,
                          "inHg": lambda v: v * 33.8639, "mmHg": lambda v: v * 1.33322},
                         ((lambda v: 20000.0 <= v <= 120000.0, "Pa"), (lambda v: 30.0 <= v <= 110.0, "kPa"))),
    "sky_quality": Quantity("mag/arcsec^2", 0.0, 30.0, {"mag/arcsec^2": _same}),
    "sky_brightness": Quantity("lux", 0.0, 200000.0, {"lux": _same}),
    "seeing": Quantity("arcsec", 0.0, 60.0, {"arcsec": _same}),
}

#: the quantities a value between 0 and 1 may be a fraction of
_FRACTIONS = ("cloud_cover", "humidity")

#: SensorDescription words naming a unit (checked in this order)
_DESCRIBED = (
    (re.compile(r"\bfraction\b|\b0\s*(?:-|\.\.|to)\s*1\b", re.I), "fraction"),
    (re.compile(r"%|percent", re.I), "percent"),
    (re.compile(r"\bokta", re.I), "okta"),
    (re.compile(r"km/h|kph", re.I), "km/h"),
    (re.compile(r"\bmph\b", re.I), "mph"),
    (re.compile(r"\bknots?\b|\bkts?\b", re.I), "knots"),
    (re.compile(r"\bm/s\b", re.I), "m/s"),
    (re.compile(r"°?\s*\bF\b|fahrenheit", re.I), "F"),
    (re.compile(r"kelvin|\bK\b"), "K"),
)


class WeatherReadingError(DeviceError):
    """A weather reading that cannot be trusted: impossible value or unknown unit."""


def known_units(name: str) -> list[str]:
    """The unit names accepted for a quantity in the configuration ("auto" too)."""
    return ["auto", *QUANTITIES[name].units] if name in QUANTITIES else []


def validate_units(units: dict[str, str]) -> dict[str, str]:
    """Check a ``units`` table (quantity -> unit); raise ValueError naming the bad entry."""
    for name, unit in units.items():
        if name not in QUANTITIES:
            raise ValueError(f"unknown quantity {name!r} in units (known: {', '.join(QUANTITIES)})")
        if unit not in known_units(name):
            raise ValueError(f"unknown unit {unit!r} for {name} (use one of: {', '.join(known_units(name))})")
    return units


class ReadingChecker:
    """Convert and range-check the readings of one weather station (see the module text).

    ``units``: quantity -> configured unit ("auto" or missing: detect). Keeps, per
    quantity, whether a reading above 1 was seen (then a cloud cover is in %).
    """

    def __init__(self, units: dict[str, str] | None = None, *, device: str = "weather station"):
        self.units = validate_units(dict(units or {}))
        self.device = device
        self._described: dict[str, str | None] = {}
        self._seen_above_one: set[str] = set()
        self._warned: set[str] = set()

    def _hint(self, name: str) -> str:
        return (f"set its unit in the configuration: [devices.observing_conditions] units = {{{name} = \"...\"}} "
                f"(one of {', '.join(known_units(name)[1:])})")

    def _described_unit(self, name: str, describe: Callable[[], str | None] | None) -> str | None:
        if name not in self._described:
            text = None
            if describe is not None:
                try:
                    text = describe()
                except DeviceError:
                    text = None
            unit = None
            for pattern, candidate in _DESCRIBED:
                if text and pattern.search(text) and candidate in QUANTITIES[name].units:
                    unit = candidate
                    break
            self._described[name] = unit
        return self._described[name]

    def unit_of(self, name: str, value: float, describe: Callable[[], str | None] | None = None) -> str:
        """The unit a raw reading is taken in (configured, described or detected)."""
        q = QUANTITIES[name]
        configured = self.units.get(name, "auto")
        if configured != "auto":
            return configured
        described = self._described_unit(name, describe)
        # A description saying "%" does not settle a cloud cover of 0.9: that is the
        # mislabelled driver this module is for. Only a reading above 1 settles it.
        if described is not None and not (name in _FRACTIONS and described == "percent"):
            return described
        for predicate, unit in q.detect:
            if predicate(value):
                return unit
        if name in _FRACTIONS:
            if value > 1.0:
                self._seen_above_one.add(name)
            elif 0.0 < value <= 1.0 and name not in self._seen_above_one:
                if name not in self._warned:
                    self._warned.add(name)
                    log.warning("%s: %s reads %g, taken as a fraction (%g %%), the cautious reading; if the sensor "
                                "gives percent, %s", self.device, name, value, value * 100.0, self._hint(name))
                return "fraction"
        return next(iter(q.units))

    def check(self, name: str, value: float, describe: Callable[[], str | None] | None = None) -> float:
        """Return ``value`` in the quantity's ASCOM unit; raise WeatherReadingError if impossible."""
        q = QUANTITIES.get(name)
        if q is None:
            return value
        if not math.isfinite(value):
            raise WeatherReadingError(self.device, f"{name} reads {value}: not a number")
        unit = self.unit_of(name, value, describe)
        converted = q.units[unit](value)
        if not q.low <= converted <= q.high:
            taken = "" if unit in (q.unit, "percent", "%") else f" (taken as {unit}: {converted:g} {q.unit})"
            raise WeatherReadingError(
                self.device, f"{name} reads {value:g}{taken}, outside the possible {q.low:g}-{q.high:g} {q.unit}: "
                             f"check the sensor, or {self._hint(name)}")
        return converted
