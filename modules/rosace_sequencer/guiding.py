"""Guiding during a science exposure: keep the star on the slit while the spectrograph integrates.

While the spectrograph camera exposes, a :class:`GuideLoop` thread takes short
slit-jaw exposures on the guide camera, measures where the star is against the
slit (:func:`measure_on_slit`: the star's core falls into the slit and is missing
from the slit-jaw image, so a Moffat profile is fitted to the light left on the
jaws, the slit columns and saturated pixels left out), and sends pulse-guide
corrections to the mount: ``aggressiveness`` times the measured offset, nothing
under ``min_move``, at most ``max_move`` per axis and cycle.

A star that disappears (clouds) pauses the corrections without touching the
exposure; they resume when it comes back, and the frame's header says how many
guide frames were lost. A device error stops guiding (logged) and never the
science exposure. Stopping the loop (image ready, abort, error) ends any pulse
guide still running.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, optimize

from rosace_core.clock import get_clock
from rosace_core.errors import Aborted, DeviceError

from rosace_sequencer.acquisition import Star
from rosace_sequencer.hardware import Control

log = logging.getLogger(__name__)

MOFFAT_BETA = 4.765  # turbulence-limited seeing profile (Trujillo et al. 2001)


def measure_on_slit(image: np.ndarray, *, slit: tuple[float, float], slit_width_px: float, near: tuple[float, float] | None = None,
                    box: int = 30, sigma: float = 6.0, saturation: float = 60000.0) -> Star | None:
    """Return the star's centre (x column, y row, pixels) on a slit-jaw image, or None if no star stands out.

    Looks within ``box`` pixels of ``near`` (default: the slit position ``slit``).
    The slit runs along the columns (north-south) at column ``slit[0]``; its
    ``slit_width_px`` columns (plus a pixel of margin each side) and saturated
    pixels are left out, and a Moffat profile (beta 4.765) is fitted to what is
    left, so a star half hidden in the slit is measured from both its wings.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2 or img.size == 0:
        raise ValueError("measure_on_slit expects a 2D image")
    rows, cols = img.shape
    cx, cy = near if near is not None else slit
    x0, x1 = max(0, int(cx) - box), min(cols, int(cx) + box + 1)
    y0, y1 = max(0, int(cy) - box), min(rows, int(cy) + box + 1)
    if x1 - x0 < 5 or y1 - y0 < 5:
        return None
    # Background and noise from every other pixel of the frame (the star is a small part of it).
    sample = img[::2, ::2]
    raw_bkg = float(np.median(sample))
    raw_noise = float(1.4826 * np.median(np.abs(sample - raw_bkg))) or 1.0
    m = 6  # smoothing margin
    sy0, sx0 = max(0, y0 - m), max(0, x0 - m)
    region = ndimage.gaussian_filter(img[sy0:min(rows, y1 + m), sx0:min(cols, x1 + m)], 1.5)
    smooth = region[y0 - sy0:y1 - sy0, x0 - sx0:x1 - sx0]
    bkg = float(np.median(region))
    noise = float(1.4826 * np.median(np.abs(region - bkg))) or raw_noise * 0.19
    cut = img[y0:y1, x0:x1] - raw_bkg
    yy, xx = np.mgrid[y0:y1, x0:x1]
    usable = (np.abs(xx - slit[0]) > slit_width_px / 2.0 + 1.0) & (img[y0:y1, x0:x1] < saturation)
    saturated = img[y0:y1, x0:x1] >= saturation
    bright = ((smooth > bkg + sigma * noise) & usable) | saturated
    labels, n = ndimage.label(ndimage.binary_dilation(bright, iterations=int(math.ceil(slit_width_px / 2.0)) + 2))
    if n == 0:
        return None
    # the blob holding the most light: both wings of a star split by the slit join through the dilation
    light = ndimage.sum_labels(np.where(bright, np.maximum(cut, 0.0), 0.0) + saturated * saturation, labels, np.arange(1, n + 1))
    best = int(np.argmax(light)) + 1
    blob = labels == best
    npix = int((bright & blob).sum())
    if npix < 4:
        return None
    w = np.where(blob & usable, np.maximum(cut, 0.0), 0.0)
    total = float(w.sum())
    if total <= 0:
        return None
    gx, gy = float((w * xx).sum() / total), float((w * yy).sum() / total)
    snr = total / (raw_noise * math.sqrt(max(1, int((blob & usable).sum()))))
    fit = usable & ((xx - gx) ** 2 + (yy - gy) ** 2 <= (box * 0.8) ** 2)
    data, fx, fy = cut[fit].astype(np.float64), xx[fit].astype(np.float64), yy[fit].astype(np.float64)
    if data.size < 8:
        return Star(x=gx, y=gy, flux=total, snr=snr, npix=npix)

    def residual(p):
        amp, x, y, alpha, b = p
        r2 = ((fx - x) ** 2 + (fy - y) ** 2) / (alpha * alpha)
        return amp * (1.0 + r2) ** -MOFFAT_BETA + b - data

    # the centroid of the light on the jaws is pulled away from the slit: start the fit between it and the slit
    start_x = gx if abs(gx - slit[0]) > 3 * slit_width_px else 0.5 * (gx + slit[0])
    p0 = [max(float(data.max()), 1.0) * 2.0, start_x, gy, 3.0, 0.0]
    lo = [0.0, x0 - 0.5, y0 - 0.5, 0.5, -10.0 * raw_noise]
    hi = [np.inf, x1 - 0.5, y1 - 0.5, float(box), 10.0 * raw_noise]
    try:
        res = optimize.least_squares(residual, p0, bounds=(lo, hi), x_scale="jac", max_nfev=200)
    except (ValueError, np.linalg.LinAlgError):  # a degenerate fit: keep the centroid
        return Star(x=gx, y=gy, flux=total, snr=snr, npix=npix)
    if not res.success or not np.all(np.isfinite(res.x)):
        return Star(x=gx, y=gy, flux=total, snr=snr, npix=npix)
    return Star(x=float(res.x[1]), y=float(res.x[2]), flux=total, snr=snr, npix=npix)


