"""A custom scheduler constraint: observe only near the meridian.

A long-slit spectrograph without an atmospheric dispersion corrector loses
blue light at high airmass and at large hour angles (the slit is not along
the parallactic angle), and some set-ups flex when the tube is far from the
meridian. This rule keeps an observation within ``max_hour_angle`` hours of
the target's transit.

The scheduler has no plug-in interface for rules (see
docs/adapting/scheduler-rule.md), so the rule is expressed through a stable
surface it already honours: the Observing File's ``constraints.windows``.
:func:`apply_meridian_rule` computes the hour-angle windows of the coming
nights (intersected with any windows the file already has) and writes them
into the file; the scheduler then guarantees every observation starts and
ends inside one. Run it again (for instance every week) to extend the windows.

Command line::

    python meridian_rule.py FILE.yaml --max-hour-angle 1.5 --days 14 [--submit URL --token TOKEN]
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import Longitude
from astropy.time import Time

from rosace_core.observing_file import ObservingFile, dump_observing_file, load_observing_file, parse_observing_file

#: sampling of the hour angle; windows are trimmed inwards to whole steps (conservative)
STEP = timedelta(minutes=2)


def hour_angle(ra_deg: float, longitude_deg: float, times: Time) -> np.ndarray:
    """Hour angle (hours, -12..12) of right ascension ``ra_deg`` seen from ``longitude_deg`` (east +)."""
    lst = times.sidereal_time("mean", longitude=Longitude(longitude_deg * u.deg))
    return (lst.hour - ra_deg / 15.0 + 12.0) % 24.0 - 12.0


def meridian_windows(ra_deg: float, longitude_deg: float, start: datetime, end: datetime, max_hour_angle: float) -> list[tuple[datetime, datetime]]:
    """UTC intervals in [start, end] where the target's |hour angle| <= ``max_hour_angle`` hours."""
    n = int((end - start) / STEP) + 1
    offsets = np.arange(n) * STEP.total_seconds()
    times = Time(start) + offsets * u.s
    ok = np.abs(hour_angle(ra_deg, longitude_deg, times)) <= max_hour_angle
    # Runs of passing samples: edges where ok switches on and off.
    edges = np.diff(np.concatenate([[0], ok.astype(np.int8), [0]]))
    first, last = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(start + timedelta(seconds=float(offsets[a])), start + timedelta(seconds=float(offsets[b])))
            for a, b in zip(first, last) if b > a]


def _intersect(a: list[tuple[datetime, datetime]], b: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out = []
    for s1, e1 in a:
        for s2, e2 in b:
            s, e = max(s1, s2), min(e1, e2)
            if e > s:
                out.append((s, e))
    return out


def apply_meridian_rule(of: ObservingFile, longitude_deg: float, *, max_hour_angle: float = 1.5,
                        start: datetime | None = None, days: float = 14.0) -> ObservingFile:
    """Return a copy of ``of`` whose ``constraints.windows`` keep it within ``max_hour_angle`` of the meridian.

    Only ``days`` days from ``start`` (default: now, UTC) get windows: after
    them the file is not observable until the rule is applied again. Raises
    ValueError when the file has no fixed coordinates (a moving target).
    """
    ra = getattr(of.target, "ra", None)
    if ra is None:
        raise ValueError(f"{of.id}: the meridian rule needs a sidereal target with ra/dec")
    start = (start or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    end = start + timedelta(days=days)
    windows = meridian_windows(float(ra), longitude_deg, start, end, max_hour_angle)
    existing = [(w.start, w.end) for w in of.constraints.windows]
    if existing:
        windows = _intersect(windows, existing)
    data = of.to_dict()
    data.setdefault("constraints", {})["windows"] = [{"start": s.isoformat(), "end": e.isoformat()} for s, e in windows]
    # Say in the file why the windows are there (x- keys are kept by every ROSACE version).
    data["x-meridian-rule"] = {"max_hour_angle": max_hour_angle, "applied": start.isoformat(), "days": days}
    return parse_observing_file(dump_observing_file(ObservingFile.model_validate(data)), source=f"{of.id} (meridian rule)")


def main(argv: list[str] | None = None) -> int:
    from rosace_core.astro import configure_offline
    from rosace_core.config import load_config

    parser = argparse.ArgumentParser(description="Limit an Observing File to the hours around the meridian.")
    parser.add_argument("file", type=Path)
    parser.add_argument("--max-hour-angle", type=float, default=1.5, help="hours either side of the meridian")
    parser.add_argument("--days", type=float, default=14.0, help="how many days of windows to write")
    parser.add_argument("--config", help="observatory configuration (for the site longitude)")
    parser.add_argument("--submit", metavar="URL", help="scheduler URL to submit the result to (else print it)")
    parser.add_argument("--token", help="scheduler token (writes need one)")
    args = parser.parse_args(argv)
    configure_offline()
    config = load_config(args.config)
    of = apply_meridian_rule(load_observing_file(args.file), config.site.longitude, max_hour_angle=args.max_hour_angle, days=args.days)
    text = dump_observing_file(of)
    if args.submit:
        from rosace_scheduler.client import SchedulerClient

        answer = SchedulerClient(args.submit, token=args.token).submit(text, "yaml", args.file.name)
        print(f"submitted {answer['id']} with {len(of.constraints.windows)} windows")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
