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


#: arcsec: the smallest move that measures the mount's response (the star's own motion between two images is a few arcsec at most)
MEASURING_MOVE = 6.0


class DriftModel:
    """The mount's own motion on the guide image (periodic error, drift), learnt from the acquisition's images.

    After every move, the star's measured motion minus the model's response to the
    move is what the mount did by itself over that interval. Each interval is
    weighted by how well it is known: a long move hides the mount's motion behind the
    model's own error (a few per cent of the move once measured, more before). A
    weighted least-squares fit over the last intervals, pulled towards no motion
    while they say little, predicts the next interval, so the star is met where it
    will be, not chased where it was:

    - without a known worm period: a drift rate changing linearly in time;
    - with the mount's ``worm_period`` (seconds): a drift rate plus a sinusoid of
      that period (amplitude and phase fitted), which also holds when one move
      spans a good part of the period (an accelerated clock on a loaded computer).

    Written here because it is a weighted linear fit of two or three terms on a
    handful of intervals.
    """

    #: centroid noise (pixels) assumed for the weights
    NOISE_PX = 0.3
    #: prior: drift rates of a tracking mount are within ~0.05 px/s (0.04"/s)
    RATE_PRIOR = 0.05
    #: prior: without a known period, the rate changes by ~1e-3 px/s per second at most (a 2.5" worm error's acceleration)
    CHANGE_PRIOR = 1e-3
    #: prior: periodic error semi-amplitude within ~6 px (5")
    AMPLITUDE_PRIOR = 6.0

    def __init__(self, worm_period: float | None = None):
        self.worm_period = worm_period
        self.intervals: list[tuple[float, float, np.ndarray, float]] = []  # (t0, t1, pixels, weight)

    def add(self, t0: float, t1: float, unexplained: np.ndarray, response: np.ndarray, model_error: float) -> None:
        if t1 <= t0:
            return
        doubt = np.hypot(self.NOISE_PX, model_error * float(np.hypot(*response)))
        self.intervals.append((t0, t1, np.asarray(unexplained, float), 1.0 / doubt ** 2))

    def _features(self, t0: float, t1: float, ref: float) -> list[float]:
        if self.worm_period:
            w = 2.0 * np.pi / self.worm_period
            return [t1 - t0, np.sin(w * (t1 - ref)) - np.sin(w * (t0 - ref)), np.cos(w * (t1 - ref)) - np.cos(w * (t0 - ref))]
        return [t1 - t0, ((t1 - ref) ** 2 - (t0 - ref) ** 2) / 2.0]

    def predict(self, t0: float, t1: float) -> np.ndarray:
        """Pixels the star should move by itself from clock time ``t0`` to ``t1``."""
        if not self.intervals or t1 <= t0:
            return np.zeros(2)
        recent = self.intervals[-6:] if self.worm_period else self.intervals[-4:]
        ref = recent[-1][1]
        sw = np.sqrt(np.array([i[3] for i in recent]))
        rows = np.array([self._features(i[0], i[1], ref) for i in recent]) * sw[:, None]
        priors = [1.0 / self.RATE_PRIOR] + ([1.0 / self.AMPLITUDE_PRIOR] * 2 if self.worm_period else [1.0 / self.CHANGE_PRIOR])
        design = np.vstack([rows, np.diag(priors)])
        values = np.vstack([np.array([i[2] for i in recent]) * sw[:, None], np.zeros((len(priors), 2))])
        coeffs, *_ = np.linalg.lstsq(design, values, rcond=None)
        if not self.worm_period:
            # the rate at the interval's middle; its change never extrapolated further ahead than the intervals reach back
            ahead = min((t0 + t1) / 2 - ref, ref - recent[0][0])
            return (t1 - t0) * (coeffs[0] + coeffs[1] * ahead)
        return np.array(self._features(t0, t1, ref)) @ coeffs


