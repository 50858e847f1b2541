"""The simulated spectrograph: an instrument set-up TOML turned into the true
optical model the renderer uses, with the per-instrument grids cached.

The TOML files in ``resources/instruments`` carry the *nominal* values the
reduction starts from. The renderer's truth differs a little from them (a
wavelength offset and a cubic term, a curved trace), as a real instrument
does; those extra, simulator-only values live in the optional ``[render]``
table of the same file (see ``docs/dev/truth.md``).

Coordinates: ``x`` is the column (dispersion axis, wavelength grows with x),
``y`` the row (along the slit), both in unbinned pixels, pixel centres at
integers. ``u`` is the column where a wavelength crosses the trace and ``v``
the distance in rows from the trace: a pixel sits at ``x = u + tilt * v +
smile * v**2``, ``y = trace(u) + v`` (the convention of
``rosace_reduction.geometry``).
"""

from __future__ import annotations

import csv
import hashlib
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.polynomial import Polynomial

from rosace_core.errors import ConfigError
from rosace_core.resources import resource_path

# Simulator-only defaults, overridable per set-up in the TOML ``[render]`` table.
RENDER_DEFAULTS: dict = {
    "aperture_mm": 200.0,  # telescope clear aperture
    "obstruction": 0.35,  # central obstruction, fraction of the diameter
    "throughput_peak": 0.20,  # atmosphere excluded: telescope x spectrograph x QE at the peak
    "response_centre": 5600.0,  # A, peak of the instrument response
    "response_width": 1600.0,  # A, gaussian sigma of the response
    "response_slope": 0.0,  # relative change per 1000 A (LHIRES-like narrow set-ups)
    "wavelength_offset": 1.8,  # A, true minus nominal wavelength at the centre
    "dispersion_scale": 1.0008,  # true / nominal linear dispersion
    "cubic": 3.0e-10,  # A/px^3, true cubic term (nominal has none)
    "trace_curvature": 6.0e-7,  # rows/px^2 (atmospheric dispersion, optics)
    "lsf_fwhm_px": None,  # default: central_wavelength / resolving_power / dispersion
    "slit_rows": None,  # [first, last] illuminated rows; default: 3 % margins
    "slit_edge_rows": 4.0,  # softness of the slit ends
    "illumination_gradient": 0.06,  # relative change of the slit illumination end to end
    "slit_dust": [[0.31, 2.5, 0.06], [0.72, 1.5, 0.04]],  # [relative row, sigma rows, depth]
    "arc_rate": 40.0,  # e-/s at the peak pixel of a line of relative intensity 1
    "flat_rate": 6000.0,  # e-/s/px at the peak of the tungsten flat
    "flat_temperature": 3000.0,  # K, tungsten colour temperature
    "prnu_rms": 0.006,  # pixel response non-uniformity
    "bias_column_rms": 1.5,  # ADU, fixed column pattern of the bias
    "hot_pixel_fraction": 1.0e-4,
    "hot_pixel_rate": [0.5, 40.0],  # e-/s at 0 degC, log-uniform range
    "cosmic_rate": 0.04,  # events per cm^2 per s
    "extinction": "orm",  # resources/extinction/<name>.csv
    "seed": None,  # fixed-pattern seed; default: from the set-up name
}


@dataclass(frozen=True)
class ArcLine:
    """One lamp line: air wavelength (A), element, relative intensity."""

    wavelength: float
    element: str
    intensity: float


