"""A synthetic Alpy observation reduced as a user would (``rosace reduce``), checked against its truth."""

import json
import shutil

import numpy as np
import pytest
from astropy.io import fits

from rosace_core.cli import main
from rosace_reduction.output import read_spectrum


@pytest.fixture(scope="module")
def reduced(synthetic_night, tmp_path_factory):
    folder, truth = synthetic_night
    out = tmp_path_factory.mktemp("reduced")
    night = tmp_path_factory.mktemp("copy") / "20261120"
    shutil.copytree(folder, night)
    # A foreign FITS (no ROSACE keywords) and a broken file: reported and skipped.
    fits.PrimaryHDU(np.zeros((10, 10), np.float32)).writeto(night / "foreign.fits")
    (night / "broken.fits").write_bytes(b"not a fits file")
    code = main(["reduce", str(night), "--output", str(out), "--workers", "1", "--json"])
    records = [json.loads(p.read_text()) for p in out.rglob("*.json")]
    return code, out, night, truth, records


def test_cli_reduces_the_night_and_skips_bad_files(reduced, capsys):
    code, out, night, truth, records = reduced
    assert code == 0
    assert len(records) == 1
    rec = records[0]
    assert rec["object"] == "HD 1234" and rec["instrument"] == "alpy600"
    for key in ("fits", "png", "json"):
        assert (out / "20261120" / "HD_1234").exists()
        assert __import__("pathlib").Path(rec["products"][key]).stat().st_size > 1000


def test_bess_header(reduced):
    _, _, _, _, records = reduced
    with fits.open(records[0]["products"]["fits"]) as hdul:
        h = hdul[0].header
        assert hdul[0].data.dtype.kind == "f" and hdul[0].data.ndim == 1
    assert h["CRPIX1"] == 1 and h["CTYPE1"] == "Wavelength" and h["CUNIT1"] == "Angstrom"
    assert 1.1 < h["CDELT1"] < 1.4
    for key in ("OBJNAME", "DATE-OBS", "EXPTIME", "OBSERVER", "BSS_INST", "BSS_SITE", "BSS_VHEL", "BSS_COSM", "BSS_NORM", "BSS_TELL", "BSS_ITRP", "JD-MID", "GEO_LAT"):
        assert key in h, key
    assert isinstance(h["BSS_RA"], float)
    # The barycentric correction was applied and recorded.
    assert abs(h["BSS_VHEL"]) > 0.1
    spec = read_spectrum(records[0]["products"]["fits"])
    assert spec.spectral_axis.unit == "Angstrom" and spec.uncertainty is not None
    # The product opens in the ecosystem with no options (specutils' default reader).
    from specutils import Spectrum1D

    other = Spectrum1D.read(records[0]["products"]["fits"])
    assert np.allclose(other.spectral_axis.to_value("Angstrom"), spec.spectral_axis.value)
    assert np.array_equal(other.flux.value, spec.flux.value) and np.array_equal(other.uncertainty.array, spec.uncertainty.array)


def test_wavelength_solution_against_truth(reduced, alpy):
    _, _, _, truth, records = reduced
    from numpy.polynomial import polynomial as P

    sol = records[0]["wavelength_solution"]
    x = np.arange(alpy.detector.nx)
    xs = [l["x"] for l in sol["lines"]]
    inside = (x >= min(xs)) & (x <= max(xs))
    wl = P.polyval(x - sol["x0"], sol["coeffs"])
    err_px = (wl - truth.wavelength(alpy, x))[inside] / alpy.dispersion.dispersion
    assert np.sqrt(np.mean(err_px**2)) < 0.05
    q = records[0]["quality"]
    assert q["geometry"]["measured"] and q["geometry"]["tilt_deg"] == pytest.approx(np.degrees(np.arctan(truth.tilt)), abs=0.1)
    assert q["trace"]["coeffs"][1] == pytest.approx(truth.trace_slope, abs=2e-4)