@dataclass(frozen=True)
class GuideSettings:
    """How to guide: the guide camera, the slit, the calibration and the loop's gains.

    ``model``: pixels moved on the guide image per arcsec of commanded move, columns
    (East, North) (as learnt during slit acquisition). Moves and offsets are arcsec.
    """

    exposure: float
    slit: tuple[float, float]
    slit_width_px: float
    scale: float
    model: tuple[tuple[float, float], tuple[float, float]]
    aggressiveness: float = 0.7
    min_move: float = 0.15
    max_move: float = 3.0
    rate: float = 7.52
    interval: float = 2.0
    min_wall_interval: float = 0.25
    sigma: float = 6.0
    readout_timeout: float = 60.0
    readout_min_wall: float = 20.0


@dataclass
class GuideStats:
    """What the guide loop saw during one science exposure."""

    frames: int = 0
    lost: int = 0
    corrections: int = 0
    offsets: list[tuple[float, float]] = field(default_factory=list)  # star - slit, (East, North) arcsec
    state: str = "not started"
    error: str | None = None
    lost_now: bool = False

    def rms(self) -> tuple[float, float, float]:
        """RMS of the star's offsets from the slit: (RA, Dec, total), arcsec; NaN without a measurement."""
        if not self.offsets:
            return float("nan"), float("nan"), float("nan")
        a = np.asarray(self.offsets, dtype=float)
        ra, dec = (float(np.sqrt(np.mean(a[:, i] ** 2))) for i in (0, 1))
        return ra, dec, math.hypot(ra, dec)

    def to_dict(self) -> dict:
        ra, dec, total = self.rms()
        clean = (lambda v: None if math.isnan(v) else round(v, 3))
        return {"state": self.state, "frames": self.frames, "measured": len(self.offsets), "lost": self.lost,
                "corrections": self.corrections, "rms_arcsec": clean(total), "rms_ra_arcsec": clean(ra),
                "rms_dec_arcsec": clean(dec), "error": self.error}

    def header(self) -> dict:
        """FITS keywords (value, comment) for the science frame."""
        ra, dec, total = self.rms()
        hdr = {
            "GUIDING": (True, "guided on the slit during the exposure"),
            "GUIDECNT": (len(self.offsets), "guide frames measured during the exposure"),
            "GUIDELST": (self.lost, "guide frames with the star lost (no correction)"),
            "GUIDECOR": (self.corrections, "guide corrections sent to the mount"),
            "GUIDSTAT": (self.state[:68], "guiding state at the end of the exposure"),
        }
        if self.offsets:
            hdr["GUIDERMS"] = (round(total, 3), "guiding RMS, star to slit, arcsec")
            hdr["GUIDRMSR"] = (round(ra, 3), "guiding RMS in RA (east-west), arcsec")
            hdr["GUIDRMSD"] = (round(dec, 3), "guiding RMS in Dec (north-south), arcsec")
        return hdr


class _LoopControl(Control):
    """The guide loop's own stop, which also obeys the observation's abort."""

    def __init__(self, parent: Control):
        super().__init__()
        self.parent = parent

    @property
    def aborted(self) -> bool:
        return self.abort_event.is_set() or self.parent.aborted

    def check(self) -> None:
        if self.aborted:
            raise Aborted("guiding stopped")


