"""The sky of one night on a time grid: sun, moon and every target, computed at once.

Astropy's ICRS -> AltAz transform costs about 10 microseconds per (target, time)
pair, far too slow for 1000 targets x 900 instants. It is, for stars, a fixed
part (ICRS -> CIRS: precession, nutation, annual aberration, light deflection;
it changes by less than 0.2" over a night) followed by a time-dependent
rotation (Earth rotation, polar motion, plus 0.3" of diurnal aberration). So
targets go to CIRS once per night with astropy, astropy gives the CIRS -> AltAz
matrix at 20-minute nodes (three basis vectors per node), the matrix is
interpolated to the grid with a cubic spline (error ~1e-6 rad), and every
target x time direction is one ``einsum``. The result agrees with astropy's
AltAz to better than one arcsecond (checked by the tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import numpy as np

from rosace_core.astro import configure_offline

#: spacing of the astropy nodes that the rotation and the sun/moon are splined from, seconds
#: (a cubic spline of these smooth functions errs by ~1e-6 rad at 20 minutes)
NODE_STEP = 1200.0
#: apparent altitude of the upper limb of the sun at sunset/sunrise, degrees
SUNSET_ALT = -0.833


def _location(site):
    import astropy.units as u
    from astropy.coordinates import EarthLocation

    return EarthLocation(lat=site.latitude * u.deg, lon=site.longitude * u.deg, height=site.elevation * u.m)


def _unix_to_time(unix: np.ndarray):
    from astropy.time import Time

    return Time(np.asarray(unix, dtype=float), format="unix", scale="utc")


def _spline(x_nodes: np.ndarray, y_nodes: np.ndarray, x: np.ndarray) -> np.ndarray:
    from scipy.interpolate import CubicSpline

    return CubicSpline(x_nodes, y_nodes, axis=-1)(x)


def altaz_from_vectors(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (altitude, azimuth) in degrees of AltAz unit vectors ``v[..., 3]`` (x north, y east, z up)."""
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    alt = np.degrees(np.arctan2(z, np.hypot(x, y)))
    az = np.degrees(np.arctan2(y, x)) % 360.0
    return alt, az


