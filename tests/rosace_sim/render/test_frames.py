"""The rendered frames have the properties their truth says: arc lines where
predicted, flux scaling with exposure and magnitude, Poisson + read noise,
binning and subframes, determinism."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

import numpy as np
from scipy.integrate import trapezoid
import pytest
from numpy.polynomial import polynomial as P
from scipy.optimize import curve_fit

from rosace_sim.render import Renderer, Star

SITE = (43.6, 1.44, 150.0)
WHEN = datetime(2026, 11, 24, 22, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def alpy():
    return Renderer("alpy600")


@pytest.fixture(scope="module")
def lhires():
    return Renderer("lhires2400")


def rng(seed=1):
    return np.random.default_rng(seed)


def extract(img: np.ndarray, truth: dict, half: int = 25) -> np.ndarray:
    """Background-subtracted star electrons per column, summed over +-half rows of the true trace."""
    ny, nx = img.shape
    gain = truth["detector"]["gain_e_per_adu"]
    trace = P.polyval(np.arange(nx), truth["geometry"]["trace_coeffs_image"]) + truth["slit"]["trace_offset_rows"]
    rows = np.arange(ny)[:, None]
    band = np.abs(rows - trace[None, :]) <= half
    bg_rows = (np.abs(rows - trace[None, :]) > 120) & (np.abs(rows - trace[None, :]) < 400)
    data = img.astype(np.float64)
    bg = np.nanmedian(np.where(bg_rows, data, np.nan), axis=0)
    return ((data - bg[None, :]) * band).sum(axis=0) * gain


def gaussian(x, a, mu, s, c):
    return a * np.exp(-0.5 * ((x - mu) / s) ** 2) + c


@pytest.mark.parametrize("name", ["alpy600", "lhires2400"])
def test_arc_lines_are_where_the_truth_predicts(name):
    r = Renderer(name)
    img, truth = r.arc(exposure=3.0 if name == "alpy600" else 12.0, rng=rng(2))
    geo = truth["geometry"]
    lines = truth["arc"]["lines"]
    sigma = truth["dispersion"]["lsf_fwhm_px"] / 2.3548
    cols = np.array([ln["column"] for ln in lines])
    checked = 0
    worst = 0.0
    for ln in lines:
        others = np.delete(cols, lines.index(ln))
        if np.min(np.abs(others - ln["column"]), initial=1e9) < 8 * sigma or not 1000 < ln["peak_e"] < 40000:
            continue  # blended or too faint / saturated for a clean centroid
        u = ln["column"]
        for y in (300, 1000, 1700):  # lines lean and curve: check rows far apart
            v = y - P.polyval(u, geo["trace_coeffs_unbinned"])
            x_pred = u + geo["tilt"] * v + geo["smile"] * v * v
            x0 = int(round(x_pred))
            xs = np.arange(x0 - int(5 * sigma), x0 + int(5 * sigma) + 1)
            if xs[0] < 0 or xs[-1] >= img.shape[1]:
                continue
            prof = img[y, xs].astype(float)
            p, _ = curve_fit(gaussian, xs, prof, p0=[prof.max() - prof.min(), x_pred, sigma, prof.min()])
            worst = max(worst, abs(p[1] - x_pred))
            checked += 1
    assert checked >= 6, f"only {checked} clean line measurements"
    assert worst < 0.1, f"an arc line is {worst:.3f} px from its predicted column"


def test_arc_lines_lean_by_the_true_tilt(alpy):
    img, truth = alpy.arc(exposure=3.0, rng=rng(3))
    cols = np.array([ln["column"] for ln in truth["arc"]["lines"]])
    isolated = [ln for ln in truth["arc"]["lines"] if np.sort(np.abs(cols - ln["column"]))[1] > 50 and 2000 < ln["peak_e"] < 40000]
    ln = max(isolated, key=lambda ln: ln["peak_e"])

    def centroid(y):
        x = ln["column"]
        for _ in range(4):  # follow the line: no use of the predicted tilt
            xs = np.arange(int(x) - 15, int(x) + 16)
            prof = np.clip(img[y, xs].astype(float) - 1000, 0, None)
            x = float((prof * xs).sum() / prof.sum())
        return x

    measured_shift = centroid(1700) - centroid(300)
    t = truth["geometry"]["trace_coeffs_unbinned"]
    v1, v0 = 1700 - P.polyval(ln["column"], t), 300 - P.polyval(ln["column"], t)
    expected = truth["geometry"]["tilt"] * (v1 - v0) + truth["geometry"]["smile"] * (v1 * v1 - v0 * v0)
    assert measured_shift == pytest.approx(expected, abs=0.3)
    assert measured_shift > 10  # tan(0.6 deg) * 1400 rows: visibly tilted


def test_flux_scales_with_exposure_and_magnitude(alpy):
    star = Star("HD 1", 30.0, 20.0, 6.0, "A0V")
    faint = Star("HD 2", 30.0, 20.0, 8.5, "A0V")
    a, ta = alpy.science(star, exposure=10.0, seeing=2.0, rng=rng(4))
    b, tb = alpy.science(star, exposure=40.0, seeing=2.0, rng=rng(5))
    c, tc = alpy.science(faint, exposure=40.0, seeing=2.0, rng=rng(6))
    assert ta["detector"]["n_saturated"] == tb["detector"]["n_saturated"] == 0
    fa, fb, fc = (extract(i, t)[200:2800].sum() for i, t in ((a, ta), (b, tb), (c, tc)))
    assert fb / fa == pytest.approx(4.0, rel=0.01)
    assert fc / fb == pytest.approx(10 ** (-0.4 * 2.5), rel=0.01)
    # And the electrons are those the truth expects (PRNU averages out over many pixels).
    expected = np.sum(tb["star"]["expected_e_per_image_column"][200:2800])
    assert fb == pytest.approx(expected, rel=0.01)


def test_noise_is_poisson_plus_read_noise(alpy):
    f1, t1 = alpy.flat(exposure=2.0, rng=rng(7))
    f2, _ = alpy.flat(exposure=2.0, rng=rng(8))
    b1, _ = alpy.bias(rng=rng(9))
    b2, _ = alpy.bias(rng=rng(10))
    gain, rn = t1["detector"]["gain_e_per_adu"], t1["detector"]["read_noise_e"]
    # Bias: read noise only (the fixed column pattern cancels in the difference).
    d = b1[200:1800, 200:2800].astype(float) - b2[200:1800, 200:2800]
    assert np.std(d) / math.sqrt(2) == pytest.approx(math.hypot(rn / gain, math.sqrt(1 / 12)), rel=0.02)
    # Flat: variance (ADU^2) = signal(e)/gain^2 + rn^2/gain^2 in blocks of nearly constant level.
    for x0 in (800, 1600, 2400):
        s1 = f1[900:1100, x0 : x0 + 40].astype(float)
        s2 = f2[900:1100, x0 : x0 + 40].astype(float)
        mean_e = (0.5 * (s1 + s2).mean() - t1["detector"]["bias_level_adu"]) * gain
        var = np.var(s1 - s2) / 2
        assert var == pytest.approx(mean_e / gain**2 + (rn / gain) ** 2 + 1 / 12, rel=0.05)


def test_exact_poisson_option_has_the_same_variance(alpy):
    star = Star("HD 3", 30.0, 20.0, 5.0, "G2V")
    sub = (1200, 960, 600, 80)
    a, t = alpy.science(star, exposure=30.0, subframe=sub, rng=rng(11), noise="poisson")
    b, _ = alpy.science(star, exposure=30.0, subframe=sub, rng=rng(12), noise="poisson")
    c, _ = alpy.science(star, exposure=30.0, subframe=sub, rng=rng(13))
    assert t["detector"]["noise_model"] == "poisson"
    core = slice(36, 45)  # the rows of the star's trace in this subframe
    mean_e = (a[core].astype(float) - 1000).mean() * 0.8
    assert mean_e > 500
    assert np.var(a[core].astype(float) - b[core]) == pytest.approx(np.var(a[core].astype(float) - c[core]), rel=0.1)


def test_binning_and_subframe_shapes(alpy):
    img, truth = alpy.bias(binning=(2, 2), rng=rng(14))
    assert img.shape == (1000, 1500) and img.dtype == np.uint16
    img, truth = alpy.arc(binning=(2, 2), subframe=(700, 350, 400, 300), exposure=2.0, rng=rng(15))
    assert img.shape == (300, 400)
    assert truth["image"]["shape"] == [300, 400]
    assert truth["image"]["subframe"] == [700, 350, 400, 300]
    full, tf = alpy.arc(exposure=2.0, rng=rng(16))
    ln = next(l for l in truth["arc"]["lines"] if 20 < l["image_column"] < 380 and l["peak_e"] < 12000)
    j = int(round(ln["image_column"]))
    y = P.polyval(ln["column"], truth["geometry"]["trace_coeffs_unbinned"])
    i = int(round((y - truth["image"]["y_unbinned"]["offset"]) / 2))
    row = img[i, j - 10 : j + 11].astype(float) - 1000
    assert (row * np.arange(j - 10, j + 11)).sum() / row.sum() == pytest.approx(ln["image_column"], abs=0.15)
    # On-chip binning sums the charge: a binned row holds two unbinned rows' worth of the line.
    x = int(round(ln["column"]))
    full_row = full[int(round(y)), x - 20 : x + 21].astype(float) - 1000
    assert row.sum() / full_row.sum() == pytest.approx(2.0, rel=0.05)
    # Dispersion polynomial in image columns agrees with the unbinned one.
    assert P.polyval(j, truth["dispersion"]["coeffs_image"]) == pytest.approx(P.polyval(2 * j + 1400 + 0.5, truth["dispersion"]["coeffs_unbinned"]), abs=1e-6)
    with pytest.raises(ValueError):
        alpy.bias(binning=(2, 2), subframe=(1400, 0, 200, 10))


def test_seeded_frames_are_identical_and_truth_is_json(alpy):
    alpy.prepare(astropy=True)
    star = Star("zet Tau", 84.41, 21.14, 3.0, "B1IVe", be_emission={"ew": -18})
    kw = dict(exposure=5.0, airmass=1.3, time=WHEN, site=SITE, subframe=(0, 900, 3000, 200))
    a, ta = alpy.science(star, rng=rng(21), **kw)
    b, tb = alpy.science(star, rng=rng(21), **kw)
    c, _ = alpy.science(star, rng=rng(22), **kw)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert json.dumps(ta, sort_keys=True) == json.dumps(tb, sort_keys=True)
    assert json.loads(json.dumps(ta))["halpha"]["ew_A"] == pytest.approx(-18, abs=1e-6)


def test_dark_current_doubles_and_cosmic_rays_are_recorded(alpy):
    d0, t0 = alpy.dark(exposure=600, ccd_temp=0.0, rng=rng(31))
    d6, t6 = alpy.dark(exposure=600, ccd_temp=6.0, rng=rng(32))
    assert t6["detector"]["dark_e_per_s"] == pytest.approx(2 * t0["detector"]["dark_e_per_s"])
    lvl0 = (np.median(d0) - 1000) * 0.8
    lvl6 = (np.median(d6) - 1000) * 0.8
    assert lvl0 == pytest.approx(0.02 * 600, rel=0.1)
    assert lvl6 == pytest.approx(2 * lvl0, rel=0.1)
    crs = t0["detector"]["cosmic_rays"]
    assert len(crs) > 10
    strong = [c for c in crs if c[2] > 300]
    assert strong and all(d0[r, c] > 1000 + 150 for r, c, _ in strong)


def test_saturation_clips_at_16_bits(alpy):
    img, truth = alpy.science(Star("Vega", 279.23, 38.78, 0.03, "A0V"), exposure=60, rng=rng(41), subframe=(0, 950, 3000, 100))
    assert img.max() == 65535
    assert truth["detector"]["n_saturated"] == int(np.count_nonzero(img == 65535)) > 0


def test_slit_losses_follow_seeing_and_offset(lhires):
    star = Star("HD 4", 30.0, 20.0, 5.0, "F5V")
    kw = dict(exposure=60.0, rng=rng(51), subframe=(0, 850, 3000, 300))
    _, t_good = lhires.science(star, seeing=1.5, **kw)
    _, t_bad = lhires.science(star, seeing=4.0, **kw)
    _, t_off = lhires.science(star, seeing=1.5, slit_offset=(0.8, 0.0), **kw)
    f = lambda t: t["slit"]["fraction_through_slit"]  # noqa: E731
    assert f(t_good) > f(t_bad) and f(t_good) > f(t_off)
    assert sum(t_good["star"]["expected_e_per_image_column"]) / sum(t_bad["star"]["expected_e_per_image_column"]) == pytest.approx(f(t_good) / f(t_bad), rel=1e-3)
    assert t_off["rv"]["slit_shift_px"] > 0  # the light centroid moves toward redder columns


def test_halpha_emission_and_rv_in_the_spectrum(lhires):
    star = Star("Be 1", 84.41, 21.14, 4.0, "B1Ve", be_emission={"ew": -25.0}, rv_curve=60.0)
    img, truth = lhires.science(star, exposure=600, airmass=1.1, time=WHEN, site=SITE, rng=rng(61), seeing=2.0)
    assert truth["detector"]["n_saturated"] == 0
    spec = extract(img, truth, half=30)
    wl = P.polyval(np.arange(img.shape[1]), truth["dispersion"]["coeffs_image"])
    cont_win = ((wl > 6480) & (wl < 6520)) | ((wl > 6600) & (wl < 6640))
    cont = np.polyval(np.polyfit(wl[cont_win], spec[cont_win], 1), wl)
    lo, hi = truth["halpha"]["window_A"]
    z = truth["rv"]["topocentric_kms"] / 299792.458
    win = (wl > lo * (1 + z)) & (wl < hi * (1 + z))
    ew = trapezoid((1 - spec / cont)[win], wl[win])
    assert truth["halpha"]["ew_A"] == pytest.approx(-25.0, abs=1e-6)
    assert ew == pytest.approx(-25.0, abs=1.0)  # tellurics and noise cost a little
    # The emission's centroid moved by the topocentric RV (star RV minus barycentric correction).
    em = np.clip(spec / cont - 1, 0, None) * win
    centre = (em * wl).sum() / em.sum()
    v = (centre / 6562.80 - 1) * 299792.458
    assert truth["rv"]["topocentric_kms"] == pytest.approx(60.0 - truth["rv"]["barycentric_correction_kms"], abs=0.05)
    assert v == pytest.approx(truth["rv"]["topocentric_kms"], abs=3.0)
    assert abs(truth["rv"]["barycentric_correction_kms"]) > 1.0


def test_noise_free_arc_centroids_are_exact(lhires):
    img, truth = lhires.arc(exposure=10.0, noise="none", rng=rng(71))
    assert truth["detector"]["cosmic_rays"] == []
    sigma = truth["dispersion"]["lsf_fwhm_px"] / 2.3548
    y = 1000
    for ln in truth["arc"]["lines"]:
        if not 500 < ln["peak_e"] < 40000:
            continue
        v = y - P.polyval(ln["column"], truth["geometry"]["trace_coeffs_unbinned"])
        x_pred = ln["column"] + truth["geometry"]["tilt"] * v + truth["geometry"]["smile"] * v * v
        xs = np.arange(int(x_pred) - int(6 * sigma), int(x_pred) + int(6 * sigma) + 2)
        # Remove the bias of each column (its fixed pattern) with a row far from any light.
        prof = img[y, xs].astype(float) - img[20, xs].astype(float)
        assert (prof * xs).sum() / prof.sum() == pytest.approx(x_pred, abs=0.02)  # integer ADU rounding only


def test_star_model_is_the_frame_expectation(alpy):
    star = Star("HD 5", 30.0, 20.0, 6.0, "K0III", rv_curve=-40.0)
    kw = dict(airmass=1.4, time=WHEN, site=SITE, seeing=3.0, slit_offset=(0.5, 0.0))
    img, truth = alpy.science(star, exposure=20.0, rng=rng(81), **kw)
    model = alpy.star_model(star, **(kw | {"time": WHEN + timedelta(seconds=10.0)}))  # mid-exposure
    assert np.allclose(np.asarray(truth["star"]["expected_e_per_image_column"]), model["e_per_s"] * 20.0, rtol=1e-4, atol=0.1)
    assert model["topocentric_kms"] == pytest.approx(truth["rv"]["topocentric_kms"])
    # The normalised spectrum is 1 in the continuum and dips at Na D (shifted by the RV).
    nad = np.argmin(np.abs(model["wavelength"] - 5892.9 * (1 + model["topocentric_kms"] / 299792.458)))
    assert model["normalised"][nad] < 0.9 and np.median(model["normalised"]) > 0.93
    assert 0 < model["telluric"].min() < 0.9 and model["telluric"].max() <= 1.0
    with pytest.raises(ValueError):
        alpy.bias(noise="perfect")


def test_sky_alone_shows_tilted_night_sky_lines(alpy):
    img, truth = alpy.science(None, exposure=600.0, sky_brightness=17.0, rng=rng(91), noise="none")
    assert "star" not in truth
    sky = truth["sky"]
    oi = next(i for i, ln in enumerate(sky["lines"]) if ln["wavelength"] == 5577.34)
    u = alpy.instrument.column_of(5577.34)
    for y in (400, 1600):
        v = y - alpy.instrument.trace(u)
        x_pred = u + truth["geometry"]["tilt"] * v + truth["geometry"]["smile"] * v * v
        xs = np.arange(int(x_pred) - 25, int(x_pred) + 27)
        bias_row = img[10].astype(float)  # beyond the slit end: the bias column pattern (and dark)
        row = img[y].astype(float) - bias_row
        side = np.r_[int(x_pred) - 70 : int(x_pred) - 35, int(x_pred) + 35 : int(x_pred) + 70]
        prof = row[xs] - np.polyval(np.polyfit(side, row[side], 1), xs)  # the sloped sky continuum
        assert prof.max() > 20  # visible above the sky continuum
        assert (prof * xs).sum() / prof.sum() == pytest.approx(x_pred, abs=0.3)
    assert sky["line_e_per_s_per_row"][oi] > 0


def test_single_gas_lamps_show_only_their_lines(alpy):
    ne, t_ne = alpy.arc("Ne", exposure=2.0, noise="none")
    ar, t_ar = alpy.arc("Ar", exposure=2.0, noise="none")
    assert {ln["element"] for ln in t_ne["arc"]["lines"]} == {"Ne I"}
    assert {ln["element"] for ln in t_ar["arc"]["lines"]} == {"Ar I"}
    x = int(round(next(ln["column"] for ln in t_ne["arc"]["lines"] if ln["wavelength"] == 5852.4878)))
    assert ne[1000, x - 3 : x + 4].max() > 5000 and ar[1000, x - 3 : x + 4].max() < 1010
    with pytest.raises(ValueError):
        alpy.arc("ThAr")


@pytest.mark.parametrize("binning,subframe", [((1, 1), None), ((2, 2), None), ((1, 1), (10, 300, 700, 333))])
def test_read_out_by_blocks_is_the_full_frame_formula(alpy, binning, subframe):
    """Gaussian read-out a block of rows at a time: the same uint16 image as one full-frame draw."""
    from rosace_sim.render.detector import read_out, region_of

    ins = alpy.instrument
    region = region_of(ins, binning, subframe)
    photo = np.random.default_rng(4).uniform(0, 40000, region.shape).astype(np.float32)
    photo[5, 5] = 1e7  # saturates
    img, det = read_out(ins, region, photo.copy(), 30.0, -10.0, rng(9), cosmics=True)

    # Reference: the same steps on whole arrays, the same generator stream.
    g = rng(9)
    from rosace_sim.render.detector import cosmic_rays, dark_rate

    fp = ins.grid("fixed_pattern")
    ys, xs = slice(region.y0, region.y1), slice(region.x0, region.x1)
    mean = photo * fp["prnu"][ys, xs]
    mean += np.float32(dark_rate(ins, -10.0) * 30.0)
    hot = (fp["hot_rows"] >= region.y0) & (fp["hot_rows"] < region.y1) & (fp["hot_cols"] >= region.x0) & (fp["hot_cols"] < region.x1)
    hot_e = fp["hot_rate"][hot] * 2.0 ** (-10.0 / ins.dark_doubling) * 30.0
    np.add.at(mean, (fp["hot_rows"][hot] - region.y0, fp["hot_cols"][hot] - region.x0), hot_e.astype(np.float32))
    cr_r, cr_c, cr_e = cosmic_rays(ins, region, 30.0, g)
    np.add.at(mean, (cr_r - region.y0, cr_c - region.x0), cr_e.astype(np.float32))
    if region.bx > 1 or region.by > 1:
        ny, nx = region.image_shape
        mean = mean.reshape(ny, region.by, nx, region.bx).sum(axis=(1, 3), dtype=np.float32)
    bias_cols = fp["bias_columns"][xs]
    if region.bx > 1:
        bias_cols = bias_cols.reshape(-1, region.bx).mean(axis=1)
    sigma = np.sqrt(mean + np.float32(ins.read_noise**2))
    ref = g.standard_normal(mean.shape, dtype=np.float32) * sigma + mean
    ref *= np.float32(1.0 / ins.gain)
    ref += (np.float32(ins.bias_level + 0.5) + bias_cols)[None, :]
    ref = np.clip(ref, 0, ins.saturation + 0.49).astype(np.uint16)
    np.testing.assert_array_equal(img, ref)
    assert det["n_saturated"] == int(np.count_nonzero(ref >= ins.saturation)) >= 1
