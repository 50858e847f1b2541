"""The weather: a timeline of conditions from the scenario, live overrides, and safety.

Each timeline entry holds from its instant until the next one (fields it does not
name keep their previous value). The weather station "measures" every
``update_interval`` simulated seconds: a reading is the value at the last
measurement instant, and its age is the time since then, so ages are honest; a
``stale`` fault on the ObservingConditions device stops the measurements.
"""

from __future__ import annotations

import math
import threading
from datetime import datetime, timedelta

from rosace_core.clock import get_clock

from rosace_sim.scenario import DEFAULT_WEATHER, Scenario

QUANTITIES = tuple(DEFAULT_WEATHER)


class Weather:
    """The scenario's weather, queried by instant."""

    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        self.limits = scenario.weather.limits
        self.interval = scenario.weather.update_interval
        points = []
        for p in scenario.weather.timeline:
            points.append((scenario.instant(p.at), p.model_dump(exclude={"at"}, exclude_none=True)))
        points.sort(key=lambda item: item[0])
        self._timeline = points
        self._override: dict = {}
        self._lock = threading.Lock()

    def set_override(self, values: dict) -> dict:
        """Override some quantities live (until :meth:`clear_override`); return the active overrides."""
        with self._lock:
            for key, value in values.items():
                if value is None:
                    self._override.pop(key, None)
                else:
                    self._override[key] = value
            return dict(self._override)

    def clear_override(self) -> None:
        with self._lock:
            self._override.clear()

    def values_at(self, when: datetime) -> dict:
        """Return every quantity (and ``safe``) as they are at ``when``."""
        values = dict(DEFAULT_WEATHER)
        explicit_safe = None
        for instant, entry in self._timeline:
            if instant > when:
                break
            entry = dict(entry)
            if "safe" in entry:
                explicit_safe = entry.pop("safe")
            values.update(entry)
        with self._lock:
            override = dict(self._override)
        if "safe" in override:
            explicit_safe = override.pop("safe")
        values.update(override)
        values["dew_point"] = dew_point(values["temperature"], values["humidity"])
        values["safe"] = self.judge(values) if explicit_safe is None else bool(explicit_safe)
        return values

    def judge(self, values: dict) -> bool:
        """Safe by the scenario's limits."""
        lim = self.limits
        return (
            values["cloud_cover"] <= lim.max_cloud_cover
            and values["rain_rate"] <= lim.max_rain_rate
            and values["wind_speed"] <= lim.max_wind_speed
            and values["humidity"] <= lim.max_humidity
        )

    def last_measurement(self, now: datetime, stale_since: datetime | None = None) -> datetime:
        """Instant of the station's last measurement at ``now`` (frozen from ``stale_since``)."""
        ref = stale_since if stale_since is not None and stale_since <= now else now
        ts = ref.timestamp()
        last = math.floor(ts / self.interval) * self.interval
        return ref - timedelta(seconds=ts - last)

    def reading(self, stale_since: datetime | None = None) -> tuple[dict, datetime]:
        """Return (values at the last measurement, instant of that measurement)."""
        now = get_clock().now()
        measured = self.last_measurement(now, stale_since)
        with self._lock:
            has_override = bool(self._override)
        # A live override is a test's way of saying "the station now reads this":
        # it shows at once, as if a measurement had just been taken.
        if has_override and stale_since is None:
            return self.values_at(now), measured
        return self.values_at(measured), measured


def dew_point(temperature: float, humidity: float) -> float:
    """Dew point (degC) by the Magnus formula."""
    h = max(humidity, 1e-3) / 100.0
    a, b = 17.62, 243.12
    gamma = math.log(h) + a * temperature / (b + temperature)
    return b * gamma / (a - gamma)
