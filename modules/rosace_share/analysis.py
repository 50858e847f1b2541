"""How spectroscopists look at a monitored star: normalised overlays, a line on a
velocity axis, the dynamic spectrum and the equivalent width over time.

Plain numpy functions on arrays (wavelengths in Angstrom, velocities in km/s),
shared by the web plots and the desktop tab.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rosace_share.spectra import SpectrumData

C_KMS = 299792.458
#: Lines offered in the views (air wavelengths, Angstrom).
LINES = {"H-alpha": 6562.85, "H-beta": 4861.35, "He I 6678": 6678.15, "He I 5876": 5875.62}


def continuum_normalise(wavelength: np.ndarray, flux: np.ndarray, degree: int = 3) -> np.ndarray:
    """Divide by a polynomial continuum fitted with iterative clipping of lines (both signs)."""
    good = np.isfinite(flux)
    if good.sum() < degree + 2:
        return flux
    x = (wavelength - wavelength.mean()) / (np.ptp(wavelength) or 1.0)
    mask = good.copy()
    for _ in range(5):
        coef = np.polynomial.polynomial.polyfit(x[mask], flux[mask], degree)
        cont = np.polynomial.polynomial.polyval(x, coef)
        resid = flux - cont
        sigma = 1.4826 * np.median(np.abs(resid[mask] - np.median(resid[mask])))
        new = good & (np.abs(resid) < 2.5 * max(sigma, 1e-12))
        if new.sum() < degree + 2 or np.array_equal(new, mask):
            break
        mask = new
    cont = np.where(np.abs(cont) > 1e-30, cont, np.nan)
    return flux / cont


def normalised_flux(spec: SpectrumData, normalised: bool | None = None) -> np.ndarray:
    """Flux normalised to the continuum (kept as is when the spectrum is already normalised)."""
    if normalised is None:
        f = spec.flux[np.isfinite(spec.flux)]
        normalised = f.size > 0 and 0.7 < np.median(f) < 1.3
    return spec.flux if normalised else continuum_normalise(spec.wavelength, spec.flux)


def velocity(wavelength: np.ndarray, rest: float) -> np.ndarray:
    """Radial velocity (km/s) of each wavelength relative to a line at ``rest`` Angstrom."""
    return C_KMS * (wavelength - rest) / rest


@dataclass
class LineView:
    """A spectrum around one line, locally normalised, on a velocity axis."""

    velocity: np.ndarray
    flux: np.ndarray
    error: np.ndarray | None
    covered: bool


def line_view(spec: SpectrumData, rest: float, vmax: float = 1500.0) -> LineView:
    """Cut ``spec`` to |v| <= vmax around ``rest`` and normalise by a straight continuum through the outer 30 %."""
    v = velocity(spec.wavelength, rest)
    sel = np.abs(v) <= vmax
    covered = bool(sel.sum() >= 5 and v.min() <= -0.5 * vmax and v.max() >= 0.5 * vmax)
    if sel.sum() < 5:
        return LineView(np.array([]), np.array([]), None, False)
    vs, fs = v[sel], spec.flux[sel]
    es = spec.error[sel] if spec.error is not None else None
    wings = (np.abs(vs) >= 0.7 * vmax) & np.isfinite(fs)
    if wings.sum() >= 3:
        coef = np.polyfit(vs[wings], fs[wings], 1)
        cont = np.polyval(coef, vs)
    else:
        cont = np.full_like(fs, np.nanmedian(fs))
    cont = np.where(np.abs(cont) > 1e-30, cont, np.nan)
    return LineView(vs, fs / cont, es / np.abs(cont) if es is not None else None, covered)


def equivalent_width(spec: SpectrumData, rest: float, window: float = 1000.0, vmax: float = 1500.0) -> float | None:
    """Equivalent width (Angstrom) of the line at ``rest`` over |v| <= window; emission is negative."""
    view = line_view(spec, rest, vmax)
    if not view.covered:
        return None
    sel = (np.abs(view.velocity) <= window) & np.isfinite(view.flux)
    if sel.sum() < 3:
        return None
    wl = rest * (1.0 + view.velocity[sel] / C_KMS)
    return float(np.trapezoid(1.0 - view.flux[sel], wl))


@dataclass
class DynamicSpectrum:
    """Time x velocity image of a line: ``image[i, j]`` is epoch i (sorted by JD) at velocity j."""

    velocity: np.ndarray
    jd: np.ndarray
    image: np.ndarray


def dynamic_spectrum(epochs: list[tuple[float, SpectrumData]], rest: float, vmax: float = 1000.0, n: int = 200) -> DynamicSpectrum:
    """Resample each epoch's locally normalised line profile on one velocity grid (epochs not covering the line are skipped)."""
    grid = np.linspace(-vmax, vmax, n)
    rows, jds = [], []
    for jd, spec in sorted(epochs, key=lambda e: e[0]):
        view = line_view(spec, rest, vmax * 1.5)
        if not view.covered:
            continue
        rows.append(np.interp(grid, view.velocity, view.flux, left=np.nan, right=np.nan))
        jds.append(jd)
    image = np.vstack(rows) if rows else np.empty((0, n))
    return DynamicSpectrum(grid, np.asarray(jds, dtype=float), image)
