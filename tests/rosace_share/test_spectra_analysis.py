"""BeSS reading and export, ARAS names, CSV and the line analysis on a known Be star."""

from __future__ import annotations

import io
from datetime import datetime

import numpy as np
import pytest
from astropy.io import fits

from rosace_share import analysis
from rosace_share.spectra import BESS_MANDATORY, BessIncomplete, aras_name, bess_fits, csv_text, describe, open_spectrum

C = 299792.458


def test_bess_export_roundtrip(make_bess):
    spec = open_spectrum(make_bess(extra={"EQUINOX": "J2000", "CRPIX1": 11.0, "CRVAL1": 6454.0}))
    assert spec.wavelength[0] == pytest.approx(6450.0)
    out = fits.open(io.BytesIO(bess_fits(spec)))
    h = out[0].header
    assert all(k in h for k in BESS_MANDATORY)
    assert h["CRPIX1"] == 1.0 and h["CRVAL1"] == pytest.approx(6450.0) and h["BITPIX"] == -32
    assert isinstance(h["EQUINOX"], float)


def test_bess_export_names_missing_keywords(make_bess):
    spec = open_spectrum(make_bess(drop=("BSS_SITE", "EXPTIME")))
    with pytest.raises(BessIncomplete) as err:
        bess_fits(spec)
    assert err.value.missing == ["EXPTIME", "BSS_SITE"]
    assert describe(spec).bess_missing == ["EXPTIME", "BSS_SITE"]


def test_tolerant_reading_without_rosace_keys(make_bess):
    data = make_bess(drop=("ROSSNR", "ROSWRMS", "ROSPROV", "BSS_ESRP", "OBJNAME"), error=False, snr=80)
    meta = describe(open_spectrum(data))
    assert meta.object == "gam Cas"  # from OBJECT
    assert 40 < meta.snr < 160  # estimated from the data (DER_SNR)
    assert "no_uncertainty" in meta.flags and meta.measured_r is None


def test_aras_names():
    assert aras_name("gam Cas", datetime(2025, 9, 1, 12, 0)) == "asdb_gamcas_20250901_500.fit"
    assert aras_name("V* zet Tau", datetime(2025, 9, 1, 21, 36), "J. Guarro, X") == "_vzettau_20250901_900_JGuarro.fit"


def test_csv_has_wavelength_flux_error(make_bess):
    text = csv_text(open_spectrum(make_bess()))
    lines = text.splitlines()
    assert lines[0] == "wavelength_angstrom,flux,error" and len(lines) == 601
    w, f, e = lines[1].split(",")
    assert float(w) == pytest.approx(6450.0) and float(e) > 0


def test_equivalent_width_follows_emission(be_series):
    # Truth: Gaussian emission of area emission * 150 km/s * sqrt(2 pi), absorption 0.3 * 400 km/s * sqrt(2 pi).
    for data, emission, _ in be_series[::5]:
        spec = open_spectrum(data)
        truth = (-emission * 150 + 0.3 * 400) * np.sqrt(2 * np.pi) * 6562.85 / C
        assert analysis.equivalent_width(spec, 6562.85) == pytest.approx(truth, abs=0.8)


def test_normalisation_of_raw_flux(make_bess):
    spec = open_spectrum(make_bess(normalised=False, emission=0.0, absorption=0.0))
    norm = analysis.normalised_flux(spec)
    assert np.median(norm) == pytest.approx(1.0, abs=0.01)


def test_dynamic_spectrum_rows_in_time_order(be_series):
    epochs = [(i * 3.0 + 2460000, open_spectrum(d)) for i, (d, _, _) in enumerate(be_series)][::-1]
    dyn = analysis.dynamic_spectrum(epochs, 6562.85, vmax=800, n=161)
    assert dyn.image.shape == (30, 161) and np.all(np.diff(dyn.jd) > 0)
    peak = np.nanmax(dyn.image, axis=1)
    amps = np.array([e for _, e, _ in be_series])
    assert np.corrcoef(peak, amps)[0, 1] > 0.95


def test_line_not_covered(make_bess):
    spec = open_spectrum(make_bess(wl0=4800, n=300))
    assert analysis.equivalent_width(spec, 6562.85) is None


@pytest.mark.parametrize("grade,expected", [("good", "good"), ("fair", "fair"), ("poor", "poor"), (None, "good")])
def test_reduction_grade_can_only_lower_the_archive_quality(make_bess, grade, expected):
    # A spectrum whose reduction checks failed (ROSQUAL) is never archived as good, whatever its S/N.
    extra = {"ROSSNR": 250.0} if grade is None else {"ROSSNR": 250.0, "ROSQUAL": grade}
    meta = describe(open_spectrum(make_bess(extra=extra)))
    assert meta.quality == expected
    assert ("reduction_poor" in meta.flags) == (grade == "poor")
