"""Slit acquisition: find the star on the guide (slit-jaw) camera and put it on the slit.

``find_star`` is plain numpy/scipy on one image. ``center_on_slit`` iterates
image -> centroid -> mount move until the star is within the tolerance of the
slit. The mapping from a commanded move (arcsec East, North) to the star's
motion on the guide image (pixels) starts from the configured orientation and
plate scale; the first two moves go along one axis each and measure that axis
exactly (a guider calibration made on the way to the slit), later moves refine
it (Broyden's rank-one update), so a camera rotated or mirrored against the
first guess still converges.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import ndimage

from rosace_core.errors import RosaceError

log = logging.getLogger(__name__)


class AcquisitionError(RosaceError):
    """The star could not be found or put on the slit."""


@dataclass(frozen=True)
class Star:
    """A star found on an image: centroid (x = column, y = row, pixels), flux (ADU above background), S/N."""

    x: float
    y: float
    flux: float
    snr: float
    npix: int


def find_star(image: np.ndarray, *, sigma: float = 6.0, min_pixels: int = 4, exclude: tuple[float, float, float] | None = None) -> Star | None:
    """Return the brightest star on ``image`` (rows x columns), or None if nothing stands out.

    The background and its noise are the median and the MAD of the smoothed image;
    pixels ``sigma`` noise above it form candidate blobs, the blob with the largest
    flux wins, and its centroid is the flux-weighted mean over its bounding box
    (grown by 3 px) above the background. ``exclude`` = (x, y, radius) ignores a region.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2 or img.size == 0:
        raise ValueError("find_star expects a 2D image")
    smooth = ndimage.gaussian_filter(img, 1.5)
    bkg = float(np.median(smooth))
    noise = float(1.4826 * np.median(np.abs(smooth - bkg)))
    if noise <= 0:
        noise = float(np.std(smooth)) or 1.0
    mask = smooth > bkg + sigma * noise
    if exclude is not None:
        yy, xx = np.ogrid[: img.shape[0], : img.shape[1]]
        mask &= (xx - exclude[0]) ** 2 + (yy - exclude[1]) ** 2 > exclude[2] ** 2
    labels, n = ndimage.label(mask)
    if n == 0:
        return None
    index = np.arange(1, n + 1)
    sizes = ndimage.sum_labels(np.ones_like(img), labels, index)
    fluxes = ndimage.sum_labels(img - bkg, labels, index)
    fluxes = np.where(sizes >= min_pixels, fluxes, -np.inf)
    best = int(np.argmax(fluxes))
    if not np.isfinite(fluxes[best]):
        return None
    sl = ndimage.find_objects(labels)[best]
    y0, y1 = max(0, sl[0].start - 3), min(img.shape[0], sl[0].stop + 3)
    x0, x1 = max(0, sl[1].start - 3), min(img.shape[1], sl[1].stop + 3)
    cut = np.clip(img[y0:y1, x0:x1] - float(np.median(img)), 0, None)
    total = float(cut.sum())
    if total <= 0:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1]
    x = float((xx * cut).sum() / total)
    y = float((yy * cut).sum() / total)
    raw_noise = float(1.4826 * np.median(np.abs(img - np.median(img)))) or 1.0
    snr = float(fluxes[best] / (raw_noise * np.sqrt(sizes[best])))
    return Star(x=x, y=y, flux=float(fluxes[best]), snr=snr, npix=int(sizes[best]))


@dataclass
class AcquisitionResult:
    """How the centring went: final offset from the slit (arcsec), iterations, the measured positions."""

    converged: bool
    iterations: int
    error_arcsec: float
    positions: list[tuple[float, float]] = field(default_factory=list)
    moves: list[tuple[float, float]] = field(default_factory=list)
    in_slit: bool = False  # the star disappeared into the slit: position predicted, not measured
    #: pixels moved on the guide image per arcsec commanded: columns (East, North), as learnt on the way
    model: list[list[float]] | None = None

    def to_dict(self) -> dict:
        out = {"converged": self.converged, "iterations": self.iterations, "error_arcsec": round(self.error_arcsec, 3), "in_slit": self.in_slit,
               "positions": [[round(x, 2), round(y, 2)] for x, y in self.positions]}
        if self.model is not None:
            out["model"] = [[round(v, 5) for v in row] for row in self.model]
        return out


