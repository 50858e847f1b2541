"""ROSACE 1D products open in the ecosystem: specutils' ``Spectrum1D.read(path)`` with no options."""

import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits

from rosace_reduction.output import read_spectrum, write_bess_fits

specutils = pytest.importorskip("specutils")


def _read_default(path):
    from specutils import Spectrum1D

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy.wcs 'datfix' notes about MJD-OBS
        return Spectrum1D.read(str(path))


@pytest.mark.parametrize("bunit", ["adu / (s Angstrom)", "erg / (s cm2 Angstrom)", ""])
def test_spectrum1d_read_round_trips_flux_wavelength_and_uncertainty(tmp_path, bunit):
    rng = np.random.default_rng(3)
    n, wl0, step = 2500, 3750.25, 1.27
    flux = (1.0 + 0.1 * np.sin(np.arange(n) / 40.0) + rng.normal(0, 0.01, n)).astype(np.float32)
    sigma = (0.01 * (1 + np.arange(n) / n)).astype(np.float32)
    path = tmp_path / "s.fits"
    write_bess_fits(path, wl0, step, flux, {"OBJNAME": "HD 1", "DATE-OBS": "2026-11-20T21:00:00", "BUNIT": bunit}, sigma)

    spec = _read_default(path)
    assert np.allclose(spec.spectral_axis.to_value(u.AA), wl0 + step * np.arange(n), rtol=0, atol=1e-6)
    assert np.array_equal(spec.flux.value, flux)
    assert spec.flux.unit == (u.Unit(bunit) if bunit else u.dimensionless_unscaled)
    assert spec.uncertainty is not None and spec.uncertainty.uncertainty_type == "std"
    assert np.array_equal(spec.uncertainty.array, sigma)
    # The project's own reader agrees.
    mine = read_spectrum(path)
    assert np.allclose(mine.spectral_axis.value, spec.spectral_axis.to_value(u.AA)) and np.array_equal(mine.uncertainty.array, sigma)


def test_files_written_before_with_an_uncert_extension_are_still_read(tmp_path):
    path = tmp_path / "old.fits"
    h = fits.Header({"CRPIX1": 1.0, "CRVAL1": 4000.0, "CDELT1": 2.0, "CTYPE1": "Wavelength", "CUNIT1": "Angstrom"})
    fits.HDUList([fits.PrimaryHDU(np.ones(10, np.float32), header=h), fits.ImageHDU(np.full(10, 0.5, np.float32), name="UNCERT")]).writeto(path)
    spec = read_spectrum(path)
    assert np.allclose(spec.uncertainty.array, 0.5) and spec.spectral_axis.value[-1] == pytest.approx(4018.0)
