"""Calibration masters and cosmic-ray removal on small synthetic arrays."""

import numpy as np
import pytest

from rosace_reduction.calibration import Masters, calibrate, combine, normalise_flat, remove_cosmic_rays
from rosace_reduction.instrument import load_instrument


def test_combine_rejects_outliers():
    rng = np.random.default_rng(0)
    stack = rng.normal(100, 1, (7, 20, 20)).astype(np.float32)
    stack[3, 5, 5] = 5000  # a cosmic ray in one bias
    m = combine(stack)
    assert m[5, 5] == pytest.approx(100, abs=2)
    assert np.std(m) < 0.6


def test_combine_by_pieces_equals_the_whole_stack_at_once(monkeypatch):
    from astropy.stats import sigma_clip

    import rosace_reduction.calibration as calibration

    rng = np.random.default_rng(3)
    frames = [rng.normal(100, 3, (37, 50)).astype(np.float32) for _ in range(9)]
    frames[2][4, 7] = 8000.0  # cosmic rays, one pixel hit twice
    frames[5][4, 7] = 6000.0
    frames[6][30, 1:9] = 900.0
    frames[1][12, 12] = np.nan
    whole = sigma_clip(np.asarray(frames), sigma=3.0, axis=0, maxiters=2, cenfunc="median", stdfunc="mad_std").mean(axis=0).filled(np.nan)
    # a few rows at a time: 37 rows in pieces of 4 (the last one shorter)
    monkeypatch.setattr(calibration, "COMBINE_CHUNK_BYTES", 9 * 4 * 50 * 4)
    m = combine(frames)
    assert m.dtype == np.float32 and m.shape == (37, 50)
    np.testing.assert_array_equal(m, whole.astype(np.float32))
    assert m[4, 7] == pytest.approx(100, abs=5)


def test_dark_scaled_by_exposure_and_temperature():
    setup = load_instrument("alpy600")
    rows = slice(0, 4)
    masters = Masters(rows=rows, bias=1000.0, dark_rate=np.full((4, 4), 2.0, np.float32), dark_temp=-10.0)
    raw = np.full((4, 4), 1000.0 + 2.0 * 100 * 2.0, np.float32)  # 100 s at -4 degC: twice the rate at -10
    data, var, sat = calibrate(raw, masters, setup, 100.0, -4.0)
    assert np.allclose(data, 0.0, atol=1e-3)
    assert not sat.any()


def test_flat_normalised_along_dispersion_keeps_pixel_response():
    x = np.arange(500)
    spectral = 10000 * np.exp(-0.5 * ((x - 250) / 150) ** 2) + 2000
    pixel = 1 + 0.03 * np.sin(x * 1.7)
    flat = np.tile(spectral * pixel, (30, 1))
    norm = normalise_flat(flat)
    assert np.median(norm) == pytest.approx(1.0, abs=0.01)
    # The large-scale spectral shape is gone, pixel-to-pixel structure stays.
    assert np.std(ndiff := norm[10] - pixel) < 0.01, ndiff


def test_cosmic_rays_found_and_emission_line_kept():
    setup = load_instrument("alpy600")
    rng = np.random.default_rng(5)
    ny, nx = 120, 800
    v = np.arange(ny)[:, None] - 60
    x = np.arange(nx)[None, :]
    star = 800 * np.exp(-0.5 * (v / 1.6) ** 2) * (1 + 4 * np.exp(-0.5 * ((x - 400) / 3.0) ** 2))  # strong, narrow emission line
    clean_truth = star + 50
    img = rng.poisson(clean_truth * setup.detector.gain) / setup.detector.gain + rng.normal(0, 3, (ny, nx))
    cr = [(int(rng.integers(2, ny - 2)), int(rng.integers(2, nx - 2))) for _ in range(80)]
    for y0, x0 in cr:
        img[y0, x0] += rng.uniform(500, 5000)
    clean, mask = remove_cosmic_rays(img.astype(np.float32), setup)
    found = sum(mask[y0, x0] for y0, x0 in cr)
    assert found >= 0.95 * len(cr)
    # The line core on the trace is not taken for a cosmic ray.
    core = mask[55:66, 390:411]
    cr_in_core = sum(1 for y0, x0 in cr if 55 <= y0 < 66 and 390 <= x0 < 411)
    assert core.sum() <= cr_in_core * 9
    assert clean[60, 400] == pytest.approx(img[60, 400], rel=1e-6) or any(abs(y0 - 60) <= 1 and abs(x0 - 400) <= 1 for y0, x0 in cr)
