"""Trace, sky and extraction on synthetic frames, compared with specreduce (the reference implementation)."""

import numpy as np
import pytest

from rosace_reduction.extraction import extract
from rosace_reduction.geometry import LineGeometry, find_trace, rectify


def frame(rng, ny=200, nx=600, sigma=1.8, level=2000.0, sky=50.0):
    x = np.arange(nx)
    yt = 100.3 + 0.01 * (x - nx / 2) + 2e-5 * (x - nx / 2) ** 2
    v = np.arange(ny)[:, None] - yt[None, :]
    flux = level * (1 + 0.5 * np.sin(x / 60.0))
    img = flux[None, :] * np.exp(-0.5 * (v / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi)) + sky + 0.05 * v
    noisy = rng.poisson(np.clip(img, 0, None)).astype(np.float64) + rng.normal(0, 3, img.shape)
    return noisy, yt, flux


def test_trace_follows_a_curved_star():
    rng = np.random.default_rng(1)
    img, yt, _ = frame(rng)
    tr = find_trace(img - 50, order=2, bin_width=20)
    assert np.max(np.abs(tr.rows() - yt)) < 0.05
    assert tr.fwhm == pytest.approx(2.3548 * 1.8, rel=0.15)


@pytest.mark.parametrize("method", ["optimal", "boxcar"])
def test_extraction_recovers_flux_like_specreduce(method):
    from specreduce.background import Background
    from specreduce.extract import BoxcarExtract, HorneExtract
    from specreduce.tracing import ArrayTrace

    rng = np.random.default_rng(2)
    img, yt, flux = frame(rng)
    var = np.clip(img, 1, None) + 9.0
    tr = find_trace(img - 50, order=2, bin_width=20)
    half = 50
    band = rectify(img.astype(np.float32), 0, tr, LineGeometry(), half)
    vband = rectify(var.astype(np.float32), 0, tr, LineGeometry(), half)
    mask = ~np.isfinite(band)
    ext = extract(band, vband, mask, half, aperture=8, sky_offset=15, sky_width=30, method=method, read_var=9.0, gain=1.0)
    ours = np.abs(ext.flux / flux - 1)[20:-20]
    # specreduce on the same frame: two-sided background, then Horne/boxcar.
    trace = ArrayTrace(img, tr.rows())
    bg = Background.two_sided(img, trace, separation=30, width=30)
    sub = img - bg.bkg_image().flux.value
    if method == "optimal":
        ref = HorneExtract(sub, trace, variance=var, mask=np.zeros(img.shape, bool), unit=None).spectrum.flux.value
    else:
        ref = BoxcarExtract(sub, trace, width=17).spectrum.flux.value
    theirs = np.abs(ref / flux - 1)[20:-20]
    assert np.median(ours) < 0.02
    assert np.median(ours) <= 1.2 * np.median(theirs) + 0.002
    # Propagated uncertainties agree with the scatter about the truth.
    pull = ((ext.flux - flux) / np.sqrt(ext.variance))[20:-20]
    assert 0.7 < np.std(pull) < 1.4


def test_masked_pixel_does_not_drop_the_column():
    rng = np.random.default_rng(3)
    img, yt, flux = frame(rng)
    tr = find_trace(img - 50, order=2, bin_width=20)
    half = 50
    band = rectify(img.astype(np.float32), 0, tr, LineGeometry(), half)
    mask = np.zeros(band.shape, bool)
    mask[half, 300] = True  # e.g. a saturated pixel on the trace
    ext = extract(band, np.clip(band, 1, None) + 9, mask, half, aperture=8, sky_offset=15, sky_width=30, method="optimal", read_var=9.0, gain=1.0, saturated=mask)
    assert ext.flux[300] == pytest.approx(flux[300], rel=0.08)
    assert ext.saturated[300] and ext.saturated.sum() == 1


@pytest.mark.parametrize("method", ["optimal", "boxcar"])
def test_cosmic_ray_track_over_half_a_sky_window_is_rejected(method):
    # A track along the slit covering half of one sky window of a column (the pipeline
    # cleans cosmic rays only near the trace; the sky fit must reject the rest).
    rng = np.random.default_rng(4)
    img, yt, flux = frame(rng)
    tr = find_trace(img - 50, order=2, bin_width=20)
    half = 50
    band = rectify(img.astype(np.float32), 0, tr, LineGeometry(), half)
    col = 300
    band[half + 15 : half + 30, col] += 1500.0  # rows v = 15..29 of the 30-row window above the star
    var = np.clip(band, 1, None) + 9
    ext = extract(band, var, ~np.isfinite(band), half, aperture=8, sky_offset=15, sky_width=30, method=method, read_var=9.0, gain=1.0)
    pull = (ext.flux[col] - flux[col]) / np.sqrt(ext.variance[col])
    assert abs(pull) < 5, pull