def radec_to_vectors(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    """Return ICRS unit vectors (n, 3) of right ascensions and declinations in degrees."""
    ra = np.radians(np.asarray(ra_deg, dtype=float))
    dec = np.radians(np.asarray(dec_deg, dtype=float))
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def approximate_sun_altitude(unix: np.ndarray, latitude: float, longitude: float) -> np.ndarray:
    """Return the sun's altitude (degrees, ~0.01 deg) from the Astronomical Almanac's low-precision formulae.

    Only used to find which part of the day needs astropy's exact computation.
    """
    n = np.asarray(unix, dtype=float) / 86400.0 + 2440587.5 - 2451545.0
    g = np.radians(357.528 + 0.9856003 * n)
    lam = np.radians(280.460 + 0.9856474 * n + 1.915 * np.sin(g) + 0.020 * np.sin(2 * g))
    eps = np.radians(23.439 - 0.0000004 * n)
    ra = np.arctan2(np.cos(eps) * np.sin(lam), np.cos(lam))
    dec = np.arcsin(np.sin(eps) * np.sin(lam))
    lst = np.radians((280.46061837 + 360.98564736629 * n + longitude) % 360.0)
    lat = np.radians(latitude)
    return np.degrees(np.arcsin(np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(lst - ra)))


def night_date_of(instant: datetime, longitude: float) -> date:
    """Return the night (date of the local evening) an instant belongs to.

    A night runs from local solar noon to the next local solar noon, so that a
    whole night keeps one date wherever the site is.
    """
    local = instant.astimezone(timezone.utc) + timedelta(hours=longitude / 15.0)
    return (local - timedelta(hours=12)).date()


class HorizonProfile:
    """The site's local horizon: altitude limit as a function of azimuth (linear in between).

    ``limit(az)`` is evaluated on a profile widened by ``margin_az`` degrees
    either side (a running maximum), so that a target moving a little in
    azimuth between two grid instants never dips behind a horizon peak unseen.
    """

    def __init__(self, points: list[tuple[float, float]], margin_az: float = 2.0):
        self.points = sorted((float(a) % 360.0, float(h)) for a, h in points)
        grid = np.arange(0.0, 360.0, 0.25)
        if self.points:
            az = np.array([p[0] for p in self.points])
            alt = np.array([p[1] for p in self.points])
            # wrap so that interpolation across north is continuous
            az = np.concatenate([az - 360.0, az, az + 360.0])
            alt = np.concatenate([alt, alt, alt])
            base = np.interp(grid, az, alt)
        else:
            base = np.full_like(grid, -90.0)
        width = int(round(margin_az / 0.25))
        padded = np.concatenate([base[-width:], base, base[:width]]) if width else base
        if width:
            windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * width + 1)
            self._table = windows.max(axis=1)
        else:
            self._table = base
        self._grid_step = 0.25

    @property
    def empty(self) -> bool:
        return not self.points

    def limit(self, az: np.ndarray) -> np.ndarray:
        """Return the (widened) horizon altitude at azimuths ``az`` (degrees)."""
        idx = np.round(np.asarray(az) % 360.0 / self._grid_step).astype(np.int64) % len(self._table)
        return self._table[idx]

    def exact(self, az: np.ndarray) -> np.ndarray:
        """Return the horizon altitude exactly as the site profile gives it (no widening)."""
        if not self.points:
            return np.full(np.shape(az), -90.0)
        a = np.array([p[0] for p in self.points])
        h = np.array([p[1] for p in self.points])
        return np.interp(np.asarray(az) % 360.0, np.concatenate([a - 360, a, a + 360]), np.concatenate([h, h, h]))


