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


def trace_model(data: np.ndarray, mask: np.ndarray | None = None, *, smooth: int = 15) -> np.ndarray:
    """A cosmic-ray-free model of a band around a spectrum: spatial profile x robust column flux.

    The profile (each column's share of the band's light) is median-filtered
    along the dispersion, where a star's trace and sky change slowly and a hit
    covers a few pixels at most; each column's flux is the median of
    data / profile over the rows where the profile is bright, so that one hit
    (or a short track) does not raise it. Emission lines and the continuum are
    both in the model (a column's flux follows the spectrum), which is what
    astroscrappy's ``inbkg`` wants for spectra (van Dokkum 2001, sect. 4):
    without it a sharp, bright trace was taken for cosmic rays row after row.
    """
    d = np.where(mask, np.nan, data) if mask is not None else np.asarray(data, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    total = np.nansum(d, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = d / np.where(total > 0, total, np.nan)[None, :]
    share = np.where(np.isfinite(share), share, 0.0)
    # Medians of blocks of ``smooth`` columns, interpolated back to every column: the profile
    # changes slowly along the dispersion, and a running median cost ~15x more (0.2 s a band).
    ny, nx = share.shape
    nb = max(nx // smooth, 1)
    blocks = np.median(share[:, : nb * smooth].reshape(ny, nb, smooth), axis=2)
    centres = (np.arange(nb) + 0.5) * smooth - 0.5
    cols = np.arange(nx)
    prof = np.clip(np.stack([np.interp(cols, centres, row) for row in blocks]), 0.0, None)
    norm = prof.sum(0)
    prof = np.where(norm > 0, prof / np.where(norm > 0, norm, 1), 1.0 / prof.shape[0])
    bright = prof >= 0.3 * prof.max(0)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(bright & np.isfinite(d), d / prof, np.nan)
        flux = np.nanmedian(ratio, axis=0)
    flux = np.where(np.isfinite(flux), flux, np.where(np.isfinite(total), total, 0.0))
    return np.clip(prof * flux[None, :], 0.0, None).astype(np.float32)


def remove_cosmic_rays(data: np.ndarray, setup: InstrumentSetup, mask: np.ndarray | None = None, *, sigclip: float = 5.0, objlim: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Find and replace cosmic rays with astroscrappy (L.A.Cosmic); return (clean data, cosmic-ray mask).

    Hit pixels are replaced by the model of the trace (:func:`trace_model`).

    ``data`` is a band around a spectrum (rows across the dispersion). The
    spectrum itself (:func:`trace_model`) is given to astroscrappy as its
    background, so only what stands out of the trace and its lines is searched;
    ``objlim`` still guards what the model misses.
    """
    import astroscrappy

    det = setup.detector
    data = np.ascontiguousarray(data, dtype=np.float32)
    background = trace_model(data, mask)
    with _single_thread():
        crmask, clean = astroscrappy.detect_cosmics(
            data,
            inmask=None if mask is None else np.ascontiguousarray(mask),
            inbkg=background,
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
    # Hit pixels take the model's value (the trace's profile x the column's robust flux), closer
    # to the truth on a sharp trace than astroscrappy's median of neighbours.
    return np.where(crmask, background, clean).astype(np.float32), crmask
