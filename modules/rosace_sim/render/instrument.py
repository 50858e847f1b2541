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
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.polynomial import Polynomial

from rosace_core.instrument import InstrumentSetup, Render, instrument_path  # noqa: F401 (instrument_path: this module's API)
from rosace_core.instrument import load_instrument as load_setup
from rosace_core.resources import resource_path

# Simulator-only defaults, overridable per set-up in the TOML ``[render]`` table
# (their model and meaning: rosace_core.instrument.Render).
RENDER_DEFAULTS: dict = Render().model_dump()


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
    wavelength_poly: Polynomial = field(repr=False)  # lambda(x) at the trace
    trace_poly: Polynomial = field(repr=False)  # row(x)
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


def load_instrument(name: str | Path, search: tuple[str, ...] = ()) -> Instrument:
    """The true model of a set-up (name or TOML path), built once per version of its file.

    The file is read and validated by :func:`rosace_core.instrument.load_instrument`
    (ConfigError naming the file and key when it is missing or invalid); the
    model built from it is cached with it, so an edited file gives a new model.
    """
    return _build(load_setup(name, tuple(search)))


_MODELS: dict[int, tuple[InstrumentSetup, Instrument]] = {}


def _build(setup: InstrumentSetup) -> Instrument:
    """The Instrument of one loaded set-up (the core loader returns the same object until the file changes)."""
    held = _MODELS.get(id(setup))
    if held is not None and held[0] is setup:
        return held[1]
    det, disp, geo = setup.detector, setup.dispersion, setup.geometry
    render = setup.render.model_dump()
    nx, ny = det.nx, det.ny
    nominal = {k: float(getattr(disp, k)) for k in ("central_wavelength", "dispersion", "quadratic", "wavelength_min", "wavelength_max")}
    c = nominal["central_wavelength"] + render["wavelength_offset"]
    d = nominal["dispersion"] * render["dispersion_scale"]
    q = nominal["quadratic"]
    s = Polynomial([-nx / 2, 1.0])  # s = x - nx/2
    trace_row = geo.trace_row if geo.trace_row is not None else ny / 2  # the set-up's validator fills it so
    ins = Instrument(
        name=setup.name,
        title=setup.title,
        path=str(setup.source or ""),
        resolving_power=float(setup.resolving_power),
        lamp=setup.lamp,
        line_lists=list(setup.line_lists or []),
        nx=nx,
        ny=ny,
        pixel_um=float(det.pixel_um),
        gain=float(det.gain),
        read_noise=float(det.read_noise),
        bias_level=float(det.bias_level),
        dark_current=float(det.dark_current),
        dark_doubling=float(det.dark_doubling),
        saturation=float(det.saturation),
        nominal=nominal,
        spatial_scale=float(geo.spatial_scale),
        slit_width=float(geo.slit_width),
        tilt_deg=float(geo.slit_tilt),
        smile=float(geo.smile),
        render=render,
        wavelength_poly=Polynomial([c, d, q, render["cubic"]])(s),
        trace_poly=Polynomial([float(trace_row), float(geo.trace_slope), render["trace_curvature"]])(s),
    )
    if len(_MODELS) >= 8:  # a few set-ups (and versions of them) at most: drop the oldest
        _MODELS.pop(next(iter(_MODELS)))
    _MODELS[id(setup)] = (setup, ins)
    return ins