def center_on_slit(
    expose: Callable[[], np.ndarray],
    move: Callable[[float, float], None],
    *,
    slit: tuple[float, float],
    scale: float,
    tolerance: float,
    max_iterations: int = 8,
    x_sign: int = 1,
    y_sign: int = 1,
    sigma: float = 6.0,
    check_abort: Callable[[], None] | None = None,
) -> AcquisitionResult:
    """Put the star on the slit.

    ``expose()`` returns a guide image; ``move(east, north)`` moves the telescope
    pointing by that many arcsec. ``slit`` is the slit position (x, y) in pixels,
    ``scale`` the plate scale (arcsec/px), ``tolerance`` the allowed final offset
    (arcsec). Raises AcquisitionError when no star is found or when it is still
    off the slit after ``max_iterations`` moves.
    """
    # pixels moved on the image per arcsec commanded (East, North): columns of A
    first_guess = np.array([[x_sign / scale, 0.0], [0.0, y_sign / scale]], dtype=float)
    model = first_guess.copy()
    target = np.asarray(slit, dtype=float)
    result = AcquisitionResult(False, 0, float("inf"))
    previous: np.ndarray | None = None
    last_move: np.ndarray | None = None
    axis_moved: int | None = None
    uncalibrated = [0, 1]
    for iteration in range(max_iterations + 1):
        if check_abort:
            check_abort()
        star = find_star(expose(), sigma=sigma)
        if star is None and previous is not None and last_move is not None:
            # A star well centred falls into the slit and almost vanishes from the
            # slit-jaw image: accept it when the last move aimed it at the slit.
            expected = previous + model @ last_move
            miss = float(np.hypot(*(target - expected)) * scale)
            if miss <= max(tolerance, 1.0):
                result.positions.append((float(expected[0]), float(expected[1])))
                result.error_arcsec, result.iterations, result.converged = miss, iteration, True
                result.in_slit = True
                return result
        if star is None:
            where = "after a move" if iteration else "on the first guide image"
            raise AcquisitionError(f"slit acquisition: no star found {where} (check pointing, focus, exposure)")
        pos = np.array([star.x, star.y])
        result.positions.append((star.x, star.y))
        offset = target - pos
        result.error_arcsec = float(np.hypot(*offset) * scale)
        result.iterations = iteration
        log.debug("acquisition %d: star at (%.1f, %.1f), %.2f arcsec from the slit", iteration, star.x, star.y, result.error_arcsec)
        if previous is not None and last_move is not None:
            seen = pos - previous
            if axis_moved is not None:
                # A move along one axis measures that column of the model exactly
                # (the first moves: like a guider calibration, but on the way to the slit).
                column = seen / last_move[axis_moved]
                if np.hypot(*column) * scale > 0.1:
                    model[:, axis_moved] = column
            elif np.hypot(*last_move) > 0.05:
                predicted = model @ last_move
                # Broyden's update: the smallest change of the model that explains the last move.
                model = model + np.outer(seen - predicted, last_move) / float(last_move @ last_move)
        result.model = model.tolist()
        if result.error_arcsec <= tolerance:
            result.converged = True
            return result
        if iteration == max_iterations:
            break
        try:
            step = np.linalg.solve(model, offset)
        except np.linalg.LinAlgError:
            model = first_guess.copy()
            step = np.linalg.solve(model, offset)
        axis_moved = None
        while uncalibrated:
            axis = uncalibrated.pop(0)
            if abs(step[axis]) >= max(1.0, tolerance / 2):
                axis_moved = axis
                step = np.where(np.arange(2) == axis, step, 0.0)
                break
        # never jump further than a few times the distance to the slit: a bad model must not lose the star
        limit = 3.0 * result.error_arcsec + 2.0
        norm = float(np.hypot(*step))
        if norm > limit:
            step = step * (limit / norm)
        move(float(step[0]), float(step[1]))
        result.moves.append((float(step[0]), float(step[1])))
        previous, last_move = pos, step
    raise AcquisitionError(
        f"slit acquisition: star still {result.error_arcsec:.2f} arcsec from the slit after {max_iterations} moves "
        f"(tolerance {tolerance} arcsec)")
