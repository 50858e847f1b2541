"""Stars the simulator puts on the slit: continuum from the spectral type,
absorption lines, Be-star emission varying with date, and radial velocity.

Every spectrum here is in the star's rest frame, air wavelengths (A),
normalised to a continuum of 1 (:func:`Star.normalised_spectrum`); the
photon continuum shape is :func:`Star.photon_continuum` (relative, 1 at
5500 A). The renderer shifts, scales and convolves them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone

import numpy as np

# numpy's own (2.0+) rather than scipy.integrate's: the same sums, without importing
# scipy.integrate (~25 MB) into the simulator.
trapezoid = np.trapezoid if hasattr(np, "trapezoid") else np.trapz  # type: ignore[attr-defined]  # numpy < 2 only

C_KMS = 299792.458
HALPHA = 6562.80  # air, A
EW_WINDOW = 25.0  # A either side of H-alpha for the truth equivalent width

# Effective temperature per spectral subtype (dwarfs), interpolated within a class.
_CLASS_ORDER = "OBAFGKM"
_TEFF = {
    "O": [(5, 42000), (9, 34000)],
    "B": [(0, 30000), (1, 25400), (2, 22000), (3, 18700), (5, 15400), (7, 13000), (8, 11900), (9, 10500)],
    "A": [(0, 9500), (2, 8900), (5, 8200), (7, 7800)],
    "F": [(0, 7300), (2, 7000), (5, 6550), (8, 6250)],
    "G": [(0, 5950), (2, 5800), (5, 5650), (8, 5450)],
    "K": [(0, 5250), (2, 4950), (5, 4350), (7, 4050)],
    "M": [(0, 3850), (2, 3550), (5, 3050), (8, 2650)],
}

# Line groups: (lines [(rest wavelength A, relative strength)], kind, EW(A) of a strength-1 line vs Teff).
# Balmer lines are Lorentzian (pressure broadened), metals gaussian (rotation).
_BALMER = [(6562.80, 1.0), (4861.33, 1.15), (4340.46, 1.05), (4101.73, 0.95), (3970.07, 0.85), (3889.05, 0.7), (3835.38, 0.55)]
_LINE_GROUPS = [
    ("H I", _BALMER, "lorentz", [(3000, 0.6), (3800, 1.0), (4500, 1.5), (5250, 2.0), (5800, 3.0), (6550, 5.0), (7300, 8.0), (8200, 11.5), (9500, 13.5), (10500, 11.0), (13000, 8.0), (18700, 5.5), (25000, 3.8), (34000, 2.6), (42000, 2.2)]),
    ("Ca II", [(3933.66, 1.0), (3968.47, 0.7)], "gauss", [(3000, 12.0), (4500, 16.0), (5800, 13.0), (7300, 5.0), (9500, 0.5), (12000, 0.15), (42000, 0.1)]),
    ("Na I", [(5889.95, 1.0), (5895.92, 0.8)], "gauss", [(3000, 4.0), (4500, 2.0), (5800, 0.8), (7300, 0.3), (9500, 0.1), (42000, 0.08)]),
    ("Mg I", [(5167.32, 0.6), (5172.68, 0.9), (5183.60, 1.0)], "gauss", [(3000, 2.5), (4500, 2.2), (5800, 1.1), (7300, 0.5), (9500, 0.2), (20000, 0.05), (42000, 0.0)]),
    ("Ca I", [(4226.73, 1.0), (6122.22, 0.18), (6162.17, 0.2)], "gauss", [(3000, 6.0), (4500, 3.0), (5800, 1.5), (7300, 0.4), (9500, 0.05), (42000, 0.0)]),
    ("Fe I", [(4383.55, 1.0), (5269.54, 0.8), (5328.04, 0.6), (4957.60, 0.5), (6494.98, 0.4), (6546.24, 0.35), (6430.85, 0.3), (6678.00, 0.25)], "gauss", [(3000, 0.9), (4500, 0.9), (5800, 0.5), (7300, 0.2), (9500, 0.03), (42000, 0.0)]),
    ("He I", [(4471.48, 1.0), (4026.19, 0.9), (5875.62, 1.0), (6678.15, 0.7)], "gauss", [(9500, 0.0), (11000, 0.1), (15000, 0.5), (20000, 0.9), (25000, 0.9), (34000, 0.6), (42000, 0.4)]),
    ("Si II", [(6347.11, 1.0), (6371.37, 0.7)], "gauss", [(7300, 0.0), (9500, 0.25), (12000, 0.35), (15000, 0.25), (22000, 0.1), (30000, 0.0)]),
    ("C II", [(6578.05, 1.0), (6582.88, 0.7)], "gauss", [(13000, 0.0), (18000, 0.1), (25000, 0.2), (34000, 0.1)]),
]
# TiO band heads of cool stars: (head A, extent to the blue A, relative depth).
_TIO = [(4955.0, 120.0, 0.8), (5167.0, 120.0, 0.6), (5448.0, 150.0, 0.7), (6159.0, 100.0, 1.0), (7054.0, 150.0, 1.0)]
_VSINI = [(3000, 3.0), (5800, 4.0), (7300, 40.0), (9500, 110.0), (20000, 150.0), (42000, 150.0)]


def _interp_logt(table: Sequence[tuple[float, float]], teff: float) -> float:
    t = np.log10([p[0] for p in table])
    v = [p[1] for p in table]
    return float(np.interp(np.log10(teff), t, v))


def parse_spectral_type(spectral_type: str) -> tuple[str, float, bool]:
    """``'B1.5IVe'`` -> (class 'B', subtype 1.5, emission True). Unknown types read as G2."""
    m = re.match(r"\s*([OBAFGKM])\s*(\d+(?:\.\d+)?)?", spectral_type.upper())
    if not m:
        return "G", 2.0, False
    emission = bool(re.search(r"E(?![A-Z])|\bE\b|EM", spectral_type.upper()[m.end():])) or spectral_type.rstrip().endswith("e")
    return m.group(1), float(m.group(2) or 5.0), emission


def teff_of(spectral_type: str) -> float:
    """Effective temperature (K) of a spectral type (dwarf scale)."""
    cls, sub, _ = parse_spectral_type(spectral_type)
    pts = _TEFF[cls]
    t = float(np.interp(sub, [p[0] for p in pts], [p[1] for p in pts]))
    # Beyond the last tabulated subtype, continue toward the next class.
    i = _CLASS_ORDER.index(cls)
    if sub > pts[-1][0] and i + 1 < len(_CLASS_ORDER):
        nxt = _TEFF[_CLASS_ORDER[i + 1]][0][1]
        t = pts[-1][1] + (nxt - pts[-1][1]) * (sub - pts[-1][0]) / (10 - pts[-1][0])
    return t


def _iso(t):
    """Dates from a YAML scenario (datetime/date objects) as ISO text, so the truth stays JSON."""
    if isinstance(t, datetime):
        return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).isoformat()
    if isinstance(t, date):
        return datetime(t.year, t.month, t.day, tzinfo=timezone.utc).isoformat()
    return t


def _to_jd(t) -> float:
    if t is None:
        return 2451545.0
    if isinstance(t, (int, float)):
        return float(t)
    if isinstance(t, str):
        t = datetime.fromisoformat(t.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return 2440587.5 + t.timestamp() / 86400.0


@dataclass
class BeEmission:
    """H-alpha emission of a Be star: net EW, double-peaked shape, optional periodic variation.

    ``ew`` is the *net* equivalent width (A) of H-alpha (photospheric absorption
    plus emission), negative for net emission (the BeSS/ARAS convention).
    ``ew(t) = ew + ew_amplitude * sin(2 pi (t - t0) / period_days)``;
    ``V/R(t) = v_over_r * (1 + vr_amplitude * sin(2 pi (t - t0) / vr_period_days))``.
    """

    ew: float = -20.0
    separation_kms: float = 250.0  # peak separation
    fwhm_kms: float = 220.0  # of each peak
    v_over_r: float = 1.0
    ew_amplitude: float = 0.0
    period_days: float | None = None
    vr_amplitude: float = 0.0
    vr_period_days: float | None = None
    t0: float | str | None = None  # JD or ISO date
    hbeta_ratio: float = 0.2  # H-beta emission area relative to H-alpha's

    def __post_init__(self):
        self.t0 = _iso(self.t0)

    def at(self, time) -> dict:
        """EW (A) and V/R at ``time`` (datetime, ISO text or JD)."""
        jd, jd0 = _to_jd(time), _to_jd(self.t0) if self.t0 is not None else 2451545.0
        ew, vr = self.ew, self.v_over_r
        if self.period_days:
            ew += self.ew_amplitude * math.sin(2 * math.pi * (jd - jd0) / self.period_days)
        if self.vr_period_days:
            vr *= 1 + self.vr_amplitude * math.sin(2 * math.pi * (jd - jd0) / self.vr_period_days)
        return {"ew": ew, "v_over_r": max(vr, 0.05)}


@dataclass
class RVCurve:
    """Radial velocity (km/s, barycentric) of the star: constant ``gamma`` plus an optional Keplerian orbit.

    ``t0`` is the time of periastron (JD or ISO); ``omega_deg`` the argument of periastron.
    """

    gamma: float = 0.0
    k: float = 0.0
    period_days: float | None = None
    t0: float | str | None = None
    e: float = 0.0
    omega_deg: float = 90.0

    def __post_init__(self):
        self.t0 = _iso(self.t0)

    def at(self, time) -> float:
        """Barycentric RV (km/s) at ``time``."""
        if not self.period_days or not self.k:
            return self.gamma
        mean_anom = 2 * math.pi * ((_to_jd(time) - _to_jd(self.t0)) / self.period_days % 1.0)
        ecc = min(max(self.e, 0.0), 0.95)
        big_e = mean_anom
        for _ in range(30):  # Newton on Kepler's equation
            big_e -= (big_e - ecc * math.sin(big_e) - mean_anom) / (1 - ecc * math.cos(big_e))
        nu = 2 * math.atan2(math.sqrt(1 + ecc) * math.sin(big_e / 2), math.sqrt(1 - ecc) * math.cos(big_e / 2))
        w = math.radians(self.omega_deg)
        return self.gamma + self.k * (math.cos(nu + w) + ecc * math.cos(w))


@dataclass
class Star:
    """A star the simulator can put on the slit.

    ``ra``/``dec`` in degrees (ICRS), ``vmag`` the V magnitude, ``spectral_type``
    like ``'B0.5IVe'``. ``be_emission``: a :class:`BeEmission`, a dict of its
    fields, a number (net H-alpha EW, A) or None (an ``e`` in the spectral type
    then gives a default -20 A emission). ``rv_curve``: an :class:`RVCurve`, a
    dict of its fields, a number (constant RV, km/s) or None (0 km/s).
    """

    name: str
    ra: float
    dec: float
    vmag: float
    spectral_type: str = "G2V"
    be_emission: BeEmission | dict | float | None = None
    rv_curve: RVCurve | dict | float | None = None
    vsini: float | None = None  # km/s; default by spectral type
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        self.ra, self.dec, self.vmag = _angle(self.ra, hours=True), _angle(self.dec, hours=False), float(self.vmag)
        be = self.be_emission
        if isinstance(be, dict):
            be = BeEmission(**{k: v for k, v in be.items() if k in BeEmission.__dataclass_fields__})
        elif isinstance(be, (int, float)) and not isinstance(be, bool):
            be = BeEmission(ew=float(be))
        elif be is None and parse_spectral_type(self.spectral_type)[2]:
            be = BeEmission()
        self.be_emission = be
        rv = self.rv_curve
        if isinstance(rv, dict):
            rv = RVCurve(**{k: v for k, v in rv.items() if k in RVCurve.__dataclass_fields__})
        elif isinstance(rv, (int, float)):
            rv = RVCurve(gamma=float(rv))
        self.rv_curve = rv or RVCurve()

    # ------------------------------------------------------------ building
    @classmethod
    def from_catalogue(cls, entry: dict) -> Star:
        """Build a star from a scenario catalogue entry.

        Accepted keys: ``name``, ``ra``/``dec`` (degrees, or sexagesimal text
        'hh:mm:ss' / 'dd:mm:ss'), ``vmag`` (or ``v``, ``mag``), ``spectral_type``
        (or ``sptype``, ``type``), ``be_emission`` (number or mapping), ``rv_curve``
        (number or mapping) or ``rv`` (km/s), ``vsini``. Raises ValueError on a
        missing magnitude or position.
        """
        e = {str(k).lower(): v for k, v in entry.items()}
        mag = next((e[k] for k in ("vmag", "v", "mag", "magnitude") if k in e), None)
        if mag is None or "ra" not in e or "dec" not in e:
            raise ValueError(f"catalogue entry {entry.get('name', entry)!r} needs ra, dec and vmag")
        ra, dec = _angle(e["ra"], hours=True), _angle(e["dec"], hours=False)
        return cls(
            name=str(e.get("name", "star")),
            ra=ra,
            dec=dec,
            vmag=float(mag),
            spectral_type=str(e.get("spectral_type", e.get("sptype", e.get("type", "G2V")))),
            be_emission=e.get("be_emission"),
            rv_curve=e.get("rv_curve", e.get("rv")),
            vsini=e.get("vsini"),
        )

    @classmethod
    def generic(cls, ra: float, dec: float, vmag: float = 9.0, name: str | None = None) -> Star:
        """A solar-type star of magnitude ``vmag`` at any other pointing."""
        return cls(name=name or f"field star {ra:.3f} {dec:+.3f}", ra=ra, dec=dec, vmag=vmag, spectral_type="G2V")

    # ------------------------------------------------------------ physics
    @property
    def teff(self) -> float:
        """Effective temperature (K) from the spectral type."""
        return teff_of(self.spectral_type)

    @property
    def rotation_kms(self) -> float:
        """Projected rotational velocity (km/s) broadening the metal lines."""
        if self.vsini is not None:
            return float(self.vsini)
        return 250.0 if self.be_emission else _interp_logt(_VSINI, self.teff)

    def rv(self, time) -> float:
        """Barycentric radial velocity (km/s) at ``time``."""
        curve = self.rv_curve
        assert isinstance(curve, RVCurve)  # __post_init__ made every accepted form an RVCurve
        return float(curve.at(time))

    def photon_continuum(self, wavelength: np.ndarray) -> np.ndarray:
        """Blackbody photon flux at ``wavelength`` (A) relative to its value at 5500 A."""
        wl = np.asarray(wavelength, dtype=np.float64)
        c2 = 1.4387769e8 / self.teff  # hc/k in A*K / T
        return (5500.0 / wl) ** 4 * np.expm1(c2 / 5500.0) / np.expm1(c2 / wl)

    def lines(self, time=None) -> list[dict]:
        """Absorption lines used: species, rest wavelength (A), EW (A), profile and width (A)."""
        teff = self.teff
        out = []
        sig_rot = self.rotation_kms / C_KMS / 1.6  # gaussian sigma per A of wavelength
        for species, lines, kind, table in _LINE_GROUPS:
            ew1 = _interp_logt(table, teff)
            if ew1 <= 0.002:
                continue
            for wl, rel in lines:
                ew = ew1 * rel
                if kind == "lorentz":
                    depth = float(np.clip(0.45 + 0.25 * (1 - abs(np.log10(teff / 9500)) * 3), 0.35, 0.75))
                    width = ew / (math.pi * depth)  # Lorentzian HWHM (A)
                else:
                    width = math.hypot(wl * sig_rot, 0.08 + 0.02 * math.sqrt(ew))  # gaussian sigma (A)
                    depth = min(ew / (math.sqrt(2 * math.pi) * width), 0.9)
                    width = ew / (math.sqrt(2 * math.pi) * depth)  # keep the EW when the depth saturates
                out.append({"species": species, "wavelength": wl, "ew": round(ew, 4), "profile": kind, "width": round(width, 4), "depth": round(depth, 4)})
        return out

    def emission(self, time=None) -> dict | None:
        """Be-star emission parameters at ``time`` (None for a normal star)."""
        b = self.be_emission
        if not isinstance(b, BeEmission):  # __post_init__ left None or a BeEmission
            return None
        p = b.at(time)
        return {"target_ew": p["ew"], "v_over_r": p["v_over_r"], "separation_kms": b.separation_kms, "fwhm_kms": b.fwhm_kms, "hbeta_ratio": b.hbeta_ratio}

    def normalised_spectrum(self, wavelength: np.ndarray, time=None, min_width: float = 0.0) -> np.ndarray:
        """Rest-frame spectrum normalised to the continuum (photospheric lines x TiO bands + Be emission).

        ``min_width`` (A) widens gaussian lines narrower than the sampling of
        ``wavelength`` while keeping their EW, so a coarse grid does not alias them.
        """
        wl = np.asarray(wavelength, dtype=np.float64)
        key = ("norm", wl.shape, float(wl[0]), float(wl[-1]), str(time), min_width)
        if key in self._cache:
            return self._cache[key]
        flux = self._photosphere(wl, min_width)
        em = self.emission(time)
        if em:
            flux = flux + self._emission_profile(wl, em)
        if len(self._cache) > 16:
            self._cache.clear()
        self._cache[key] = flux
        return flux

    def halpha_ew(self, time=None) -> float:
        """True net H-alpha EW (A, negative = emission) of the intrinsic spectrum within +-EW_WINDOW A."""
        wl = np.linspace(HALPHA - EW_WINDOW, HALPHA + EW_WINDOW, 20001)
        f = self._photosphere(wl)
        em = self.emission(time)
        if em:
            f = f + self._emission_profile(wl, em)
        return float(trapezoid(1 - f, wl))

    def _photosphere(self, wl: np.ndarray, min_width: float = 0.0) -> np.ndarray:
        tau = np.zeros_like(wl)
        absorb = np.ones_like(wl)
        for ln in self.lines():
            x = wl - ln["wavelength"]
            if ln["profile"] == "lorentz":
                near = np.abs(x) < 400
                absorb[near] *= 1 - ln["depth"] / (1 + (x[near] / ln["width"]) ** 2)
            else:
                w = max(ln["width"], min_width)
                depth = ln["depth"] * ln["width"] / w
                near = np.abs(x) < 8 * w
                absorb[near] *= 1 - depth * np.exp(-0.5 * (x[near] / w) ** 2)
        teff = self.teff
        if teff < 4300:
            strength = np.clip((4300 - teff) / 1200, 0, 1) * 0.6
            for head, extent, rel in _TIO:
                x = (head - wl) / extent  # absorption to the blue of the head, fading away
                band = np.where((x >= 0) & (x < 3), np.exp(-x), 0.0)
                tau += strength * rel * band
        return absorb * np.exp(-tau)

    def _emission_profile(self, wl: np.ndarray, em: dict) -> np.ndarray:
        """Double-peaked emission at H-alpha (and H-beta), area set so that the net EW is the target."""
        out = np.zeros_like(wl)
        ew_phot = self._halpha_phot_ew()
        area = max(ew_phot - em["target_ew"], 0.0)  # emission area (A) in continuum units
        vr = em["v_over_r"]
        for centre, scale in ((HALPHA, 1.0), (4861.33, em["hbeta_ratio"])):
            half = centre * em["separation_kms"] / 2 / C_KMS
            sig = centre * em["fwhm_kms"] / 2.3548 / C_KMS
            norm = area * scale / (sig * math.sqrt(2 * math.pi)) / (1 + vr)
            x = wl - centre
            near = np.abs(x) < half + 8 * sig
            out[near] = norm * (vr * np.exp(-0.5 * ((x[near] + half) / sig) ** 2) + np.exp(-0.5 * ((x[near] - half) / sig) ** 2))
        return out

    def _halpha_phot_ew(self) -> float:
        key = "ew_phot"
        if key not in self._cache:
            wl = np.linspace(HALPHA - EW_WINDOW, HALPHA + EW_WINDOW, 20001)
            self._cache[key] = float(trapezoid(1 - self._photosphere(wl), wl))
        return self._cache[key]

    def to_dict(self, time=None) -> dict:
        """JSON-ready description (truth record)."""
        d = {"name": self.name, "ra": self.ra, "dec": self.dec, "vmag": self.vmag, "spectral_type": self.spectral_type, "teff": self.teff, "vsini_kms": self.rotation_kms}
        d["be_emission"] = asdict(self.be_emission) if isinstance(self.be_emission, BeEmission) else None
        d["rv_curve"] = asdict(self.rv_curve) if isinstance(self.rv_curve, RVCurve) else None
        return d


def _angle(v, hours: bool) -> float:
    if isinstance(v, (int, float)):
        return float(v)
    from astropy.coordinates import Angle
    import astropy.units as u

    text = str(v).strip()
    if re.fullmatch(r"[+-]?\d+(\.\d*)?", text):
        return float(text)
    return float(Angle(text, unit=u.hourangle if hours else u.deg).deg)