def test_halpha_equivalent_width_and_velocity(reduced):
    _, _, _, truth, records = reduced
    rec = records[0]
    spec = read_spectrum(rec["products"]["fits"])
    wl = spec.spectral_axis.value / (1 + rec["barycentric_kms"] / 299792.458)  # back to the topocentric frame of the truth
    f = spec.flux.value
    cont_sel = ((wl > 6450) & (wl < 6500)) | ((wl > 6630) & (wl < 6680))
    cont = np.polyval(np.polyfit(wl[cont_sel], f[cont_sel], 1), wl)
    line = (wl > 6500) & (wl < 6630)
    ew = np.trapezoid(1 - f[line] / cont[line], wl[line])
    assert ew == pytest.approx(truth.halpha_ew, rel=0.05)
    centroid = np.sum(wl[line] * (f[line] / cont[line] - 1)) / np.sum(f[line] / cont[line] - 1)
    assert (centroid / 6562.8 - 1) * 299792.458 == pytest.approx(truth.rv, abs=15)


def test_no_cosmic_ray_left_in_the_spectrum(reduced):
    _, _, _, truth, records = reduced
    assert records[0]["quality"]["cosmic_ray_pixels"] > 0
    spec = read_spectrum(records[0]["products"]["fits"])
    f = spec.flux.value
    # No spike left: the spectrum is smooth at the pixel level outside H-alpha.
    d = np.diff(f[200:-200]) / np.median(f)
    assert np.max(np.abs(d)) < 0.2


def test_rerun_is_idempotent_and_force_redoes(reduced, capsys):
    code, out, night, _, records = reduced
    before = records[0]["products"]["json"]
    mtime = __import__("os").stat(before).st_mtime
    assert main(["reduce", str(night), "--output", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"] == {"skipped": 1}
    assert {b["path"].rsplit("/", 1)[-1].rsplit("\\", 1)[-1] for b in report["bad_files"]} == {"foreign.fits", "broken.fits"}
    assert __import__("os").stat(before).st_mtime == mtime


def test_cached_arc_solution_follows_the_file(synthetic_night, tmp_path):
    """The per-process cache of masters and arc solutions is keyed by file identity: a rewritten arc is solved again."""
    from rosace_reduction.frames import read_frame_info
    from rosace_reduction.pipeline import Options, Plan, reduce_observation
    from rosace_reduction.wavelength import WavelengthError

    folder, _ = synthetic_night
    night = tmp_path / "night"
    shutil.copytree(folder, night)
    files = sorted(night.rglob("*.fits"))
    kinds = {p: read_frame_info(p).kind for p in files}
    plan = Plan(science=[str(p) for p in files if kinds[p] == "LIGHT"], arc=[str(p) for p in files if kinds[p] == "ARC"],
                bias=[str(p) for p in files if kinds[p] == "BIAS"])
    options = Options(output_root=str(tmp_path / "out"), barycentric=False)
    first = reduce_observation(plan, options)
    assert reduce_observation(plan, options)["wavelength_solution"] == first["wavelength_solution"]
    arc = plan.arc[0]
    with fits.open(arc) as hdul:
        header = hdul[0].header.copy()
        blank = np.full(hdul[0].data.shape, 1000, np.uint16)
    fits.PrimaryHDU(blank, header=header).writeto(arc, overwrite=True)
    with pytest.raises(WavelengthError):
        reduce_observation(plan, options)


def test_calibration_cache_is_bounded_by_the_size_of_its_arrays():
    from rosace_reduction import pipeline
    from rosace_reduction.calibration import Masters

    pipeline.clear_cache()
    try:
        big = lambda: Masters(rows=slice(0, 1), bias=np.zeros((1000, 3000), np.float32), flat=np.ones((1000, 3000), np.float32))  # 24 MB
        for i in range(3):
            pipeline._cached(("masters", i), big)
        assert list(pipeline._CACHE) == [("masters", 2)]  # two would pass the 32 MB bound: the newest stays
        for i in range(10):
            pipeline._cached(("arc", i), lambda: (None, np.zeros(100)))
        assert len(pipeline._CACHE) == pipeline._CACHE_SIZE and ("arc", 9) in pipeline._CACHE
        hit = pipeline._cached(("arc", 9), lambda: pytest.fail("computed again"))
        assert hit[1].shape == (100,)
    finally:
        pipeline.clear_cache()