def center_on_slit(    expose: Callable[[], np.ndarray],
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
    now: Callable[[], float] | None = None,
    worm_period: float | None = None,
    slit_width_px: float | None = None,
) -> AcquisitionResult:
    """Put the star on the slit: a closed loop on the star's measured motion.

    ``expose()`` returns a guide image; ``move(east, north)`` moves the telescope
    pointing by that many arcsec. ``slit`` is the slit position (x, y) in pixels,
    ``scale`` the plate scale (arcsec/px), ``tolerance`` the allowed final offset
    (arcsec). ``now()`` reads the observatory clock (seconds; default the process
    clock): every guide image is time-stamped, and what the star did that the moves
    do not explain (periodic error, drift: under an accelerated clock or on a loaded
    computer a move can take minutes of clock time) is fitted over time and
    predicted for the next image, which each move aims at. The response to a move
    (pixels per arcsec) is measured on the first moves along each axis and refined
    afterwards, always net of the predicted drift, and only on moves large enough
    to tell the two apart. ``worm_period`` (seconds), when the mount's is known, lets
    the prediction follow its periodic error over long moves. With ``slit_width_px``
    a star near the slit is measured from both its wings (the slit swallows its
    core, and a plain centroid of what is left is pushed away from the slit: see
    :func:`rosace_sequencer.guiding.measure_on_slit`). Raises AcquisitionError when no star is found or when it
    is still off the slit after ``max_iterations`` moves.
    """
    if now is None:
        from rosace_core.clock import get_clock

        now = get_clock().timestamp
    # pixels moved on the image per arcsec commanded (East, North): columns of A
    first_guess = np.array([[x_sign / scale, 0.0], [0.0, y_sign / scale]], dtype=float)
    model = first_guess.copy()
    target = np.asarray(slit, dtype=float)
    result = AcquisitionResult(False, 0, float("inf"))
    previous: np.ndarray | None = None
    last_move: np.ndarray | None = None
    axis_moved: int | None = None
    uncalibrated = [0, 1]
    drift = DriftModel(worm_period)
    measured = False                 # the model's response measured on a move yet (else: the configured guess)
    t_previous = 0.0                 # clock time of the last image (start of its exposure)
    lags: list[float] = []           # clock time from deciding a move to the start of the next image
    decided: float | None = None
    for iteration in range(max_iterations + 1):
        if check_abort:
            check_abort()
        t_image = float(now())
        if decided is not None:
            lags.append(t_image - decided)
        image = expose()
        star = find_star(image, sigma=sigma)
        if slit_width_px and (star is None or np.hypot(star.x - target[0], star.y - target[1]) < 25.0):
            from rosace_sequencer.guiding import measure_on_slit  # (guiding imports this module)

            near = (star.x, star.y) if star is not None else (float(target[0]), float(target[1]))
            star = measure_on_slit(image, slit=(float(target[0]), float(target[1])), slit_width_px=slit_width_px, near=near, sigma=sigma) or star
        own = drift.predict(t_previous, t_image) if previous is not None else np.zeros(2)
        if star is None and previous is not None and last_move is not None:
            # A star well centred falls into the slit and almost vanishes from the
            # slit-jaw image: accept it when the last move aimed it at the slit.
            expected = previous + model @ last_move + own
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
            # What the move did: the measured motion minus the mount's own motion predicted over the interval.
            seen = pos - previous - own
            # Only a move well above what the mount's own motion may hide over one interval
            # (a few arcsec under a fast clock, not yet known on the first moves) measures the response.
            big = float(np.hypot(*last_move)) >= max(MEASURING_MOVE, 3.0 * float(np.hypot(*own)) * scale)
            if axis_moved is not None and big:
                # A move along one axis measures that column of the model
                # (the first moves: like a guider calibration, but on the way to the slit).
                column = seen / last_move[axis_moved]
                if np.hypot(*column) * scale > 0.1:
                    model[:, axis_moved] = column
            elif axis_moved is None and big:
                predicted = model @ last_move
                # Broyden's update: the smallest change of the model that explains the last move.
                model = model + np.outer(seen - predicted, last_move) / float(last_move @ last_move)
            if big:
                measured = True
            response = model @ last_move
            drift.add(t_previous, t_image, pos - previous - response, response, 0.08 if measured else 0.3)
        result.model = model.tolist()
        if result.error_arcsec <= tolerance:
            result.converged = True
            return result
        if iteration == max_iterations:
            break
        # Aim where the star will be at the next image if the mount is not moved
        # (the time spent reading out and measuring this one is known by now; the
        # move and its settling take about as long as the last ones did).
        decided = float(now())
        t_next = decided + (float(np.median(lags[-3:])) if lags else 0.0)
        aim = offset - drift.predict(t_image, t_next)
        try:
            step = np.linalg.solve(model, aim)
        except np.linalg.LinAlgError:
            model = first_guess.copy()
            step = np.linalg.solve(model, aim)
        axis_moved = None
        while uncalibrated:
            axis = uncalibrated.pop(0)
            if abs(step[axis]) >= MEASURING_MOVE:
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
        previous, last_move, t_previous = pos, step, t_image
    raise AcquisitionError(
        f"slit acquisition: star still {result.error_arcsec:.2f} arcsec from the slit after {max_iterations} moves "
        f"(tolerance {tolerance} arcsec)")