@dataclass
class NightSky:
    """Sun, moon and the CIRS -> AltAz rotation of one night on a regular time grid.

    ``times`` are Unix seconds (UTC) from ``start`` in steps of ``step``; the grid
    covers sunset to sunrise (plus one node either side). Built once per night
    and site by :meth:`build`; targets are then evaluated with :meth:`altaz`.
    """

    night: date
    site: object
    step: float
    times: np.ndarray
    rotation: np.ndarray  # (T, 3, 3): AltAz vector = rotation @ CIRS vector
    sun_alt: np.ndarray
    moon_alt: np.ndarray
    moon_vec: np.ndarray  # (T, 3) topocentric AltAz unit vectors
    moon_illumination: np.ndarray
    mid_unix: float
    sunset: float | None = None
    sunrise: float | None = None
    horizon: HorizonProfile = field(default=None)  # type: ignore[assignment]

    @property
    def start(self) -> float:
        return float(self.times[0]) if len(self.times) else self.mid_unix

    @property
    def end(self) -> float:
        return float(self.times[-1]) if len(self.times) else self.mid_unix

    def index_at(self, unix: float) -> int:
        """Return the index of the last grid instant at or before ``unix`` (clipped)."""
        return int(np.clip(np.floor((unix - self.start) / self.step), 0, max(len(self.times) - 1, 0)))

    @classmethod
    def build(cls, night: date, site, step: float = 60.0) -> "NightSky":
        """Compute the night's sky for ``site`` (a rosace_core.config.Site) on a ``step``-second grid."""
        configure_offline()
        from astropy.coordinates import AltAz, CartesianRepresentation, CIRS, SkyCoord, get_body

        loc = _location(site)
        noon = datetime(night.year, night.month, night.day, 12, tzinfo=timezone.utc) - timedelta(hours=site.longitude / 15.0)
        t_noon = float(round(noon.timestamp()))  # whole seconds: plans are to the second
        nodes = t_noon + np.arange(0.0, 86400.0 + NODE_STEP, NODE_STEP)
        # astropy only where it matters: the dark part of the day, found first with a
        # low-precision sun (~0.01 deg) and padded by an hour either side
        rough = approximate_sun_altitude(nodes, site.latitude, site.longitude)
        dark = np.flatnonzero(rough < SUNSET_ALT + 2.0)
        pad = int(np.ceil(3600.0 / NODE_STEP))
        a, b = (int(dark[0]), int(dark[-1])) if len(dark) else (int(np.argmin(rough)),) * 2
        nodes = nodes[max(a - pad, 0): min(b + pad, len(nodes) - 1) + 1]
        tn = _unix_to_time(nodes)
        frame = AltAz(obstime=tn, location=loc)
        # geocentric positions with distances: their AltAz includes the topocentric parallax
        sun_geo = get_body("sun", tn)
        moon_geo = get_body("moon", tn)
        sun_nodes = sun_geo.transform_to(frame)
        moon_nodes = moon_geo.transform_to(frame)
        sun_alt_nodes = sun_nodes.alt.deg
        dark = sun_alt_nodes < SUNSET_ALT
        if dark.any():
            first = max(int(np.argmax(dark)) - 1, 0)
            last = min(len(nodes) - 1 - int(np.argmax(dark[::-1])) + 1, len(nodes) - 1)
        else:  # midnight sun: nothing to observe, keep a one-node grid
            first = last = int(np.argmin(sun_alt_nodes))
        lo, hi = nodes[first], nodes[last]
        times = np.arange(lo, hi + 0.5 * step, step)
        # the rotation from CIRS to AltAz, from astropy at the nodes of the night
        sel = slice(max(first - 2, 0), min(last + 3, len(nodes)))
        tsel = tn[sel]
        n = len(tsel)
        basis = np.repeat(np.eye(3)[:, None, :], n, axis=1)  # (3 basis, n, xyz)
        rep = CartesianRepresentation(basis[..., 0], basis[..., 1], basis[..., 2])
        cols = SkyCoord(rep, frame=CIRS(obstime=tsel[None, :])).transform_to(AltAz(obstime=tsel[None, :], location=loc))
        # build the vectors from alt/az so that the convention is ours: x north, y east, z up
        alt_b = np.radians(cols.alt.deg)
        az_b = np.radians(cols.az.deg)
        vec_b = np.stack([np.cos(alt_b) * np.cos(az_b), np.cos(alt_b) * np.sin(az_b), np.sin(alt_b)], axis=0)  # (3, basis, n)
        rot_nodes = vec_b  # rot[i, j, node]: component i of the image of basis j
        rotation = _spline(nodes[sel], rot_nodes, times).transpose(2, 0, 1)
        sun_alt = _spline(nodes[sel], sun_alt_nodes[sel], times)
        malt = np.radians(moon_nodes.alt.deg[sel])
        maz = np.radians(moon_nodes.az.deg[sel])
        mvec_nodes = np.stack([np.cos(malt) * np.cos(maz), np.cos(malt) * np.sin(maz), np.sin(malt)], axis=0)
        moon_vec = _spline(nodes[sel], mvec_nodes, times).T
        moon_vec /= np.linalg.norm(moon_vec, axis=1, keepdims=True)
        moon_alt, _ = altaz_from_vectors(moon_vec)
        # illuminated fraction from the sun-moon elongation seen from the Earth (astroplan's formula)
        elong = sun_geo.separation(moon_geo).rad
        phase_angle = np.arctan2(sun_geo.distance * np.sin(elong), moon_geo.distance - sun_geo.distance * np.cos(elong))
        illum_nodes = (1 + np.cos(phase_angle.value)) / 2.0
        illum = np.interp(times, nodes, illum_nodes)
        crossings = np.flatnonzero(np.diff(np.sign(sun_alt_nodes - SUNSET_ALT)))
        sunset = sunrise = None
        for i in crossings:
            # linear interpolation between the two nodes bracketing the crossing
            a, b = sun_alt_nodes[i] - SUNSET_ALT, sun_alt_nodes[i + 1] - SUNSET_ALT
            when = nodes[i] + NODE_STEP * a / (a - b)
            if a > 0 and sunset is None:
                sunset = float(when)
            elif a < 0 and sunset is not None and sunrise is None:
                sunrise = float(when)
        return cls(
            night=night,
            site=site,
            step=float(step),
            times=times,
            rotation=rotation,
            sun_alt=sun_alt,
            moon_alt=moon_alt,
            moon_vec=moon_vec,
            moon_illumination=illum,
            mid_unix=float(t_noon + 43200.0),
            sunset=sunset,
            sunrise=sunrise,
            horizon=HorizonProfile(list(site.horizon)),
        )

    @property
    def lst(self) -> np.ndarray:
        """Local apparent sidereal time at every grid instant, hours (astropy, computed once per night).

        For user rules: the hour angle of a target is ``(lst - ra / 15) mod 24`` hours.
        """
        cached = getattr(self, "_lst", None)
        if cached is None:
            import astropy.units as u

            t = _unix_to_time(self.times)
            cached = t.sidereal_time("apparent", longitude=self.site.longitude * u.deg).hour
            self._lst = cached
        return cached

    def target_cirs(self, ra_deg, dec_deg, pm_ra_cosdec=None, pm_dec=None, epoch=None) -> np.ndarray:
        """Return CIRS unit vectors (n, 3) of ICRS positions at the middle of the night.

        Proper motions (mas/yr) are applied linearly from ``epoch`` (Julian year);
        over decades this is well below an arcsecond for any star a slit takes.
        """
        import astropy.units as u
        from astropy.coordinates import CIRS, SkyCoord

        ra = np.atleast_1d(np.asarray(ra_deg, dtype=float))
        dec = np.atleast_1d(np.asarray(dec_deg, dtype=float))
        if len(ra) == 0:
            return np.zeros((0, 3))
        if pm_ra_cosdec is not None:
            years = 1970.0 + self.mid_unix / (365.25 * 86400.0) - np.asarray(epoch if epoch is not None else 2000.0, dtype=float)
            cosd = np.maximum(np.cos(np.radians(dec)), 1e-6)
            ra = (ra + np.asarray(pm_ra_cosdec) * years / 3.6e6 / cosd) % 360.0
            dec = np.clip(dec + np.asarray(pm_dec) * years / 3.6e6, -90.0, 90.0)
        c = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs").transform_to(CIRS(obstime=_unix_to_time(self.mid_unix)))
        return radec_to_vectors(c.ra.deg, c.dec.deg)

    def moon_in_cirs(self) -> np.ndarray:
        """Return (T, 3): the moon's AltAz vector carried back through the rotation (``R^T m``).

        ``cirs @ moon_in_cirs().T`` is then the cosine of every target's separation from the moon.
        """
        cached = getattr(self, "_moon_cirs", None)
        if cached is None:
            cached = np.einsum("tij,ti->tj", self.rotation, self.moon_vec)
            self._moon_cirs = cached
        return cached

    def vectors(self, cirs: np.ndarray) -> np.ndarray:
        """Return AltAz unit vectors (n, T, 3) of CIRS unit vectors (n, 3) at every grid instant."""
        return np.einsum("tij,nj->nti", self.rotation, cirs, optimize=True)

    def altaz(self, cirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (altitude deg, azimuth deg, moon separation deg), each (n, T)."""
        v = self.vectors(cirs)
        alt, az = altaz_from_vectors(v)
        cos_sep = np.clip(np.einsum("nti,ti->nt", v, self.moon_vec), -1.0, 1.0)
        return alt, az, np.degrees(np.arccos(cos_sep))
