"""Accuracy against the simulated observatory's truth (rosace_sim.render): frames written to FITS
with the contract headers, reduced as a user would, compared with the truth record."""

from datetime import datetime, timezone

import numpy as np
import pytest
from astropy.io import fits
from numpy.polynomial import polynomial as P

from rosace_reduction.instrument import load_instrument
from rosace_reduction.output import read_spectrum
from rosace_reduction.pipeline import Options, Plan, reduce_observation

render = pytest.importorskip("rosace_sim.render")


def _write(path, img, setup, kind, exptime, start, obj="gam Cas", ra=14.177, dec=60.717):
    h = fits.Header()
    h.update({"IMAGETYP": kind, "OBJECT": obj, "RA": ra, "DEC": dec, "DATE-OBS": start, "EXPTIME": exptime, "AIRMASS": 1.2,
              "SITENAME": "sim", "SITELAT": 43.75, "SITELONG": 6.92, "SITEELEV": 1270.0, "INSTRUME": setup.name,
              "OBSERVER": "Sim", "CCD-TEMP": -10.0, "ROSOBSID": "sim-1"})
    fits.PrimaryHDU(img, header=h).writeto(path)
    return str(path)


@pytest.mark.parametrize("name,exposure", [("alpy600", 4.0), ("lhires2400", 30.0)])
def test_be_star_against_truth(name, exposure, tmp_path):
    setup = load_instrument(name)
    r = render.Renderer(name)
    rng = np.random.default_rng(11)
    t = datetime(2026, 11, 20, 21, 0, tzinfo=timezone.utc)
    start = t.isoformat()[:19]
    star = render.Star("gam Cas", 14.177, 60.717, 2.39, "B0.5IVe", be_emission={"ew": -30})
    img, truth = r.science(star, exposure=exposure, airmass=1.2, time=t, site=(43.75, 6.92, 1270), rng=rng)
    arc, _ = r.arc("NeAr", exposure=2, rng=rng)
    flat, _ = r.flat(rng=rng)
    plan = Plan(
        science=[_write(tmp_path / "l.fits", img, setup, "LIGHT", exposure, start)],
        arc=[_write(tmp_path / "a.fits", arc, setup, "ARC", 2.0, start)],
        flat=[_write(tmp_path / "f.fits", flat, setup, "FLAT", 5.0, start)],
        bias=[_write(tmp_path / f"b{i}.fits", r.bias(rng=rng)[0], setup, "BIAS", 0.0, start) for i in range(3)],
    )
    rec = reduce_observation(plan, Options(output_root=str(tmp_path / "out")))
    # Wavelength solution within 0.05 px RMS of the true one (where arc lines constrain it).
    sol = rec["wavelength_solution"]
    x = np.arange(setup.detector.nx)
    true_wl = P.polyval(x, truth["dispersion"]["coeffs_image"])
    xs = [l["x"] for l in sol["lines"]]
    inside = (x >= min(xs)) & (x <= max(xs))
    err = (P.polyval(x - sol["x0"], sol["coeffs"]) - true_wl) / np.gradient(true_wl)
    assert np.sqrt(np.mean(err[inside] ** 2)) < 0.05
    # Geometry and barycentric correction.
    assert rec["quality"]["geometry"]["tilt_deg"] == pytest.approx(truth["geometry"]["tilt_deg"], abs=0.05)
    assert rec["barycentric_kms"] == pytest.approx(truth["rv"]["barycentric_correction_kms"], abs=0.01)
    # H-alpha equivalent width within 5 % (barycentric frame, the truth's +-25 A window).
    spec = read_spectrum(rec["products"]["fits"])
    w, f = spec.spectral_axis.value, spec.flux.value
    c0 = 6562.8 * (1 + truth["rv"]["star_barycentric_kms"] / 299792.458)
    side = ((w > c0 - 60) & (w < c0 - 30)) | ((w > c0 + 30) & (w < c0 + 60))
    cont = np.polyval(np.polyfit(w[side], f[side], 1), w)
    win = (w > c0 - 25) & (w < c0 + 25)
    ew = np.trapezoid(1 - f[win] / cont[win], w[win])
    assert ew == pytest.approx(truth["halpha"]["ew_A"], rel=0.05)
    assert rec["quality"]["resolving_power"] == pytest.approx(setup.resolving_power, rel=0.25)
