"""The sky of one night on a time grid: sun, moon and every target, computed at once.

Astropy's ICRS -> AltAz transform costs about 10 microseconds per (target, time)
pair, far too slow for 1000 targets x 900 instants. It is, for stars, a fixed
part (ICRS -> CIRS: precession, nutation, annual aberration, light deflection;
it changes by less than 0.2" over a night) followed by a time-dependent
rotation (Earth rotation, polar motion, plus 0.3" of diurnal aberration). So
targets go to CIRS once per night, the CIRS -> AltAz matrix is computed at
20-minute nodes (three basis vectors per node), the matrix is interpolated to
the grid with a cubic spline (error ~1e-6 rad), and every target x time
direction is one ``einsum``. The sun and moon come at the same nodes and are
splined likewise.

The astrometry at the nodes is ERFA's, called directly (``erfa.apio``/``atioq``
for CIRS -> AltAz, ``apci13``/``atciq`` for ICRS -> CIRS, ``moon98`` and the
Earth's ephemeris for the bodies): exactly the functions astropy's transforms
call underneath, with astropy's Time supplying TT/UT1/TDB and its IERS tables the
polar motion. Going through astropy's SkyCoord instead costs 10-20 ms per
transform in object overhead, which dominated a cold plan. The result agrees
with astropy's AltAz to about one arcsecond at every minute of the night
(checked by the tests against astropy itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from rosace_core.astro import configure_offline

if TYPE_CHECKING:
    from rosace_core.config import Site

#: spacing of the astropy nodes that the rotation and the sun/moon are splined from, seconds
#: (a cubic spline of these smooth functions errs by ~1e-6 rad at 20 minutes)
NODE_STEP = 1200.0
#: apparent altitude of the upper limb of the sun at sunset/sunrise, degrees
SUNSET_ALT = -0.833


def _unix_to_time(unix: np.ndarray | float):
    from astropy.time import Time

    return Time(np.asarray(unix, dtype=float), format="unix", scale="utc")


def _spline(x_nodes: np.ndarray, y_nodes: np.ndarray, x: np.ndarray) -> np.ndarray:
    from scipy.interpolate import CubicSpline

    return CubicSpline(x_nodes, y_nodes, axis=-1)(x)


AU_M = 149597870700.0
C_AU_DAY = 299792458.0 * 86400.0 / AU_M


def _erfa_night(nodes: np.ndarray, site):
    """Return the night's astrometry at Unix ``nodes``, straight from ERFA (what astropy calls underneath).

    Returns ``(rot, [sun_cirs, sun_altaz, moon_cirs, moon_altaz])``: ``rot`` (3, 3, n) maps
    CIRS to AltAz vectors (``rot[i, j]``: component i of the image of basis vector j);
    ``*_cirs`` (n, 3) are the apparent geocentric positions in au; ``*_altaz`` (n, 3) the
    topocentric AltAz unit vectors (parallax included). Same steps as astropy's
    ``get_body(...).transform_to(AltAz)``, minus the per-call object overhead (one astropy
    transform costs 10-20 ms whatever the number of instants): the tests hold the result
    to astropy's within an arcsecond or two.
    """
    import erfa
    from astropy.coordinates.builtin_frames.utils import get_polar_motion

    t = _unix_to_time(nodes)
    tt, ut1, tdb = t.tt, t.ut1, t.tdb
    xp, yp = get_polar_motion(t)
    sp = erfa.sp00(tt.jd1, tt.jd2)
    era = erfa.era00(ut1.jd1, ut1.jd2)
    elong, phi = np.radians(site.longitude), np.radians(site.latitude)
    # CIRS -> observed, exactly astropy's context; diurnal aberration (< 0.32") left out so
    # that the map is a pure rotation that can be interpolated and applied to any vector
    astrom = erfa.apio(sp, era, elong, phi, float(site.elevation), xp, yp, 0.0, 0.0)
    astrom["diurab"] = 0.0
    ri = np.array([0.0, np.pi / 2, 0.0])[:, None]
    di = np.array([0.0, 0.0, np.pi / 2])[:, None]
    aob, zob, _, _, _ = erfa.atioq(ri, di, astrom[None, :])
    alt = np.pi / 2 - zob
    rot = np.stack([np.cos(alt) * np.cos(aob), np.cos(alt) * np.sin(aob), np.sin(alt)], axis=0)  # (xyz, basis, n)
    # geocentric ICRS -> CIRS context (Earth's barycentric velocity, bias-precession-nutation)
    ast, _ = erfa.apci13(tdb.jd1, tdb.jd2)
    v_earth = ast["v"] * C_AU_DAY  # au/day
    sun = -ast["eh"] * ast["em"][:, None]  # Earth -> Sun, au (the Sun barely moves in a light time)
    moon = erfa.moon98(tdb.jd1, tdb.jd2)["p"]
    tau = np.linalg.norm(moon, axis=1) / C_AU_DAY
    # astropy's apparent position: the body at t - light time, seen from the Earth at t
    moon = erfa.moon98(tdb.jd1, tdb.jd2 - tau)["p"] - v_earth * tau[:, None]
    out = []
    # observer's geocentric position in CIRS, au: ITRS position through polar motion and ERA
    r_c2t = erfa.c2tcio(np.eye(3), era, erfa.pom00(xp, yp, sp))  # (n, 3, 3) CIRS -> ITRS
    obs = np.einsum("nji,j->ni", r_c2t, erfa.gd2gc(1, elong, phi, float(site.elevation)) / AU_M)
    for body in (sun, moon):
        dist = np.linalg.norm(body, axis=1, keepdims=True)
        ab = erfa.ab(body / dist, ast["v"], ast["em"], ast["bm1"])  # annual aberration
        cirs = np.einsum("nij,nj->ni", ast["bpn"], ab) * dist
        out.append(cirs)
        topo = cirs - obs
        topo /= np.linalg.norm(topo, axis=1, keepdims=True)
        out.append(np.einsum("ijn,nj->ni", rot, topo))
    return rot, out


def altaz_from_vectors(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (altitude, azimuth) in degrees of AltAz unit vectors ``v[..., 3]`` (x north, y east, z up)."""
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    alt = np.degrees(np.arctan2(z, np.hypot(x, y)))
    az = np.degrees(np.arctan2(y, x)) % 360.0
    return alt, az


