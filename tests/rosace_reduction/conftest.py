"""Small synthetic long-slit frames with a known answer, for the reduction's unit tests.

The simulated observatory (rosace_sim.render) is the reference for the
accuracy tests; these frames are deliberately simple (Gaussian PSF and line
spread, sampled at pixel centres) so that each step can be checked alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from rosace_reduction.instrument import load_instrument
from rosace_reduction.wavelength import load_line_lists


@dataclass
class Truth:
    shift: float = 7.3            # px: true solution = nominal evaluated at (x + shift) * scale about the centre
    scale: float = 1.004
    tilt: float = 0.0105          # px per row
    smile: float = 2e-6
    trace_row: float = 1003.4
    trace_slope: float = 0.004
    psf_sigma: float = 1.6        # rows
    star_level: float = 1000.0    # e- per column per second at the continuum
    halpha_ew: float = -12.0      # A (negative = emission)
    halpha_sigma: float = 4.0     # A
    rv: float = 0.0               # km/s
    sky: float = 20.0             # e-/px/s
    cosmics: list = field(default_factory=list)

    def wavelength(self, setup, x):
        nx = setup.detector.nx
        return setup.nominal_wavelength(nx / 2 + (np.asarray(x, float) + self.shift - nx / 2) * self.scale)

    def continuum(self, wl):
        return 1.0 + 0.3 * (wl - 5600) / 2000

    def star(self, wl):
        c = 299792.458
        centre = 6562.8 * (1 + self.rv / c)
        line = -self.halpha_ew / (self.halpha_sigma * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((wl - centre) / self.halpha_sigma) ** 2)
        return self.continuum(wl) * (1 + line)


def render(setup, truth: Truth, kind: str, exptime: float, rng, *, band: int = 140, n_cosmics: int = 0) -> np.ndarray:
    det = setup.detector
    ny, nx = det.ny, det.nx
    img = np.zeros((ny, nx), np.float64)
    x = np.arange(nx)
    yt = truth.trace_row + truth.trace_slope * (x - nx / 2)
    r0, r1 = int(yt.min()) - band, int(yt.max()) + band
    y = np.arange(r0, r1)[:, None]
    v = y - yt[None, :]
    xs = x[None, :] - truth.tilt * v - truth.smile * v * v
    wl = truth.wavelength(setup, xs)
    disp = np.abs(np.gradient(truth.wavelength(setup, x)))
    sig_lsf = np.median(truth.wavelength(setup, x)) / setup.resolving_power / 2.3548
    if kind == "ARC":
        ll = load_line_lists(setup.line_lists)
        e = np.zeros_like(wl)
        for w0, a in zip(ll.wavelength, ll.intensity):
            if wl.min() - 20 < w0 < wl.max() + 20:
                e += 40.0 * a * np.exp(-0.5 * ((wl - w0) / sig_lsf) ** 2)
        img[r0:r1] = e * exptime
    elif kind == "FLAT":
        img[r0:r1] = 20000.0 * (1 + 0.02 * np.sin(x / 37.0))[None, :]
    elif kind == "LIGHT":
        fine = np.linspace(wl.min() - 50, wl.max() + 50, 20000)
        spec = truth.star(fine)
        kern = sig_lsf / (fine[1] - fine[0])
        from scipy.ndimage import gaussian_filter1d
        spec = gaussian_filter1d(spec, kern)
        s = np.interp(wl, fine, spec) * disp[None, :] / np.median(disp)
        prof = np.exp(-0.5 * (v / truth.psf_sigma) ** 2) / (truth.psf_sigma * np.sqrt(2 * np.pi))
        img[r0:r1] = (truth.star_level * s * prof + truth.sky) * exptime
    electrons = rng.poisson(np.clip(img, 0, None)).astype(np.float64)
    adu = electrons / det.gain + det.bias_level + rng.normal(0, det.read_noise / det.gain, img.shape)
    for k in range(n_cosmics):
        cy = int(rng.integers(r0 + 5, r1 - 5))
        cx = int(rng.integers(5, nx - 5))
        adu[cy, cx] += rng.uniform(2000, 8000)
        truth.cosmics.append((cy, cx))
    return np.clip(adu, 0, 65535).astype(np.uint16)


def write_frame(path: Path, data, setup, kind, *, obj="HD 1234", exptime=60.0, obsid="obs-1", start="2026-11-20T21:00:00", ref=False, airmass=1.2):
    hdr = fits.Header()
    hdr["IMAGETYP"] = kind
    hdr["OBJECT"] = obj
    hdr["RA"] = 83.8583
    hdr["DEC"] = -5.9099
    hdr["DATE-OBS"] = start
    hdr["JD-OBS"] = Time(start).jd
    hdr["EXPTIME"] = exptime
    hdr["AIRMASS"] = airmass
    hdr["SITENAME"] = "test site"
    hdr["SITELAT"] = 43.75
    hdr["SITELONG"] = 6.92
    hdr["SITEELEV"] = 1270.0
    hdr["INSTRUME"] = setup.name
    hdr["TELESCOP"] = "C11"
    hdr["OBSERVER"] = "Test"
    hdr["CCD-TEMP"] = -10.0
    hdr["LAMP"] = {"ARC": "NeAr", "FLAT": "tungsten"}.get(kind, "none")
    hdr["ROSOBSID"] = obsid
    hdr["ROSREF"] = ref
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(data, header=hdr).writeto(path, overwrite=True)
    return path


@pytest.fixture
def alpy():
    return load_instrument("alpy600")


@pytest.fixture(scope="session")
def synthetic_night(tmp_path_factory):
    """Write one Alpy observation (science with cosmic rays, arc, flat, 3 bias) and return (folder, truth)."""
    alpy = load_instrument("alpy600")
    tmp_path = tmp_path_factory.mktemp("night")
    rng = np.random.default_rng(42)
    truth = Truth()
    folder = tmp_path / "raw" / "20261120" / "HD_1234"
    write_frame(folder / "obs-1_01_LIGHT_001.fits", render(alpy, truth, "LIGHT", 60.0, rng, n_cosmics=60), alpy, "LIGHT")
    write_frame(folder / "obs-1_02_ARC_001.fits", render(alpy, truth, "ARC", 5.0, rng), alpy, "ARC", exptime=5.0)
    write_frame(folder / "obs-1_03_FLAT_001.fits", render(alpy, truth, "FLAT", 2.0, rng), alpy, "FLAT", exptime=2.0)
    for i in range(3):
        write_frame(folder / f"obs-1_04_BIAS_{i:03d}.fits", render(alpy, truth, "BIAS", 0.0, rng), alpy, "BIAS", exptime=0.0)
    return tmp_path / "raw" / "20261120", truth
