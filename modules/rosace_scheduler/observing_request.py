"""An Observing File reduced to what the scheduler needs: where, how long, which limits."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rosace_core.observing_file import ObservingFile, SiderealTarget

from rosace_scheduler.options import SchedulerOptions


@dataclass
class ObservingRequest:
    """The schedulable part of one Observing File (angles in degrees, times in Unix seconds)."""

    file_id: str
    target: str
    ra: float
    dec: float
    priority: int
    duration: float  # everything but the slew: acquisition, calibrations, science, reference star
    spectrograph: str
    min_altitude: float
    max_airmass: float | None
    moon_min_separation: float
    moon_max_illumination: float | None
    sun_max_altitude: float
    windows: list[tuple[float, float]] = field(default_factory=list)
    phase: tuple[float, float, list[tuple[float, float]]] | None = None  # (t0 JD, period d, [(a, b)])
    cadence: tuple[float, float] | None = None  # (period d, tolerance d)
    max_visits: int | None = None
    pm_ra_cosdec: float = 0.0
    pm_dec: float = 0.0
    epoch: float = 2000.0
    sidereal: bool = True
    reference_mode: str = "none"
    #: the file's ``x-...`` keys (top level, then ``constraints``'s, which win): per-file options of user rules
    extensions: dict = field(default_factory=dict)
    #: the file's ``[instrument]`` table (grating, slit, central_wavelength, order), checked against the mounted set-up
    instrument: Any = field(default=None, compare=False, repr=False)
    science_count: int = 1  # science frames the file asks
    frame_time: float = 0.0  # one science frame: exposure plus readout, s
    #: fewest science frames in one part when the file may be split (``sequence.split``, format 1.2); 0: never split
    split_min_frames: int = 0

    def part_duration(self, frames: int) -> float:
        """Return the duration of a part taking ``frames`` science frames (acquisition and calibrations repeated), s."""
        return self.duration - (self.science_count - frames) * self.frame_time

    @property
    def altitude_limit(self) -> float:
        """Lowest altitude the file accepts, from its min_altitude and max_airmass (airmass = sec z)."""
        limit = self.min_altitude
        if self.max_airmass is not None:
            limit = max(limit, math.degrees(math.asin(1.0 / self.max_airmass)))
        return limit

    @property
    def visits_wanted(self) -> int | None:
        """Completed visits after which the file is done (None: unlimited, a monitoring cadence)."""
        if self.max_visits is not None:
            return self.max_visits
        return None if self.cadence is not None else 1


def frames_time(count: int, exposure: float, readout: float) -> float:
    """Return the time to take ``count`` frames of ``exposure`` seconds, seconds."""
    return count * (exposure + readout)


def observation_duration(of: ObservingFile, options: SchedulerOptions) -> float:
    """Return how long the observation takes once the mount is on target, seconds.

    Acquisition (guide exposures plus a fixed overhead), arc blocks (two when
    bracketing), flats, science frames and, when the file asks for a reference
    star, its fixed overhead. The slew is added by the planner, since it
    depends on where the mount comes from.
    """
    seq = of.sequence
    ro = options.readout
    total = options.acquisition + of.acquisition.exposure * 3
    total += frames_time(seq.science.count, seq.science.exposure, ro)
    if seq.arcs is not None and seq.arcs.when != "none":
        blocks = 2 if seq.arcs.when == "bracket" else 1
        total += blocks * frames_time(seq.arcs.count, seq.arcs.exposure, ro)
    if seq.flats is not None:
        total += frames_time(seq.flats.count, seq.flats.exposure, ro)
    if seq.reference_star.mode != "none":
        total += options.reference_overhead
    return float(math.ceil(total))


def split_min_frames(of: ObservingFile, options: SchedulerOptions) -> int:
    """Return the fewest science frames of a part (``sequence.split.min_minutes`` of frames), 0 when the file may not be split."""
    split, science = of.sequence.split, of.sequence.science
    if split is None or not split.allowed:
        return 0
    return max(1, math.ceil(split.min_minutes * 60.0 / (science.exposure + options.readout) - 1e-9))


def request_from_file(of: ObservingFile, site, options: SchedulerOptions, closing_sun: float | None = None) -> ObservingRequest:
    """Compile an Observing File into an :class:`ObservingRequest` for ``site``.

    ``closing_sun``: the sun altitude at which the dome closes; the stricter of it
    and the file's own sun limit is planned with.
    """
    c = of.constraints
    target = of.target
    if isinstance(target, SiderealTarget):
        assert target.ra is not None  # the model fills ra from ra_deg
        ra, dec = target.ra, target.dec
        pm = (target.pm_ra_cosdec, target.pm_dec, target.epoch)
    else:  # tabulated ephemeris: not scheduled (reported as unsupported)
        first = target.ephemeris[0]
        ra, dec = first.ra, first.dec
        pm = (0.0, 0.0, 2000.0)
    cadence = None
    if c.cadence is not None:
        assert c.cadence.tolerance is not None  # the model's validator sets the default
        cadence = (c.cadence.period, c.cadence.tolerance)
    return ObservingRequest(
        file_id=of.id,
        target=target.name,
        ra=float(ra),
        dec=float(dec),
        priority=of.priority,
        duration=observation_duration(of, options),
        spectrograph=of.instrument.spectrograph,
        min_altitude=max(c.min_altitude, site.min_altitude),
        max_airmass=c.max_airmass,
        moon_min_separation=c.moon_min_separation,
        moon_max_illumination=c.moon_max_illumination,
        sun_max_altitude=c.sun_max_altitude if closing_sun is None else min(c.sun_max_altitude, closing_sun),
        windows=[(w.start.timestamp(), w.end.timestamp()) for w in c.windows],
        phase=(c.phase.t0, c.phase.period, [(a, b) for a, b in c.phase.phases]) if c.phase else None,
        cadence=cadence,
        max_visits=c.max_visits,
        pm_ra_cosdec=pm[0],
        pm_dec=pm[1],
        epoch=pm[2],
        sidereal=isinstance(target, SiderealTarget),
        reference_mode=of.sequence.reference_star.mode,
        extensions={**of.extensions, **c.extensions},
        instrument=of.instrument,
        science_count=of.sequence.science.count,
        frame_time=of.sequence.science.exposure + options.readout,
        split_min_frames=split_min_frames(of, options),
    )