@dataclass
class Instrument:
    """The true model of one spectrograph set-up (read-only once built)."""

    name: str
    title: str
    path: str
    resolving_power: float
    lamp: str
    line_lists: list[str]
    nx: int
    ny: int
    pixel_um: float
    gain: float
    read_noise: float
    bias_level: float
    dark_current: float
    dark_doubling: float
    saturation: float
    nominal: dict
    spatial_scale: float
    slit_width: float
    tilt_deg: float
    smile: float
    render: dict
    wavelength_poly: Polynomial = field(repr=False, default=None)  # lambda(x) at the trace
    trace_poly: Polynomial = field(repr=False, default=None)  # row(x)
    _cache: dict = field(repr=False, default_factory=dict)

    @property
    def tilt(self) -> float:
        """Column shift per row of the arc lines (tan of the tilt angle)."""
        return float(np.tan(np.radians(self.tilt_deg)))

    @property
    def lsf_fwhm_px(self) -> float:
        """FWHM of the line spread function in columns (constant across the frame, as a slit image is)."""
        v = self.render.get("lsf_fwhm_px")
        if v:
            return float(v)
        return float(self.nominal["central_wavelength"] / self.resolving_power / abs(self.nominal["dispersion"]))

    @property
    def seed(self) -> int:
        s = self.render.get("seed")
        if s is not None:
            return int(s)
        return int.from_bytes(hashlib.sha256(self.name.encode()).digest()[:4], "little")

    @property
    def collecting_area_cm2(self) -> float:
        d = self.render["aperture_mm"] / 10.0
        return float(np.pi / 4 * d * d * (1 - self.render["obstruction"] ** 2))

    # ---------------------------------------------------------------- grids
    def wavelength(self, u: np.ndarray | float) -> np.ndarray:
        """True air wavelength (A) at trace column ``u``."""
        return self.wavelength_poly(np.asarray(u, dtype=np.float64))

    def column_of(self, wavelength: np.ndarray | float) -> np.ndarray:
        """Trace column where the true solution gives ``wavelength`` (A); NaN outside the frame +- 10 %."""
        wl = np.atleast_1d(np.asarray(wavelength, dtype=np.float64))
        grid = self.grid("columns_coarse")
        lam = self.wavelength(grid)
        u = np.interp(wl, lam, grid, left=np.nan, right=np.nan)
        d1 = self.wavelength_poly.deriv()
        for _ in range(3):  # Newton on the exact polynomial
            u = u - (self.wavelength(u) - wl) / d1(u)
        return u if np.ndim(wavelength) else u[0]

    def trace(self, u: np.ndarray | float) -> np.ndarray:
        """True trace row at column ``u`` (star centred on the slit)."""
        return self.trace_poly(np.asarray(u, dtype=np.float64))

    def grid(self, key: str):
        """Per-instrument arrays, computed once."""
        if key not in self._cache:
            self._cache[key] = _GRIDS[key](self)
        return self._cache[key]

    def arc_lines(self, lamp: str | None = None) -> list[ArcLine]:
        """Lines of a lamp ('NeAr', 'Ne', 'Ar', 'He', or the set-up lamp) falling on the detector."""
        lamp = lamp or self.lamp
        names = _lamp_lists(lamp, self.line_lists)
        lo, hi = self.wavelength(-20.0), self.wavelength(self.nx + 20.0)
        out = []
        for n in names:
            out += [ln for ln in _read_line_list(n) if lo <= ln.wavelength <= hi]
        return sorted(out, key=lambda ln: ln.wavelength)


def _lamp_lists(lamp: str, default: list[str]) -> list[str]:
    key = lamp.strip().lower()
    known = {"ne": ["ne"], "ar": ["ar"], "he": ["he"], "near": ["ne", "ar"], "nearhe": ["ne", "ar", "he"], "hene": ["he", "ne"]}
    if key in known:
        return known[key]
    if key in ("arc", "lamp", "calibration"):
        return list(default)
    raise ValueError(f"unknown calibration lamp {lamp!r}: use one of NeAr, Ne, Ar, He")


@lru_cache(maxsize=8)
def _read_line_list(name: str) -> tuple[ArcLine, ...]:
    path = resource_path("linelists", f"{name}.csv")
    with open(path, newline="", encoding="utf-8") as fh:
        return tuple(ArcLine(float(r["wavelength"]), r["element"], float(r["intensity"])) for r in csv.DictReader(fh))


