"""An independent validator of planned observations, straight from astropy.

It shares nothing with the planner's fast sky model: every observation is
re-checked with astropy's AltAz transform, ``get_body`` for the sun and moon and
astroplan's moon-illumination formula, at ``step`` seconds (10 s by default) over its
whole duration, end included. User constraints (:mod:`rosace_scheduler.rules`) are
re-checked through their per-instant predicate ``allows``, not their grid mask.
Used by the tests and by the benchmark, for ROSACE's plans and astroplan's alike.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from rosace_core.astro import configure_offline


@dataclass
class Check:
    """One observation to check: the target, its interval and its limits (degrees, Unix seconds)."""

    name: str
    ra: float
    dec: float
    start: float
    end: float
    min_altitude: float = 0.0
    max_airmass: float | None = None
    moon_min_separation: float = 0.0
    moon_max_illumination: float | None = None
    sun_max_altitude: float = 0.0
    windows: list[tuple[float, float]] = field(default_factory=list)
    phase: tuple[float, float, list[tuple[float, float]]] | None = None
    expected_duration: float | None = None
    #: user constraints: ``(name, allows(unix array) -> bool array)`` bound to this observation's request
    rules: list = field(default_factory=list)


def _unix(value) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return float(value)


def check_from_file(of, site, start, end, expected_duration: float | None = None, *, rules=None, request=None) -> Check:
    """Build a :class:`Check` from an Observing File planned between ``start`` and ``end``.

    ``rules`` (a :class:`~rosace_scheduler.rules.RuleSet`) adds its user constraints, evaluated
    on ``request`` (compiled from the file with default options when not given).
    """
    c = of.constraints
    predicates = []
    if rules:
        if request is None:
            from rosace_scheduler.observing_request import request_from_file
            from rosace_scheduler.options import SchedulerOptions

            request = request_from_file(of, site, SchedulerOptions())
        predicates = rules.predicates(request, site)
    return Check(
        name=of.id,
        ra=of.target.ra,
        dec=of.target.dec,
        start=_unix(start),
        end=_unix(end),
        min_altitude=max(c.min_altitude, site.min_altitude),
        max_airmass=c.max_airmass,
        moon_min_separation=c.moon_min_separation,
        moon_max_illumination=c.moon_max_illumination,
        sun_max_altitude=c.sun_max_altitude,
        windows=[(w.start.timestamp(), w.end.timestamp()) for w in c.windows],
        phase=(c.phase.t0, c.phase.period, [tuple(p) for p in c.phase.phases]) if c.phase else None,
        expected_duration=expected_duration,
        rules=predicates,
    )


def validate(checks: list[Check], site, step: float = 10.0) -> list[dict]:
    """Return every violation found: ``{name, time, constraint, value, limit}`` (empty if none).

    Also reports overlapping observations and observations shorter than their
    expected duration (``constraint: "overlap"`` / ``"duration"``).
    """
    configure_offline()
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord, get_body
    from astropy.time import Time

    violations: list[dict] = []
    if not checks:
        return violations
    order = sorted(range(len(checks)), key=lambda i: checks[i].start)
    for a, b in zip(order, order[1:]):
        if checks[b].start < checks[a].end - 1e-6:
            violations.append({"name": checks[b].name, "time": checks[b].start, "constraint": "overlap", "value": checks[a].name, "limit": None})
    for c in checks:
        if c.expected_duration is not None and c.end - c.start < c.expected_duration - 1e-6:
            violations.append({"name": c.name, "time": c.start, "constraint": "duration", "value": c.end - c.start, "limit": c.expected_duration})
    owner, stamps = [], []
    for i, c in enumerate(checks):
        ts = np.append(np.arange(c.start, c.end, step), c.end)
        stamps.append(ts)
        owner.append(np.full(len(ts), i))
    t_unix = np.concatenate(stamps)
    idx = np.concatenate(owner)
    loc = EarthLocation(lat=site.latitude * u.deg, lon=site.longitude * u.deg, height=site.elevation * u.m)
    times = Time(t_unix, format="unix", scale="utc")
    frame = AltAz(obstime=times, location=loc)
    ra = np.array([c.ra for c in checks])[idx]
    dec = np.array([c.dec for c in checks])[idx]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        target = SkyCoord(ra * u.deg, dec * u.deg).transform_to(frame)
        # geocentric bodies with distances: astropy's AltAz of them includes the topocentric parallax
        sun_geo = get_body("sun", times)
        moon_geo = get_body("moon", times)
        sun = sun_geo.transform_to(frame)
        moon = moon_geo.transform_to(frame)
        sep = target.separation(moon).deg
        # astroplan.moon_illumination's formula, on the bodies already computed
        elong = sun_geo.separation(moon_geo).rad
        phase_angle = np.arctan2(sun_geo.distance * np.sin(elong), moon_geo.distance - sun_geo.distance * np.cos(elong))
        illum = (1 + np.cos(phase_angle.value)) / 2.0
    alt, az = target.alt.deg, target.az.deg
    horizon = sorted(site.horizon)
    if horizon:
        ha = np.array([p[0] for p in horizon])
        hh = np.array([p[1] for p in horizon])
        hor = np.interp(az % 360, np.concatenate([ha - 360, ha, ha + 360]), np.concatenate([hh, hh, hh]))
    else:
        hor = np.full_like(alt, -90.0)
    jd = times.jd

    def report(mask, constraint, value, limit):
        for j in np.flatnonzero(mask):
            violations.append({"name": checks[idx[j]].name, "time": float(t_unix[j]), "constraint": constraint, "value": float(value[j]), "limit": float(limit[j]) if np.ndim(limit) else float(limit)})

    min_alt = np.array([c.min_altitude for c in checks])[idx]
    report(alt < min_alt, "altitude", alt, min_alt)
    report(alt < hor, "horizon", alt, hor)
    max_am = np.array([np.inf if c.max_airmass is None else c.max_airmass for c in checks])[idx]
    with np.errstate(divide="ignore"):
        airmass = np.where(alt > 0, 1.0 / np.sin(np.radians(np.maximum(alt, 1e-9))), np.inf)
    report(airmass > max_am, "airmass", airmass, max_am)
    sun_max = np.array([c.sun_max_altitude for c in checks])[idx]
    report(sun.alt.deg > sun_max, "sun", sun.alt.deg, sun_max)
    min_sep = np.array([c.moon_min_separation for c in checks])[idx]
    report(sep < min_sep, "moon_separation", sep, min_sep)
    max_ill = np.array([2.0 if c.moon_max_illumination is None else c.moon_max_illumination for c in checks])[idx]
    report((moon.alt.deg >= 0) & (illum > max_ill), "moon_illumination", illum, max_ill)
    for i, c in enumerate(checks):
        sel = idx == i
        if c.windows:
            inside = np.zeros(sel.sum(), bool)
            for s, e in c.windows:
                inside |= (t_unix[sel] >= s) & (t_unix[sel] <= e)
            for j in np.flatnonzero(~inside):
                violations.append({"name": c.name, "time": float(t_unix[sel][j]), "constraint": "time_window", "value": None, "limit": None})
        if c.phase is not None:
            t0, period, phases = c.phase
            ph = np.mod((jd[sel] - t0) / period, 1.0)
            inside = np.zeros(sel.sum(), bool)
            for lo, hi in phases:
                inside |= ((ph >= lo) & (ph <= hi)) if lo <= hi else ((ph >= lo) | (ph <= hi))
            for j in np.flatnonzero(~inside):
                violations.append({"name": c.name, "time": float(t_unix[sel][j]), "constraint": "phase", "value": float(ph[j]), "limit": None})
        for rule_name, allows in c.rules:
            try:
                inside = np.broadcast_to(np.asarray(allows(t_unix[sel]), dtype=bool), (int(sel.sum()),))
            except Exception as exc:  # a rule that cannot answer cannot vouch for the observation
                violations.append({"name": c.name, "time": c.start, "constraint": rule_name, "value": f"rule failed: {exc.__class__.__name__}: {exc}", "limit": None})
                continue
            for j in np.flatnonzero(~inside):
                violations.append({"name": c.name, "time": float(t_unix[sel][j]), "constraint": rule_name, "value": None, "limit": None})
    return violations
