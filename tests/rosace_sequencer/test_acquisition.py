"""Centroiding and slit centring on synthetic guide images whose answer is known."""

import numpy as np
import pytest

from rosace_sequencer.acquisition import AcquisitionError, center_on_slit, find_star


def star_image(x, y, *, flux=20000.0, fwhm=3.0, shape=(480, 640), noise=10.0, seed=1, slit_y=None):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    s = fwhm / 2.3548
    img = 500.0 + flux / (2 * np.pi * s * s) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s * s))
    return rng.normal(img, noise)


@pytest.mark.parametrize("x,y", [(320.0, 240.0), (101.3, 57.8), (600.6, 430.2)])
def test_find_star_centroid_within_a_tenth_of_a_pixel(x, y):
    star = find_star(star_image(x, y))
    assert star is not None
    assert abs(star.x - x) < 0.1 and abs(star.y - y) < 0.1
    assert star.snr > 50


def test_find_star_picks_the_brightest_of_two():
    img = star_image(100, 100, flux=5000) + star_image(400, 300, flux=40000, seed=2) - 500
    star = find_star(img)
    assert abs(star.x - 400) < 0.2 and abs(star.y - 300) < 0.2


def test_find_star_returns_none_on_blank_sky():
    rng = np.random.default_rng(3)
    assert find_star(rng.normal(500, 10, (480, 640))) is None


class FakeSky:
    """A guide camera looking at a star that moves by ``matrix @ (east, north)`` pixels per arcsec."""

    def __init__(self, start, matrix, scale=0.8):
        self.pos = np.array(start, float)
        self.matrix = np.asarray(matrix, float)
        self.exposures = 0

    def expose(self):
        self.exposures += 1
        return star_image(*self.pos, seed=self.exposures)

    def move(self, east, north):
        self.pos = self.pos + self.matrix @ np.array([east, north])


@pytest.mark.parametrize("matrix", [
    [[1 / 0.8, 0], [0, 1 / 0.8]],                   # as configured
    [[-1 / 0.8, 0], [0, 1 / 0.8]],                  # x mirrored
    [[np.cos(0.3) / 0.8, -np.sin(0.3) / 0.8], [np.sin(0.3) / 0.8, np.cos(0.3) / 0.8]],  # rotated 17 deg
    [[1 / 0.8 * 0.8, 0], [0, 1 / 0.8 * 1.2]],        # guide rate 20 % off
])
def test_center_on_slit_converges_despite_a_wrong_first_guess(matrix):
    sky = FakeSky((250.0, 300.0), matrix)
    result = center_on_slit(sky.expose, sky.move, slit=(320.0, 240.0), scale=0.8, tolerance=0.5, max_iterations=10)
    assert result.converged
    assert result.error_arcsec <= 0.5
    assert np.hypot(*(sky.pos - [320, 240])) * 0.8 < 0.6


def test_center_on_slit_fails_clearly_without_a_star():
    rng = np.random.default_rng(5)
    with pytest.raises(AcquisitionError, match="no star found"):
        center_on_slit(lambda: rng.normal(500, 10, (480, 640)), lambda e, n: None, slit=(320, 240), scale=0.8, tolerance=0.5)


def test_center_on_slit_fails_when_the_mount_does_not_move():
    sky = FakeSky((250.0, 300.0), [[0, 0], [0, 0]])
    with pytest.raises(AcquisitionError, match="still"):
        center_on_slit(sky.expose, lambda e, n: None, slit=(320, 240), scale=0.8, tolerance=0.5, max_iterations=3)


def test_a_star_that_vanishes_into_the_slit_counts_as_centred():
    sky = FakeSky((300.0, 250.0), [[1 / 0.8, 0], [0, 1 / 0.8]])

    def expose():
        img = sky.expose()
        if np.hypot(*(sky.pos - [320, 240])) < 2:  # in the slit: only faint sky left
            return np.random.default_rng(9).normal(500, 10, img.shape)
        return img

    result = center_on_slit(expose, sky.move, slit=(320.0, 240.0), scale=0.8, tolerance=0.5)
    assert result.converged and result.in_slit
    assert np.hypot(*(sky.pos - [320, 240])) < 1