def radec_to_vectors(ra_deg: ArrayLike, dec_deg: ArrayLike) -> np.ndarray:
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
    site: Site
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
        noon = datetime(night.year, night.month, night.day, 12, tzinfo=timezone.utc) - timedelta(hours=site.longitude / 15.0)
        t_noon = float(round(noon.timestamp()))  # whole seconds: plans are to the second
        nodes = t_noon + np.arange(0.0, 86400.0 + NODE_STEP, NODE_STEP)
        # ERFA only where it matters: the dark part of the day, found first with a
        # low-precision sun (~0.01 deg) and padded by an hour either side
        rough = approximate_sun_altitude(nodes, site.latitude, site.longitude)
        dark = np.flatnonzero(rough < SUNSET_ALT + 2.0)
        pad = int(np.ceil(3600.0 / NODE_STEP))
        a, b = (int(dark[0]), int(dark[-1])) if len(dark) else (int(np.argmin(rough)),) * 2
        nodes = nodes[max(a - pad, 0): min(b + pad, len(nodes) - 1) + 1]
        rot_all, (sun_geo, sun_vec, moon_geo, moon_vec_nodes) = _erfa_night(nodes, site)
        sun_alt_nodes, _ = altaz_from_vectors(sun_vec)
        sun_down = sun_alt_nodes < SUNSET_ALT
        if sun_down.any():
            first = max(int(np.argmax(sun_down)) - 1, 0)
            last = min(len(nodes) - 1 - int(np.argmax(sun_down[::-1])) + 1, len(nodes) - 1)
        else:  # midnight sun: nothing to observe, keep a one-node grid
            first = last = int(np.argmin(sun_alt_nodes))
        lo, hi = nodes[first], nodes[last]
        times = np.arange(lo, hi + 0.5 * step, step)
        # splined from the nodes of the night, two spare nodes either side for the spline's ends
        sel = slice(max(first - 2, 0), min(last + 3, len(nodes)))
        rotation = _spline(nodes[sel], rot_all[..., sel], times).transpose(2, 0, 1)
        sun_alt = _spline(nodes[sel], sun_alt_nodes[sel], times)
        moon_vec = _spline(nodes[sel], moon_vec_nodes[sel].T, times).T
        moon_vec /= np.linalg.norm(moon_vec, axis=1, keepdims=True)
        moon_alt, _ = altaz_from_vectors(moon_vec)
        # illuminated fraction from the sun-moon elongation seen from the Earth (astroplan's formula)
        d_sun = np.linalg.norm(sun_geo, axis=1)
        d_moon = np.linalg.norm(moon_geo, axis=1)
        elong = np.arccos(np.clip(np.einsum("ni,ni->n", sun_geo, moon_geo) / (d_sun * d_moon), -1.0, 1.0))
        phase_angle = np.arctan2(d_sun * np.sin(elong), d_moon - d_sun * np.cos(elong))
        illum_nodes = (1 + np.cos(phase_angle)) / 2.0
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
        import erfa

        ra = np.atleast_1d(np.asarray(ra_deg, dtype=float))
        dec = np.atleast_1d(np.asarray(dec_deg, dtype=float))
        if len(ra) == 0:
            return np.zeros((0, 3))
        if pm_ra_cosdec is not None:
            years = 1970.0 + self.mid_unix / (365.25 * 86400.0) - np.asarray(epoch if epoch is not None else 2000.0, dtype=float)
            cosd = np.maximum(np.cos(np.radians(dec)), 1e-6)
            ra = (ra + np.asarray(pm_ra_cosdec) * years / 3.6e6 / cosd) % 360.0
            dec = np.clip(dec + np.asarray(pm_dec) * years / 3.6e6, -90.0, 90.0)
        # geocentric ICRS -> CIRS with ERFA (astropy's own steps: aberration, light deflection,
        # bias-precession-nutation), the context computed once for the middle of the night
        cached = getattr(self, "_astrom_mid", None)
        if cached is None:
            tdb = _unix_to_time(self.mid_unix).tdb
            cached, _ = erfa.apci13(tdb.jd1, tdb.jd2)
            self._astrom_mid = cached
        ri, di = erfa.atciq(np.radians(ra), np.radians(dec), 0.0, 0.0, 0.0, 0.0, cached)
        return radec_to_vectors(np.degrees(ri), np.degrees(di))

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
