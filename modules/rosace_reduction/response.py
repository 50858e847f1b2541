"""Flux calibration pieces: reference star library, site extinction, the
instrument response from a reference star, telluric correction, barycentric
correction and continuum normalisation.
"""

from __future__ import annotations

import csv
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import interpolate, ndimage

from rosace_core.errors import RosaceError
from rosace_core.resources import resource_path

#: Telluric absorption bands (A, air): O2 gamma, O2 B, H2O, O2 A, H2O.
TELLURIC_BANDS = ((6274.0, 6320.0), (6865.0, 6960.0), (7160.0, 7340.0), (7590.0, 7700.0), (8120.0, 8350.0))
#: Strong stellar lines of hot reference stars (A, air), masked when fitting a response or a continuum.
STELLAR_LINES = (3889.05, 3970.07, 4101.74, 4340.47, 4471.48, 4861.33, 5875.62, 6562.80, 6678.15, 7065.19)


class ResponseError(RosaceError):
    """The instrument response cannot be computed (unknown reference star, no overlap)."""


@dataclass
class ReferenceSpectrum:
    """A tabulated spectrophotometric standard."""

    key: str
    names: list[str]
    wavelength: np.ndarray
    flux: np.ndarray
    bandwidth: np.ndarray
    source: str

    def __call__(self, wl: np.ndarray) -> np.ndarray:
        """Flux (erg/s/cm2/A) interpolated at ``wl``; NaN outside the table."""
        return np.interp(wl, self.wavelength, self.flux, left=np.nan, right=np.nan)


def _norm_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _reference_dirs(extra: list[Path] | None = None) -> list[Path]:
    return [*(extra or []), resource_path("reference_spectra")]


def find_reference(name: str, extra_dirs: list[Path] | None = None) -> ReferenceSpectrum | None:
    """Return the reference spectrum of star ``name`` (any listed alias), or None."""
    want = _norm_name(name)
    for folder in _reference_dirs(extra_dirs):
        index = Path(folder) / "index.toml"
        if not index.exists():
            continue
        for key, entry in tomllib.loads(index.read_text(encoding="utf-8")).items():
            names = [key, *entry.get("names", [])]
            if want in {_norm_name(n) for n in names}:
                return _load_reference(str(Path(folder) / f"{entry.get('file', key + '.csv')}"), key, tuple(names), entry.get("source", ""))
    return None