class GuideLoop:
    """Guide on the slit in a thread for ``duration`` clock seconds (one science exposure).

    ``hw`` is the observation's :class:`~rosace_sequencer.hardware.Hardware`;
    ``control`` the observation's control (its abort stops the loop too). Use
    ``start()`` when the science exposure starts and ``stop()`` when its image is
    ready or it failed; ``stop()`` returns the :class:`GuideStats`.
    """

    def __init__(self, hw, settings: GuideSettings, control: Control, *, duration: float, status=None):
        self.hw = hw
        self.settings = settings
        self.control = _LoopControl(control)
        self.duration = float(duration)
        self.status = status or (lambda message: None)
        self.stats = GuideStats()
        self._thread: threading.Thread | None = None
        self._end = 0.0
        model = np.asarray(settings.model, dtype=float)
        if model.shape != (2, 2) or abs(np.linalg.det(model)) < 1e-9:
            raise ValueError(f"guide calibration {settings.model} is not an invertible 2x2 matrix")
        self._inverse = np.linalg.inv(model)

    def start(self) -> "GuideLoop":
        """Start guiding now; the loop ends by itself when the exposure's time is up."""
        self._end = get_clock().now().timestamp() + self.duration
        self.stats.state = "guiding"
        self._thread = threading.Thread(target=self._run, name="guide-loop", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> GuideStats:
        """Stop guiding (any pulse guide in progress is ended) and return the statistics."""
        self.control.abort_event.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the guide loop did not stop within %.0f s (a device call hangs); it will stop on its own", timeout)
        return self.stats

    def __enter__(self) -> "GuideLoop":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ the loop

    def _time_left(self) -> float:
        return self._end - get_clock().now().timestamp()

    def _run(self) -> None:
        s = self.settings
        target = np.asarray(s.slit, dtype=float)
        near: tuple[float, float] | None = None
        try:
            while not self.control.aborted and self._time_left() > s.exposure:
                wall0 = time.monotonic()
                image = self.hw.expose(self.hw.guider, s.exposure, light=True, control=self.control,
                                       readout_timeout=s.readout_timeout, readout_min_wall=s.readout_min_wall).image
                if self.control.aborted:
                    break
                self.stats.frames += 1
                box = int(max(20, math.ceil(3 * s.max_move / s.scale) + 10))
                star = measure_on_slit(image, slit=s.slit, slit_width_px=s.slit_width_px, near=near, box=box, sigma=s.sigma)
                if star is None and near is not None:
                    star = measure_on_slit(image, slit=s.slit, slit_width_px=s.slit_width_px, box=box, sigma=s.sigma)
                if star is None:
                    self._lost()
                else:
                    near = (star.x, star.y)
                    self._found(star, target)
                self._publish(image, star)
                # Pace the loop on the observatory clock, and in wall time too: an accelerated
                # clock must not turn the guide loop into a busy loop.
                self.control.wait(min(s.interval, max(0.0, self._time_left() - s.exposure)))
                rest = s.min_wall_interval - (time.monotonic() - wall0)
                if rest > 0:
                    self.control.abort_event.wait(rest)
        except Aborted:
            pass
        except DeviceError as exc:
            self.stats.state, self.stats.error = "error", str(exc)
            log.error("guiding stopped by a device error (the exposure goes on unguided): %s", exc)
        except Exception as exc:  # a bug here must never take the science exposure down
            self.stats.state, self.stats.error = "error", f"{exc.__class__.__name__}: {exc}"
            log.exception("guiding stopped by an unexpected error (the exposure goes on unguided)")
        finally:
            self._end_pulses()
            if self.stats.state == "guiding":
                self.stats.state = "aborted" if self.control.parent.aborted else "star lost" if self.stats.lost_now else "completed"

    def _publish(self, image, star) -> None:
        """Hand the frame and the latest offset to the sequencer's telemetry (desktop view), if any."""
        tele = getattr(self.hw, "telemetry", None)
        if tele is None:
            return
        s = self.settings
        tele.jaw_frame(image, slit=s.slit, slit_width_px=s.slit_width_px, star=None if star is None else (star.x, star.y))
        east, north = self.stats.offsets[-1] if star is not None and self.stats.offsets else (None, None)
        tele.guide_offset(east, north)

    def _lost(self) -> None:
        self.stats.lost += 1
        if not self.stats.lost_now:
            self.stats.lost_now = True
            log.warning("guiding: star lost on the slit-jaw image (clouds?); corrections paused, the exposure goes on")
            self.status("guiding: star lost, corrections paused")

    def _found(self, star: Star, target: np.ndarray) -> None:
        s = self.settings
        if self.stats.lost_now:
            self.stats.lost_now = False
            log.info("guiding: star found again after %d lost frame(s); corrections resume", self.stats.lost)
            self.status("guiding")
        # The move that brings the star onto the slit; the star's offset is its opposite.
        move = self._inverse @ (target - np.array([star.x, star.y]))
        self.stats.offsets.append((-float(move[0]), -float(move[1])))
        step = s.aggressiveness * move
        step = np.where(np.abs(step) < s.min_move, 0.0, np.clip(step, -s.max_move, s.max_move))
        if np.any(step != 0.0):
            self.hw.offset(float(step[0]), float(step[1]), rate=s.rate, control=self.control)
            self.stats.corrections += 1
        log.debug("guide: star %.2f E %.2f N arcsec from the slit, move %.2f E %.2f N", -move[0], -move[1], step[0], step[1])

    def _end_pulses(self) -> None:
        """Never leave the mount pulse-guiding: end a pulse still running (AbortSlew ends pulse guides)."""
        try:
            tel = self.hw.telescope
            if tel.is_pulse_guiding:
                tel.abort_slew()
                log.info("guiding stopped: pulse guide in progress ended")
        except DeviceError as exc:
            log.warning("guiding stopped, but the mount's pulse guiding could not be checked: %s", exc)