@lru_cache(maxsize=8)
def extinction_curve(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Extinction curve ``(wavelength A, k mag/airmass)`` from ``resources/extinction``."""
    path = Path(name) if name.endswith(".csv") else resource_path("extinction", f"{name}.csv")
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return data[:, 0], data[:, 1]


def _grid_columns_coarse(ins: Instrument) -> np.ndarray:
    return np.linspace(-0.15 * ins.nx, 1.15 * ins.nx, 2001)


def _grid_fixed_pattern(ins: Instrument) -> dict:
    """PRNU map, bias column pattern and hot pixels: fixed per instrument, like a real sensor."""
    rng = np.random.default_rng(ins.seed)
    prnu = rng.standard_normal((ins.ny, ins.nx), dtype=np.float32)
    prnu *= np.float32(ins.render["prnu_rms"])
    prnu += np.float32(1.0)
    bias_cols = (rng.standard_normal(ins.nx) * ins.render["bias_column_rms"]).astype(np.float32)
    n_hot = int(round(ins.render["hot_pixel_fraction"] * ins.nx * ins.ny))
    hot_rows = rng.integers(0, ins.ny, n_hot)
    hot_cols = rng.integers(0, ins.nx, n_hot)
    lo, hi = ins.render["hot_pixel_rate"]
    hot_rate = np.exp(rng.uniform(np.log(lo), np.log(hi), n_hot))
    return {"prnu": prnu, "bias_columns": bias_cols, "hot_rows": hot_rows, "hot_cols": hot_cols, "hot_rate": hot_rate}


def _grid_illumination(ins: Instrument) -> np.ndarray:
    """Relative slit illumination along the rows (uniform sources: sky, lamps)."""
    from scipy.special import erf

    y = np.arange(ins.ny, dtype=np.float64)
    lo, hi = ins.render["slit_rows"] or (0.03 * ins.ny, 0.97 * ins.ny)
    w = ins.render["slit_edge_rows"]
    ends = 0.25 * (1 + erf((y - lo) / w)) * (1 + erf((hi - y) / w))
    grad = 1 + ins.render["illumination_gradient"] * (y / ins.ny - 0.5)
    dust = np.ones_like(y)
    for rel, sig, depth in ins.render["slit_dust"]:
        dust *= 1 - depth * np.exp(-0.5 * ((y - rel * ins.ny) / sig) ** 2)
    return (ends * grad * dust).astype(np.float32)


def _grid_columns(ins: Instrument) -> dict:
    x = np.arange(ins.nx, dtype=np.float64)
    lam = ins.wavelength(x)
    return {"x": x, "wavelength": lam, "dlam": np.abs(ins.wavelength_poly.deriv()(x)), "trace": ins.trace(x)}


def _grid_response(ins: Instrument) -> np.ndarray:
    lam = ins.grid("columns")["wavelength"]
    return response_curve(ins, lam)


def response_curve(ins: Instrument, wavelength: np.ndarray) -> np.ndarray:
    """Instrument efficiency (photons in -> electrons out, atmosphere excluded) at ``wavelength`` (A)."""
    r = ins.render
    wl = np.asarray(wavelength, dtype=np.float64)
    g = np.exp(-0.5 * ((wl - r["response_centre"]) / r["response_width"]) ** 2)
    return r["throughput_peak"] * g * (1 + r["response_slope"] * (wl - r["response_centre"]) / 1000.0)


_GRIDS = {
    "columns_coarse": _grid_columns_coarse,
    "fixed_pattern": _grid_fixed_pattern,
    "illumination": _grid_illumination,
    "columns": _grid_columns,
    "response": _grid_response,
}


def instrument_path(name: str | Path) -> Path:
    """The TOML of a set-up name (``alpy600``) or a path given as is."""
    p = Path(name)
    if p.suffix == ".toml":
        return p
    return resource_path("instruments", f"{str(name).lower()}.toml")


def load_instrument(name: str | Path) -> Instrument:
    """Build (and cache, keyed by file and modification time) the true model of a set-up.

    Raises ConfigError when the file is missing or lacks a required key.
    """
    path = instrument_path(name)
    if not path.exists():
        raise ConfigError(path, [("(file)", f"unknown instrument set-up {str(name)!r}: no {path.name} in resources/instruments")])
    return _load(str(path.resolve()), path.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _load(path: str, _mtime: int) -> Instrument:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [("(syntax)", str(exc))]) from None
    try:
        det = data.get("detector", {})
        disp = data["dispersion"]
        geo = data.get("geometry", {})
        render = dict(RENDER_DEFAULTS)
        render.update(data.get("render", {}))
        nx, ny = int(det.get("nx", 3000)), int(det.get("ny", 2000))
        ins = Instrument(
            name=str(data.get("name", Path(path).stem)),
            title=str(data.get("title", "")),
            path=path,
            resolving_power=float(data.get("resolving_power", 1000.0)),
            lamp=str(data.get("lamp", "NeAr")),
            line_lists=list(data.get("line_lists", ["ne", "ar"])),
            nx=nx,
            ny=ny,
            pixel_um=float(det.get("pixel_um", 4.54)),
            gain=float(det.get("gain", 1.0)),
            read_noise=float(det.get("read_noise", 10.0)),
            bias_level=float(det.get("bias_level", 1000.0)),
            dark_current=float(det.get("dark_current", 0.02)),
            dark_doubling=float(det.get("dark_doubling", 6.0)),
            saturation=float(det.get("saturation", 65535)),
            nominal={k: float(disp[k]) for k in ("central_wavelength", "dispersion", "quadratic", "wavelength_min", "wavelength_max") if k in disp},
            spatial_scale=float(geo.get("spatial_scale", 1.0)),
            slit_width=float(geo.get("slit_width", 2.0)),
            tilt_deg=float(geo.get("slit_tilt", 0.0)),
            smile=float(geo.get("smile", 0.0)),
            render=render,
        )
    except KeyError as exc:
        raise ConfigError(path, [(str(exc.args[0]), "missing key")]) from None
    c = ins.nominal["central_wavelength"] + render["wavelength_offset"]
    d = ins.nominal["dispersion"] * render["dispersion_scale"]
    q = ins.nominal.get("quadratic", 0.0)
    s = Polynomial([-nx / 2, 1.0])  # s = x - nx/2
    ins.wavelength_poly = Polynomial([c, d, q, render["cubic"]])(s)
    ins.trace_poly = Polynomial([float(geo.get("trace_row", ny / 2)), float(geo.get("trace_slope", 0.0)), render["trace_curvature"]])(s)
    return ins
