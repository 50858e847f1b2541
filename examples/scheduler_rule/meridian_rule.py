"""Scheduler rules of your own: observe near the meridian.

A long-slit spectrograph without an atmospheric dispersion corrector loses blue
light at large hour angles (the slit is not along the parallactic angle), and
some set-ups flex when the tube is far from the meridian. Two rules:

- ``meridian_window`` (a constraint): an observation may only run, start to end,
  slew included, within ``max_hour_angle`` hours of its target's meridian. A file
  may ask for its own limit with ``x-max-hour-angle`` under ``constraints``.
- ``near_meridian`` (a scoring rule): among the targets that can start, prefer
  the ones closest to the meridian (+1 at the meridian, 0 at six hours or more,
  times the rule's ``weight``).

Use them by naming this file in the observatory configuration::

    [scheduler]
    rule_files = ["meridian_rule.py"]      # relative to rosace.toml, or an absolute path

    [scheduler.rules.meridian_window]
    max_hour_angle = 1.5

    [scheduler.rules.near_meridian]
    weight = 0.5

The plan, ``next``, the queue and ``explain`` then honour them, and the independent
validator re-checks ``meridian_window`` at 10-s steps through :meth:`MeridianWindow.allows`.
Walk-through: docs/adapting/scheduler-rule.md.
"""

from __future__ import annotations

import numpy as np

from rosace_scheduler.rules import Candidates, Constraint, ScoringRule

#: the grid mask stays this far inside the limit, hours (3.6 s of time): the two computations
#: below agree to ~0.01 s, the margin keeps rounding from ever letting an instant slip through
MARGIN = 1e-3


def hour_angle(lst_hours, ra_hours):
    """Return hour angles in hours, -12..12, from local sidereal times and right ascensions (hours)."""
    return (np.asarray(lst_hours) - np.asarray(ra_hours) + 12.0) % 24.0 - 12.0


class MeridianWindow(Constraint):
    """Observe only within ``max_hour_angle`` hours of the meridian (per file: ``constraints.x-max-hour-angle``)."""

    name = "meridian_window"
    title = "only near the meridian"

    def __init__(self, max_hour_angle: float = 1.5):
        if not 0 < float(max_hour_angle) < 12:
            raise ValueError(f"max_hour_angle must be between 0 and 12 hours, not {max_hour_angle}")
        self.max_hour_angle = float(max_hour_angle)

    def limit(self, request) -> float:
        """Return the hour-angle limit of one request (its file's own, else the configured one), hours."""
        return float(request.extensions.get("x-max-hour-angle", self.max_hour_angle))

    def allows(self, request, unix, site):
        """The truth, for the validator: astropy's hour angle (HADec frame) at each instant."""
        import astropy.units as u
        from astropy.coordinates import EarthLocation, HADec, SkyCoord
        from astropy.time import Time

        times = Time(np.asarray(unix, dtype=float), format="unix", scale="utc")
        loc = EarthLocation(lat=site.latitude * u.deg, lon=site.longitude * u.deg, height=site.elevation * u.m)
        ha = SkyCoord(request.ra * u.deg, request.dec * u.deg).transform_to(HADec(obstime=times, location=loc)).ha.hour
        return np.abs(hour_angle(ha, 0.0)) <= self.limit(request)

    def mask(self, sky, requests):
        """Every request on the night grid at once: local apparent sidereal time minus apparent right ascension."""
        import astropy.units as u
        from astropy.coordinates import TETE, SkyCoord
        from astropy.time import Time

        if not requests:
            return np.zeros((0, len(sky.times)), dtype=bool)
        # apparent (true equator and equinox of date) right ascension at mid-night: it moves by
        # far less than the margin during one night
        coords = SkyCoord([r.ra for r in requests] * u.deg, [r.dec for r in requests] * u.deg)
        ra_app = coords.transform_to(TETE(obstime=Time(sky.mid_unix, format="unix"))).ra.hour
        limits = np.array([self.limit(r) for r in requests])
        ha = hour_angle(sky.lst[None, :], ra_app[:, None])
        return np.abs(ha) <= (limits - MARGIN)[:, None]


class NearMeridian(ScoringRule):
    """Prefer targets close to the meridian: 1 - |hour angle| / 6 h, never below 0."""

    name = "near_meridian"
    title = "prefer targets near the meridian"
    default_weight = 0.5

    def score(self, candidates: Candidates):
        ha = hour_angle(candidates.sky.lst[candidates.k], candidates.ra / 15.0)
        return np.clip(1.0 - np.abs(ha) / 6.0, 0.0, 1.0)
