"""Calibration masters (bias, dark, flat), their application and cosmic-ray removal.

Masters are sigma-clipped combinations of their frames. The dark is stored as
a rate (ADU/s) at its own temperature and scaled to each frame's exposure and
temperature (the dark current doubles every ``dark_doubling`` degC). The flat is
normalised along the dispersion, so it corrects pixel-to-pixel response and
slit illumination but leaves the spectral shape to the instrument response.

Everything works on a band of rows (the trace, its aperture and sky windows)
so that a 3000 x 2000 frame costs no more than the few hundred rows used.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from astropy.stats import sigma_clip
from scipy import ndimage

from rosace_reduction.frames import FrameInfo, load_image
from rosace_reduction.instrument import InstrumentSetup


#: Rows of a stack sigma-clipped at a time are chosen to keep each piece under this size:
#: astropy's sigma_clip needs 3-4x its input in temporaries (15 darks of a 280-row band:
#: 169 MB at once, ~30 MB by pieces).
COMBINE_CHUNK_BYTES = 8 << 20


def combine(stack: Sequence[np.ndarray], sigma: float = 3.0) -> np.ndarray:
    """Combine frames pixel by pixel: sigma-clipped mean (median of 1-2 frames is the frame/mean).

    The clipping is per pixel, so a stack of 2D frames is clipped a few rows at
    a time: the same result as the whole stack at once, without its temporaries.
    """
    frames = [np.asarray(s, dtype=np.float32) for s in stack] if not isinstance(stack, np.ndarray) else None
    if not frames or len(frames) < 3 or frames[0].ndim != 2 or any(f.shape != frames[0].shape for f in frames):
        arr = np.asarray(stack, dtype=np.float32)
        if arr.ndim == 2:
            return arr
        if len(arr) < 3:
            return arr.mean(axis=0)
        clipped = sigma_clip(arr, sigma=sigma, axis=0, maxiters=2, cenfunc="median", stdfunc="mad_std")
        return np.asarray(clipped.mean(axis=0).filled(np.nan), dtype=np.float32)
    ny = frames[0].shape[0]
    step = max(1, COMBINE_CHUNK_BYTES // max(1, len(frames) * frames[0][:1].nbytes))
    out = np.empty(frames[0].shape, dtype=np.float32)
    for r0 in range(0, ny, step):
        part = np.stack([f[r0 : r0 + step] for f in frames])
        clipped = sigma_clip(part, sigma=sigma, axis=0, maxiters=2, cenfunc="median", stdfunc="mad_std")
        out[r0 : r0 + step] = clipped.mean(axis=0).filled(np.nan)
    return out


@dataclass
class Masters:
    """Calibration masters for one band of rows (``rows``) of a set-up."""

    rows: slice
    bias: np.ndarray | float
    dark_rate: np.ndarray | float = 0.0
    dark_temp: float | None = None
    flat: np.ndarray | float = 1.0
    used: dict = field(default_factory=dict)

    def dark_scale(self, temp: float | None, doubling: float) -> float:
        """Factor applying the dark rate at ``temp`` (1 when a temperature is unknown)."""
        if temp is None or self.dark_temp is None:
            return 1.0
        return float(2.0 ** ((temp - self.dark_temp) / doubling))


def normalise_flat(flat: np.ndarray, smooth: int = 31) -> np.ndarray:
    """Divide a (bias-subtracted) flat by its smoothed spectral shape, keeping pixel and slit structure.

    Pixels far below the illuminated level (outside the slit image) are set to 1
    so that they never blow up a division.
    """
    spectral = np.nanmedian(flat, axis=0)
    spectral = ndimage.uniform_filter1d(spectral, smooth, mode="nearest")
    spectral = np.where(spectral > 0, spectral, np.nan)
    norm = flat / spectral[None, :]
    level = np.nanmedian(norm)
    norm = norm / level if np.isfinite(level) and level > 0 else norm
    bad = ~np.isfinite(norm) | (norm < 0.2)
    norm[bad] = 1.0
    return norm.astype(np.float32)


def build_masters(
    setup: InstrumentSetup,
    rows: slice,
    bias: Sequence[FrameInfo] = (),
    dark: Sequence[FrameInfo] = (),
    flat: Sequence[FrameInfo] = (),
) -> Masters:
    """Build masters restricted to ``rows`` from the given calibration frames.

    Without bias frames the nominal bias level of the set-up is used; without
    darks no dark is subtracted; without flats the flat is 1.
    """
    det = setup.detector
    used: dict = {"bias": [str(f.path) for f in bias], "dark": [str(f.path) for f in dark], "flat": [str(f.path) for f in flat]}
    bias_m: np.ndarray | float = combine([load_image(f.path, rows) for f in bias]) if bias else float(det.bias_level)
    dark_rate: np.ndarray | float = 0.0
    dark_temp = None
    if dark:
        frames = [(load_image(f.path, rows) - bias_m) / max(f.exptime, 1e-3) for f in dark]
        dark_rate = combine(frames)
        temps = [f.ccd_temp for f in dark if f.ccd_temp is not None]
        dark_temp = float(np.mean(temps)) if temps else None
    flat_m: np.ndarray | float = 1.0
    if flat:
        frames = []
        for f in flat:
            img = load_image(f.path, rows) - bias_m
            if not np.isscalar(dark_rate):
                img = img - dark_rate * f.exptime
            frames.append(img)
        flat_m = normalise_flat(combine(frames))
    return Masters(rows=rows, bias=bias_m, dark_rate=dark_rate, dark_temp=dark_temp, flat=flat_m, used=used)


def calibrate(raw: np.ndarray, masters: Masters, setup: InstrumentSetup, exptime: float, temp: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (data ADU, variance ADU^2, saturated mask) of a raw band after bias, dark and flat."""
    det = setup.detector
    saturated = raw >= det.saturation * 0.999
    data = raw - masters.bias
    if not np.isscalar(masters.dark_rate) or masters.dark_rate:
        data = data - masters.dark_rate * exptime * masters.dark_scale(temp, det.dark_doubling)
    # Shot noise from the electrons actually collected, read noise per pixel.
    variance = np.maximum(data, 0.0) / det.gain + (det.read_noise / det.gain) ** 2
    data = data / masters.flat
    variance = variance / np.square(masters.flat)
    return data.astype(np.float32), variance.astype(np.float32), saturated


def _single_thread():
    """Run astroscrappy's OpenMP loops on one thread.

    On a small band its threads spend more time waiting for each other than
    working, and far more on a busy 2-core machine or next to a second batch
    worker (measured: 0.15 s on one thread against 0.4-1.3 s on two).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only slower without it
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="openmp")


def remove_cosmic_rays(data: np.ndarray, setup: InstrumentSetup, mask: np.ndarray | None = None, *, sigclip: float = 5.0, objlim: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Find and replace cosmic rays with astroscrappy (L.A.Cosmic); return (clean data, cosmic-ray mask).

    ``objlim`` keeps the sharp but resolved star trace and emission lines from
    being taken for cosmic rays.
    """
    import astroscrappy

    det = setup.detector
    with _single_thread():
        crmask, clean = astroscrappy.detect_cosmics(
            np.ascontiguousarray(data, dtype=np.float32),
            inmask=None if mask is None else np.ascontiguousarray(mask),
            sigclip=sigclip,
            objlim=objlim,
            gain=det.gain,
            readnoise=det.read_noise,
            satlevel=np.inf,
            niter=4,
            cleantype="medmask",
            sepmed=True,
            verbose=False,
        )
    return clean.astype(np.float32), crmask
