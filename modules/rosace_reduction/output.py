"""Products of a reduction: BeSS-convention 1D FITS, specutils Spectrum,
quick-look PNG and the provenance/quality JSON record.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from astropy.io import fits

from rosace_core import __version__
from rosace_core.state import atomic_write, atomic_write_json


def safe_name(text: str) -> str:
    """File-system-safe version of an object name."""
    return re.sub(r"[^A-Za-z0-9_+-]+", "_", text.strip()).strip("_") or "unknown"


#: Name of the uncertainty (1-sigma) extension. specutils' default reader (``Spectrum.read(path)``,
#: format wcs1d-fits) finds an uncertainty HDU by name and takes only STD without a unit exponent
#: (an ``UNCERT`` extension made it fail with KeyError 'uncert'); files written before are still read.
UNCERTAINTY_EXTNAME = "STD"
_UNCERTAINTY_NAMES = (UNCERTAINTY_EXTNAME, "UNCERT")


def write_bess_fits(path: Path, wl0: float, step: float, flux: np.ndarray, keywords: dict, uncertainty: np.ndarray | None = None) -> None:
    """Write a BeSS 1D FITS: float32 primary data on a linear axis (CRPIX1 = 1), optional 1-sigma uncertainty extension ``STD``.

    The file opens with specutils' ``Spectrum.read(path)`` and no options (flux, wavelength
    and uncertainty).
    """
    hdr = fits.Header()
    hdr["CRPIX1"] = (1.0, "reference pixel")
    hdr["CRVAL1"] = (float(wl0), "wavelength at reference pixel")
    hdr["CDELT1"] = (float(step), "wavelength step")
    hdr["CTYPE1"] = ("Wavelength", "")
    hdr["CUNIT1"] = ("Angstrom", "")
    for key, value in keywords.items():
        if value is None:
            continue
        if isinstance(value, tuple):
            hdr[key] = value
        else:
            hdr[key] = value
    primary = fits.PrimaryHDU(np.asarray(flux, dtype=np.float32), header=hdr)
    hdus = [primary]
    if uncertainty is not None:
        err = fits.ImageHDU(np.asarray(uncertainty, dtype=np.float32), name=UNCERTAINTY_EXTNAME)
        for k in ("CRPIX1", "CRVAL1", "CDELT1", "CTYPE1", "CUNIT1"):
            err.header[k] = hdr[k]
        if "BUNIT" in hdr:
            err.header["BUNIT"] = hdr["BUNIT"]
        err.header["COMMENT"] = "1-sigma uncertainty of the primary data (standard deviation)"
        hdus.append(err)
    atomic_write(path, lambda p: fits.HDUList(hdus).writeto(p, overwrite=True), suffix=path.suffix)


def read_spectrum(path: Path | str):
    """Read a BeSS FITS written here as a specutils ``Spectrum`` (flux with uncertainty)."""
    from astropy import units as u
    from astropy.nddata import StdDevUncertainty
    from specutils import Spectrum

    with fits.open(path) as hdul:
        h = hdul[0].header
        flux = np.array(hdul[0].data, dtype=float)
        name = next((n for n in _UNCERTAINTY_NAMES if n in hdul), None)
        err = np.array(hdul[name].data, dtype=float) if name else None
    wl = h["CRVAL1"] + h["CDELT1"] * (np.arange(len(flux)) + 1 - h["CRPIX1"])
    unit = u.Unit(h.get("BUNIT", "")) if h.get("BUNIT") else u.dimensionless_unscaled
    return Spectrum(flux=flux * unit, spectral_axis=wl * u.AA, uncertainty=StdDevUncertainty(err * unit) if err is not None else None, meta={"header": h})


def write_json(path: Path, record: dict) -> None:
    """Write the provenance/quality record atomically."""
    atomic_write_json(path, record, indent=2, default=float)


def quicklook_png(path: Path, wl: np.ndarray, flux: np.ndarray, title: str, ylabel: str, *, arc: dict | None = None) -> None:
    """Quick-look PNG: the spectrum, and when given the arc residuals below it."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5.5 if arc else 4), dpi=90)
    if arc:
        ax = fig.add_axes((0.09, 0.38, 0.88, 0.54))
        ax2 = fig.add_axes((0.09, 0.09, 0.88, 0.2))
    else:
        ax = fig.add_axes((0.09, 0.13, 0.88, 0.78))
        ax2 = None
    ax.plot(wl, flux, lw=0.7, color="k")
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.set_xlim(wl[0], wl[-1])
    if ax2 is not None and arc:
        lines = arc.get("lines", [])
        ax2.axhline(0, color="0.6", lw=0.5)
        ax2.plot([l["wavelength"] for l in lines], [l["residual"] for l in lines], "o", ms=3)
        ax2.set_xlim(wl[0], wl[-1])
        ax2.set_ylabel("arc O-C (A)")
        ax2.set_xlabel("wavelength (A)")
    else:
        ax.set_xlabel("wavelength (A)")
    atomic_write(path, lambda p: fig.savefig(p, format="png"), suffix=path.suffix)


def pipeline_version() -> str:
    return f"rosace_reduction {__version__}"
