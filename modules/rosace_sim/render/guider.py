"""The slit-jaw view of the guide camera: stars on the reflective slit jaws,
the slit itself a dark line (light falling into it goes to the spectrograph
and is lost from this image).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MOFFAT_BETA = 4.765


def slit_mask(shape: tuple[int, int], slit: tuple[float, float, float, float], angle_deg: float = 0.0, oversample: int = 4) -> np.ndarray:
    """Fraction of each pixel that the slit jaws reflect (0 inside the slit, 1 on the jaws).

    ``slit`` is (x, y, width_px, length_px): the slit centre (column, row) and its size;
    the slit's long side runs along the rows (``angle_deg`` rotates it counter-clockwise).
    """
    rows, cols = shape
    x0, y0, width, length = (float(v) for v in slit)
    sub = (np.arange(oversample) + 0.5) / oversample - 0.5
    # Only the pixels near the slit need sub-pixel work.
    reach = 0.5 * math.hypot(width, length) + 2
    r_lo, r_hi = max(int(y0 - reach), 0), min(int(math.ceil(y0 + reach)) + 1, rows)
    c_lo, c_hi = max(int(x0 - reach), 0), min(int(math.ceil(x0 + reach)) + 1, cols)
    mask = np.ones(shape, dtype=np.float32)
    if r_hi <= r_lo or c_hi <= c_lo:
        return mask
    yy = (np.arange(r_lo, r_hi)[:, None] + sub[None, :]).reshape(-1)
    xx = (np.arange(c_lo, c_hi)[:, None] + sub[None, :]).reshape(-1)
    a = math.radians(angle_deg)
    dx, dy = xx[None, :] - x0, yy[:, None] - y0
    across = dx * math.cos(a) - dy * math.sin(a)
    along = dx * math.sin(a) + dy * math.cos(a)
    inside = (np.abs(across) <= width / 2) & (np.abs(along) <= length / 2)
    frac = inside.reshape(r_hi - r_lo, oversample, c_hi - c_lo, oversample).mean(axis=(1, 3))
    mask[r_lo:r_hi, c_lo:c_hi] = 1 - frac
    return mask


def render_guide_image(
    shape: tuple[int, int] = (480, 640),
    stars: Sequence[tuple[float, float, float]] = (),
    *,
    exposure: float = 1.0,
    seeing_px: float = 3.0,
    slit: tuple[float, float, float, float] | None = None,
    rng: np.random.Generator | None = None,
    slit_angle_deg: float = 0.0,
    sky_e_per_s: float = 20.0,
    read_noise: float = 5.0,
    gain: float = 1.0,
    bias_level: float = 500.0,
    dark_e_per_s: float = 0.1,
    saturation: float = 65535.0,
    return_slit_flux: bool = False,
):
    """Render the guide camera's slit-jaw image.

    ``stars``: (x column, y row, flux e-/s) of each star; ``seeing_px`` the
    FWHM (pixels) of a Moffat profile; ``slit`` (x, y, width_px, length_px)
    or None for no slit. Returns a uint16 image of ``shape`` (rows, columns);
    with ``return_slit_flux`` also the e-/s of star light that fell into the
    slit (what the spectrograph receives), per star.
    """
    rng = rng if rng is not None else np.random.default_rng()
    rows, cols = (int(v) for v in shape)
    if rows < 1 or cols < 1 or exposure < 0 or seeing_px <= 0:
        raise ValueError("need a positive shape, exposure >= 0 and seeing_px > 0")
    e = np.full((rows, cols), np.float32(sky_e_per_s * exposure))
    mask = slit_mask((rows, cols), slit, slit_angle_deg) if slit is not None else None
    slit_flux = []
    for x, y, flux in stars:  # a loop over stars, each drawn on its own small window
        win = _star_window((rows, cols), x, y, flux, seeing_px)
        if win is None:
            slit_flux.append(0.0)
            continue
        rs, cs, psf_e = win
        if mask is not None:
            slit_flux.append(float(np.sum(psf_e * (1 - mask[rs, cs]))))
        e[rs, cs] += psf_e * np.float32(exposure)
    if mask is not None:
        e *= mask
    e += np.float32(dark_e_per_s * exposure)
    img = _read(e, rng, read_noise, gain, bias_level, saturation)
    return (img, slit_flux) if return_slit_flux else img


def _star_window(shape, x, y, flux, seeing_px):
    """(row slice, column slice, e-/s per pixel) of one Moffat star, or None if it misses the frame."""
    rows, cols = shape
    alpha = seeing_px / (2 * math.sqrt(2 ** (1 / MOFFAT_BETA) - 1))
    norm = (MOFFAT_BETA - 1) / (math.pi * alpha * alpha)
    half = int(math.ceil(8 * seeing_px)) + 2
    r_lo, r_hi = max(int(y) - half, 0), min(int(y) + half + 1, rows)
    c_lo, c_hi = max(int(x) - half, 0), min(int(x) + half + 1, cols)
    if r_hi <= r_lo or c_hi <= c_lo or flux <= 0:
        return None
    yy = np.arange(r_lo, r_hi, dtype=np.float32)[:, None] - np.float32(y)
    xx = np.arange(c_lo, c_hi, dtype=np.float32)[None, :] - np.float32(x)
    psf = np.float32(norm) * (1 + (xx * xx + yy * yy) / np.float32(alpha * alpha)) ** np.float32(-MOFFAT_BETA)
    return slice(r_lo, r_hi), slice(c_lo, c_hi), psf * np.float32(flux)


def _read(e: np.ndarray, rng, read_noise, gain, bias_level, saturation) -> np.ndarray:
    sigma = np.sqrt(np.maximum(e, 0) + np.float32(read_noise**2))
    img = e + sigma * rng.standard_normal(e.shape, dtype=np.float32)
    img /= np.float32(gain)
    img += np.float32(bias_level)
    np.clip(img, 0, min(saturation, 65535), out=img)
    return np.rint(img).astype(np.uint16)
