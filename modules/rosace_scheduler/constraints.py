"""Constraint masks: for every request and every instant of the night grid, may it be observed?

Everything is a numpy array of shape (requests, times). A grid instant passes
when every constraint holds there with a small margin; the planner then asks
for every grid instant *bracketing* an observation (the one at or before its
start to the one at or after its end) to pass, so that nothing between two
grid instants can slip through (altitude, sun and moon change by far less than
the margins within one grid step, and time and phase windows are intervals).
"""

from __future__ import annotations

import numpy as np

from rosace_scheduler.observing_request import ObservingRequest
from rosace_scheduler.sky import NightSky

#: names of the constraints, in the order explanations report them
CONSTRAINT_NAMES = ("altitude", "horizon", "sun", "moon_separation", "moon_illumination", "time_window", "phase")

UNIX_JD0 = 2440587.5
#: margins of the sun and moon limits, degrees (fraction for the illumination)
SUN_MARGIN = 0.01
MOON_MARGIN = 0.01
ILLUM_MARGIN = 1e-4


def unix_to_jd(unix) -> np.ndarray:
    """Return the Julian Date (UTC) of Unix seconds."""
    return np.asarray(unix, dtype=float) / 86400.0 + UNIX_JD0


def phase_mask(unix: np.ndarray, t0: float, period: float, phases: list[tuple[float, float]]) -> np.ndarray:
    """Return where the phase ``((JD - t0) / period) mod 1`` lies in one of the intervals.

    An interval whose start is after its end wraps through phase 0.
    """
    ph = np.mod((unix_to_jd(unix) - t0) / period, 1.0)
    ok = np.zeros(np.shape(unix), dtype=bool)
    for a, b in phases:
        ok |= (ph >= a) & (ph <= b) if a <= b else (ph >= a) | (ph <= b)
    return ok


def window_mask(unix: np.ndarray, windows: list[tuple[float, float]]) -> np.ndarray:
    """Return where instants lie inside one of the (start, end) windows; everywhere if none."""
    if not windows:
        return np.ones(np.shape(unix), dtype=bool)
    ok = np.zeros(np.shape(unix), dtype=bool)
    for start, end in windows:
        ok |= (unix >= start) & (unix <= end)
    return ok


def _column(values, n: int) -> np.ndarray:
    return np.asarray(values, dtype=float).reshape(n, 1)


def constraint_masks(sky: NightSky, reqs: list[ObservingRequest], cirs: np.ndarray, altitude_margin: float = 0.02, *, separate: bool = False, with_alt: bool = True, rules=None):
    """Evaluate every constraint of ``reqs`` on the night grid.

    Returns ``(ok, alt)``: ``ok`` is the (n, T) boolean AND of all constraints
    (or a dict name -> mask when ``separate``), ``alt`` the (n, T) altitudes in
    degrees (None unless ``separate`` or the site has a horizon profile).
    ``rules`` (a :class:`~rosace_scheduler.rules.RuleSet`) adds the user constraints,
    each under its own name after the built-in ones.
    """
    n, times = len(reqs), sky.times
    # thresholds on vector components instead of angles: alt >= a  <=>  z >= sin(a), and
    # separation >= s  <=>  cos(sep) <= cos(s); two small matrix products, no trigonometry
    z = cirs @ sky.rotation[:, 2, :].T
    cos_moon = cirs @ sky.moon_in_cirs().T
    masks: dict[str, np.ndarray] = {}
    limit = _column([r.altitude_limit for r in reqs], n)
    masks["altitude"] = z >= np.sin(np.radians(limit + altitude_margin))
    alt = None
    if (separate and with_alt) or not sky.horizon.empty:
        alt = np.degrees(np.arcsin(np.clip(z, -1.0, 1.0)))
    if alt is not None and not sky.horizon.empty:
        az = np.degrees(np.arctan2(cirs @ sky.rotation[:, 1, :].T, cirs @ sky.rotation[:, 0, :].T)) % 360.0
        masks["horizon"] = alt >= sky.horizon.limit(az) + altitude_margin
    masks["sun"] = sky.sun_alt[None, :] <= _column([r.sun_max_altitude for r in reqs], n) - SUN_MARGIN
    masks["moon_separation"] = cos_moon <= np.cos(np.radians(_column([r.moon_min_separation for r in reqs], n) + MOON_MARGIN))
    illum_limit = _column([2.0 if r.moon_max_illumination is None else r.moon_max_illumination for r in reqs], n)
    # like astroplan: the illumination limit does not apply while the moon is down
    masks["moon_illumination"] = (sky.moon_alt[None, :] < -MOON_MARGIN) | (sky.moon_illumination[None, :] <= illum_limit - ILLUM_MARGIN)
    tw = np.ones((n, len(times)), dtype=bool)
    ph = np.ones((n, len(times)), dtype=bool)
    for i, r in enumerate(reqs):
        if r.windows:
            tw[i] = window_mask(times, r.windows)
        if r.phase is not None:
            ph[i] = phase_mask(times, *r.phase)
    masks["time_window"] = tw
    masks["phase"] = ph
    if rules:
        masks.update(rules.masks(sky, reqs))
    if separate:
        return masks, alt
    ok = masks["altitude"]
    for name, m in masks.items():
        if name != "altitude":
            ok = ok & m
    return ok, alt


def run_lengths(ok: np.ndarray) -> np.ndarray:
    """Return, for each (request, instant), how many consecutive passing instants start there."""
    n, t = ok.shape
    idx = np.broadcast_to(np.arange(t), (n, t))
    nxt = np.where(ok, t, idx)  # index of a failing instant, or t
    nxt = np.minimum.accumulate(nxt[:, ::-1], axis=1)[:, ::-1]
    return (nxt - idx).astype(np.int32)


def remaining_counts(ok: np.ndarray) -> np.ndarray:
    """Return, for each (request, instant), how many passing instants remain from there to the end."""
    return np.cumsum(ok[:, ::-1], axis=1, dtype=np.int32)[:, ::-1]
