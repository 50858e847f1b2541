"""Synthetic raw frames of the toy echelle (``toy_echelle.toml``): try the recipe without a telescope.

``write_frames(folder)`` writes a science frame (three tilted orders of a star
with H-alpha and a second absorption line), an arc and three biases with the
headers ROSACE's sequencer writes, and returns their paths by kind.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
from astropy.io import fits

SETUP = Path(__file__).with_name("toy_echelle.toml")
#: Absorption lines of the synthetic star: (wavelength A, depth, sigma A).
LINES = [(6562.8, 0.6, 1.0), (6707.8, 0.4, 0.6)]
TILT = 0.01  # rows per column
CONTINUUM = 400.0  # e-/s/column/order
SIGMA_ROWS = 1.5  # order profile across the rows


def star(wavelength: np.ndarray) -> np.ndarray:
    """The star's relative flux (continuum 1) at ``wavelength`` (A)."""
    flux = np.ones_like(wavelength)
    for centre, depth, sigma in LINES:
        flux -= depth * np.exp(-0.5 * ((wavelength - centre) / sigma) ** 2)
    return flux


def _header(kind: str, exptime: float, lamp: str = "none") -> fits.Header:
    header = fits.Header()
    header.update({
        "IMAGETYP": kind, "OBJECT": "HD 1234", "RA": 10.0, "DEC": 20.0, "DATE-OBS": "2026-11-20T21:00:00", "EXPTIME": exptime,
        "AIRMASS": 1.1, "SITENAME": "example", "SITELAT": 43.75, "SITELONG": 6.92, "SITEELEV": 1270.0,
        "INSTRUME": "toy_echelle", "OBSERVER": "Example", "CCD-TEMP": -10.0, "ROSOBSID": "echelle-example-1", "LAMP": lamp,
    })
    return header


def write_frames(folder: Path, seed: int = 1) -> dict[str, list[str]]:
    """Write the frames into ``folder``; return ``{"science": [...], "arc": [...], "bias": [...]}``."""
    setup = tomllib.loads(SETUP.read_text(encoding="utf-8"))
    det = setup["detector"]
    ny, nx, bias_level = det["ny"], det["nx"], det["bias_level"]
    rng = np.random.default_rng(seed)
    rows, columns = np.arange(ny)[:, None], np.arange(nx)
    folder.mkdir(parents=True, exist_ok=True)

    def frame(electrons: np.ndarray, kind: str, exptime: float, name: str, lamp: str = "none") -> str:
        image = bias_level + rng.poisson(np.clip(electrons, 0, None)) / det["gain"] + rng.normal(0, det["read_noise"], (ny, nx))
        path = folder / name
        fits.PrimaryHDU(np.clip(image, 0, 65535).astype(np.uint16), header=_header(kind, exptime, lamp)).writeto(path, overwrite=True)
        return str(path)

    exptime = 30.0
    science = np.full((ny, nx), 5.0 * exptime)  # sky background
    arc = np.zeros((ny, nx))
    for order in setup["order_table"]:
        wavelength = order["start"] + order["dispersion"] * columns
        centre = order["row"] + TILT * columns
        profile = np.exp(-0.5 * ((rows - centre[None, :]) / SIGMA_ROWS) ** 2) / (np.sqrt(2 * np.pi) * SIGMA_ROWS)
        science += exptime * CONTINUUM * star(wavelength)[None, :] * profile
        lines = sum(np.exp(-0.5 * ((columns - c) / 1.2) ** 2) for c in (100, 300, 500))
        arc += 2000.0 * lines[None, :] * profile
    return {
        "science": [frame(science, "LIGHT", exptime, "science.fits")],
        "arc": [frame(arc, "ARC", 5.0, "arc.fits", "NeAr")],
        "bias": [frame(np.zeros((ny, nx)), "BIAS", 0.0, f"bias{i}.fits") for i in range(3)],
    }