@lru_cache(maxsize=64)
def _load_reference(path: str, key: str, names: tuple, source: str) -> ReferenceSpectrum:
    wl, fl, bw = [], [], []
    with open(path, encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            wl.append(float(row["wavelength"]))
            fl.append(float(row["flux"]))
            bw.append(float(row.get("bandwidth") or 0))
    order = np.argsort(wl)
    return ReferenceSpectrum(key, list(names), np.array(wl)[order], np.array(fl)[order], np.array(bw)[order], source)


@lru_cache(maxsize=16)
def load_extinction(name: str = "orm") -> tuple[np.ndarray, np.ndarray]:
    """Extinction curve (wavelength A, k mag/airmass) by site name (resources/extinction) or CSV path."""
    path = Path(name)
    if not (path.suffix == ".csv" and path.exists()):
        path = resource_path("extinction", f"{name}.csv")
    if not path.exists():
        raise ResponseError(f"no extinction curve {name!r}")
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return data[:, 0], data[:, 1]


def extinction_factor(wl: np.ndarray, airmass: float, curve: str = "orm") -> np.ndarray:
    """Multiplicative correction 10^(0.4 k X) bringing a spectrum above the atmosphere."""
    w, k = load_extinction(curve)
    return 10 ** (0.4 * np.interp(wl, w, k) * float(airmass))


def line_mask(wl: np.ndarray, half_width: float, tellurics: bool = True, lines: tuple = STELLAR_LINES) -> np.ndarray:
    """True where ``wl`` falls on a strong stellar line (+- half_width A) or a telluric band."""
    m = np.zeros(wl.shape, bool)
    for c in lines:
        m |= np.abs(wl - c) < half_width
    if tellurics:
        for lo, hi in TELLURIC_BANDS:
            m |= (wl > lo) & (wl < hi)
    return m


@dataclass
class Response:
    """Instrument response: observed counts/s/A above the atmosphere per unit of true flux."""

    wavelength: np.ndarray
    response: np.ndarray
    telluric: np.ndarray
    airmass: float
    star: str

    def at(self, wl: np.ndarray) -> np.ndarray:
        return np.interp(wl, self.wavelength, self.response, left=np.nan, right=np.nan)

    def telluric_at(self, wl: np.ndarray, airmass: float) -> np.ndarray:
        """Telluric transmission at ``airmass`` (scaled from the reference star's)."""
        t = np.interp(wl, self.wavelength, self.telluric, left=1.0, right=1.0)
        return np.clip(t, 0.05, 1.0) ** (float(airmass) / max(self.airmass, 1e-3))

    def to_arrays(self) -> dict:
        return {"wavelength": self.wavelength, "response": self.response, "telluric": self.telluric, "airmass": np.array([self.airmass])}


def smooth_continuum(wl: np.ndarray, flux: np.ndarray, mask: np.ndarray, knots_every: float, iterations: int = 4, clip: tuple[float, float] = (2.0, 3.0)) -> np.ndarray:
    """Smooth continuum through unmasked points: least-squares cubic spline with knots every ``knots_every`` A, asymmetric clipping."""
    good = ~mask & np.isfinite(flux)
    lo, hi = wl[0], wl[-1]
    nk = max(int((hi - lo) / knots_every), 1)
    for _ in range(iterations + 1):
        xg, yg = wl[good], flux[good]
        if len(xg) < 8:
            raise ResponseError("too few continuum points")
        t = np.linspace(xg[0], xg[-1], nk + 1)[1:-1]
        try:
            spl = interpolate.LSQUnivariateSpline(xg, yg, t, k=3)
        except ValueError:
            spl = interpolate.UnivariateSpline(xg, yg, k=3, s=len(xg))
        model = spl(wl)
        resid = flux - model
        s = 1.4826 * np.median(np.abs(resid[good]))
        new = good & (resid > -clip[0] * s) & (resid < clip[1] * s)
        if (new == good).all():
            break
        good = new
    return model


def compute_response(wl: np.ndarray, rate: np.ndarray, reference: ReferenceSpectrum, airmass: float, *, resolution: float, extinction: str = "orm") -> Response:
    """Instrument response from a reference star's extracted spectrum.

    ``rate`` is in counts/s/A on the wavelength grid ``wl``. The observed
    spectrum, brought above the atmosphere, is averaged over each tabulated
    passband of the reference, divided by the reference flux and fitted with a
    smooth spline; stellar lines and telluric bands are left out. The
    telluric transmission is the observed/model ratio inside the bands.
    """
    above = rate * extinction_factor(wl, airmass, extinction)
    ok = (reference.wavelength > wl.min()) & (reference.wavelength < wl.max())
    if ok.sum() < 5:
        raise ResponseError(f"the reference spectrum of {reference.key} ({reference.wavelength.min():.0f}-{reference.wavelength.max():.0f} A) does not cover {wl.min():.0f}-{wl.max():.0f} A")
    # Ratio per pixel against the smoothly interpolated reference.
    ref = reference(wl)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = above / ref
    hw = max(3 * resolution, 25.0)
    mask = line_mask(wl, hw) | ~np.isfinite(ratio) | (ratio <= 0)
    covered = np.isfinite(ref)
    step = float(np.median(np.diff(wl)))
    # Knots no closer than the reference passbands allow.
    spacing = max(float(np.median(reference.bandwidth[ok])) * 3 if reference.bandwidth[ok].any() else 150.0, 40 * step, 100.0)
    sel = covered
    resp = np.full(wl.shape, np.nan)
    resp[sel] = smooth_continuum(wl[sel], ratio[sel], mask[sel], spacing, clip=(3.0, 3.0))
    # Telluric transmission: observed over model inside the bands only.
    tell = np.ones_like(wl)
    in_band = line_mask(wl, 0.0, tellurics=True, lines=()) & sel
    with np.errstate(divide="ignore", invalid="ignore"):
        t = ratio / resp
    tell[in_band] = np.clip(ndimage.median_filter(np.nan_to_num(t, nan=1.0), 3)[in_band], 0.05, 1.0)
    return Response(wl.copy(), resp, tell, float(airmass), reference.key)


_ZERO_EOP = None


def _zero_earth_orientation():
    """An IERS table with zero UT1-UTC and polar motion.

    The barycentric correction does not need them: |UT1-UTC| < 0.9 s moves the
    diurnal velocity (<= 0.47 km/s) by < 0.03 m/s and polar motion (< 1") by
    less; reading the full IERS tables costs 1-3 s in every new process (each
    batch worker).
    """
    global _ZERO_EOP
    if _ZERO_EOP is None:
        from astropy import units as u
        from astropy.table import QTable
        from astropy.utils import iers

        mjd = np.array([0.0, 100000.0])
        zero = np.zeros(2)
        _ZERO_EOP = iers.IERS_B(QTable({"MJD": mjd * u.d, "UT1_UTC": zero * u.s, "PM_x": zero * u.arcsec, "PM_y": zero * u.arcsec}))
    return _ZERO_EOP


def barycentric_correction(ra_deg: float, dec_deg: float, jd_mid: float, lat: float, lon: float, elev: float) -> float:
    """Barycentric radial-velocity correction (km/s) to add to a measured velocity (astropy, offline).

    Computed by astropy's ``radial_velocity_correction`` with Earth orientation
    parameters set to zero (< 0.1 m/s from the full IERS computation).
    """
    from astropy import units as u
    from astropy.coordinates import EarthLocation, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers

    from rosace_core.astro import configure_offline

    configure_offline()
    loc = EarthLocation.from_geodetic(lon * u.deg, lat * u.deg, elev * u.m)
    coord = SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="icrs")
    with iers.earth_orientation_table.set(_zero_earth_orientation()):
        v = coord.radial_velocity_correction(kind="barycentric", obstime=Time(jd_mid, format="jd", scale="utc"), location=loc)
    return float(v.to(u.km / u.s).value)


def normalise(wl: np.ndarray, flux: np.ndarray, resolution: float) -> np.ndarray:
    """Continuum-normalised flux (stellar lines and telluric bands masked, upper envelope favoured)."""
    mask = line_mask(wl, max(3 * resolution, 15.0)) | ~np.isfinite(flux)
    span = wl[-1] - wl[0]
    cont = smooth_continuum(wl, flux, mask, max(span / 6, 30 * resolution), clip=(1.5, 3.0))
    return flux / cont
