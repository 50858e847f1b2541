"""Sky subtraction and extraction on a rectified band (rows = distance from the trace).

Vectorised over all columns at once:

- sky: a straight line in ``v`` fitted per column to both sky windows, with
  iterative 3-sigma rejection (stars in the sky windows, cosmic-ray leftovers)
  that starts from the windows' median and MAD, so that a track covering half
  a window cannot pull the first fit and hide in its scatter;
- boxcar: the sum over the aperture;
- optimal (Horne 1986): spatial profile from the smoothed sky-subtracted band,
  weights P/V, variance re-estimated from the model, 5-sigma outlier rejection;
  masked pixels (saturated, off the band) are left out of the sums without
  dropping the column.

Flux is in ADU per column; variances in ADU^2.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass
class Extracted:
    """A 1D extraction: flux, variance, sky and per-column flags."""

    flux: np.ndarray
    variance: np.ndarray
    sky: np.ndarray
    saturated: np.ndarray
    method: str
    rejected: int = 0
    profile: np.ndarray | None = None  # optimal: spatial profile over the aperture rows (|v| <= aperture)
    raw: np.ndarray | None = None  # the raw boxcar sum (no mask, no weights) for the quality checks

    @property
    def snr(self) -> float:
        """Median signal-to-noise ratio per column."""
        with np.errstate(divide="ignore", invalid="ignore"):
            s = self.flux / np.sqrt(self.variance)
        s = s[np.isfinite(s)]
        return float(np.median(s)) if len(s) else 0.0


def _rows(half_height: int, lo: int, hi: int) -> np.ndarray:
    v = np.arange(-half_height, half_height + 1)
    return (np.abs(v) >= lo) & (np.abs(v) < hi)


def fit_sky(band: np.ndarray, mask: np.ndarray, half_height: int, sky_offset: int, sky_width: int, iterations: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Fit sky = a + b v per column on both sky windows; return (sky model over the band, variance of the sky at v=0).

    ``mask`` is True for pixels to ignore.
    """
    v = np.arange(-half_height, half_height + 1, dtype=np.float64)
    sel = _rows(half_height, sky_offset, sky_offset + sky_width)
    d = band[sel].astype(np.float64)
    vv = np.broadcast_to(v[sel][:, None], d.shape)
    w = (~mask[sel] & np.isfinite(d)).astype(np.float64)
    d = np.where(w > 0, d, 0.0)
    # Robust start: pixels far from the column's median (MAD scale) are left out of the
    # first fit. A least-squares start let a cosmic-ray track over half a sky window
    # tilt the line and inflate sigma enough to survive every 3-sigma pass.
    dm = np.where(w > 0, d, np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-masked columns
        med = np.nanmedian(dm, axis=0)
        mad = 1.4826 * np.nanmedian(np.abs(dm - med[None, :]), axis=0)
        # A floor of the Poisson + read noise scale keeps a near-constant sky from rejecting everything.
        floor = np.sqrt(np.maximum(np.abs(med), 1.0))
        start = np.abs(dm - med[None, :]) < 4 * np.maximum(np.nan_to_num(mad), floor)[None, :]
    w = w * np.where(start.sum(0) >= 3, start, True)
    for _ in range(iterations + 1):
        s0 = w.sum(0)
        s1 = (w * vv).sum(0)
        s2 = (w * vv * vv).sum(0)
        t0 = (w * d).sum(0)
        t1 = (w * vv * d).sum(0)
        det = s0 * s2 - s1 * s1
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(det > 0, (s2 * t0 - s1 * t1) / det, t0 / np.maximum(s0, 1))
            b = np.where(det > 0, (s0 * t1 - s1 * t0) / det, 0.0)
        resid = d - (a[None, :] + b[None, :] * vv)
        n = np.maximum(w.sum(0), 1)
        sigma = np.sqrt((w * resid**2).sum(0) / np.maximum(n - 2, 1))
        new = w * (np.abs(resid) < 3 * sigma[None, :] + 1e-12)
        if np.array_equal(new, w):
            break
        w = new
    sky = a[None, :] + b[None, :] * v[:, None]
    n = np.maximum(w.sum(0), 1)
    sky_var = sigma**2 / n
    return sky.astype(np.float32), sky_var


def boxcar(data: np.ndarray, variance: np.ndarray, mask: np.ndarray, half_height: int, aperture: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum the aperture |v| <= aperture; masked pixels are replaced by the column's profile-scaled mean."""
    sel = slice(half_height - aperture, half_height + aperture + 1)
    d, var, m = data[sel], variance[sel], mask[sel]
    good = ~m & np.isfinite(d)
    n_tot = d.shape[0]
    n_good = np.maximum(good.sum(0), 1)
    # Scale by the number of pixels so that a masked pixel does not lower the flux.
    flux = np.where(good, d, 0).sum(0) * n_tot / n_good
    var = np.where(good, var, 0).sum(0) * (n_tot / n_good) ** 2
    return flux, var


def spatial_profile(data: np.ndarray, mask: np.ndarray, smooth: int = 61) -> np.ndarray:
    """Normalised spatial profile per column, smoothed along the dispersion (Horne's P)."""
    d = np.where(~mask & np.isfinite(data), data, 0.0)
    w = (~mask & np.isfinite(data)).astype(np.float64)
    num = ndimage.uniform_filter1d(d, smooth, axis=1, mode="nearest")
    den = ndimage.uniform_filter1d(w, smooth, axis=1, mode="nearest")
    with np.errstate(divide="ignore", invalid="ignore"):
        prof = np.where(den > 0, num / den, 0.0)
    prof = np.clip(prof, 0, None)
    tot = prof.sum(0)
    return np.where(tot > 0, prof / np.where(tot > 0, tot, 1), 1.0 / prof.shape[0])


def optimal(data: np.ndarray, variance: np.ndarray, mask: np.ndarray, half_height: int, aperture: int, read_var: float, gain: float, sky: np.ndarray, iterations: int = 2, reject: float = 5.0,
            profile_error: float = 0.1) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """Horne optimal extraction over |v| <= aperture; return (flux, variance, pixels rejected, spatial profile).

    ``data`` is sky-subtracted; ``sky`` is the sky model (to rebuild the
    variance from the model); ``read_var`` is the read noise variance in ADU^2.
    """
    sel = slice(half_height - aperture, half_height + aperture + 1)
    d = data[sel].astype(np.float64)
    m = mask[sel] | ~np.isfinite(d)
    s = sky[sel]
    d = np.where(m, 0.0, d)
    prof = spatial_profile(d, m)
    var = np.where(m, np.inf, variance[sel])
    rejected = 0
    good = ~m
    flux = np.zeros(d.shape[1])
    for it in range(iterations + 1):
        wgt = np.where(good, prof / var, 0.0)
        den = (wgt * prof).sum(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            flux = np.where(den > 0, (wgt * d).sum(0) / den, 0.0)
        model = flux[None, :] * prof
        # Variance from the model, not the data, so noise does not bias the weights.
        var = read_var + np.maximum(model + s, 0) / gain
        if it < iterations:
            # The smoothed profile matches a sharp (under-sampled) core only to a few per cent:
            # without the profile_error term the core of a bright, well-seeing trace was
            # rejected column after column, and the flux came from the wings (holes of -25 %).
            # Cosmic rays are masked before (astroscrappy and the pipeline's model test).
            test_var = var + (profile_error * model) ** 2
            bad = good & ((d - model) ** 2 > reject**2 * test_var)
            # Reject only the worst pixel per column per pass (Horne's recipe).
            z = np.where(bad, (d - model) ** 2 / test_var, 0.0)
            worst = np.argmax(z, axis=0)
            cols = np.nonzero(bad.any(0))[0]
            good[worst[cols], cols] = False
            rejected += len(cols)
    wgt = np.where(good, prof / var, 0.0)
    den = (wgt * prof).sum(0)
    norm = np.where(good, prof, 0.0).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        fvar = np.where(den > 0, norm / den, np.inf)
    return flux, fvar, rejected, prof


def extract(band: np.ndarray, variance: np.ndarray, mask: np.ndarray, half_height: int, *, aperture: int, sky_offset: int, sky_width: int, method: str, read_var: float, gain: float, saturated: np.ndarray | None = None, subtract_sky: bool = True) -> Extracted:
    """Sky-subtract a rectified band and extract it (``method`` 'optimal' or 'boxcar')."""
    if subtract_sky:
        sky, sky_var = fit_sky(band, mask, half_height, sky_offset, sky_width)
    else:
        sky, sky_var = np.zeros_like(band), np.zeros(band.shape[1])
    data = band - sky
    var = variance + sky_var[None, :]
    n_ap = 2 * aperture + 1
    if method == "optimal":
        flux, fvar, rejected, prof = optimal(data, var, mask, half_height, aperture, read_var, gain, sky)
    else:
        flux, fvar = boxcar(data, var, mask, half_height, aperture)
        rejected, prof = 0, None
    sat = np.asarray(saturated[half_height - aperture : half_height + aperture + 1].any(0)) if saturated is not None else np.zeros(band.shape[1], bool)
    return Extracted(flux=flux, variance=fvar, sky=sky[half_height] * n_ap, saturated=sat, method=method, rejected=rejected, profile=prof,
                     raw=raw_boxcar(band, sky, half_height, aperture))


def raw_boxcar(band: np.ndarray, sky: np.ndarray, half_height: int, aperture: int) -> np.ndarray:
    """The plainest extraction, for cross-checks: sky-subtracted sum over the aperture with no mask and no weights."""
    sel = slice(half_height - aperture, half_height + aperture + 1)
    return np.nansum(band[sel] - sky[sel], axis=0)


@dataclass
class SpectrumChecks:
    """Checks of an extracted spectrum (columns of the detector) that catch a broken extraction."""

    spikes: int               # one-column spikes (narrower than the line spread function allows)
    negative: int             # columns significantly below zero
    boxcar_mismatch: float    # fraction of columns whose flux differs from the raw boxcar sum by > 10 %
    masked_light: float       # fraction of the aperture's light that was interpolated (masked pixels)
    masked_columns: int       # columns with more than half their light masked (or none left)
    flags: list

    def to_dict(self) -> dict:
        return {"spikes": self.spikes, "negative_columns": self.negative, "boxcar_mismatch": round(self.boxcar_mismatch, 4),
                "masked_light": round(self.masked_light, 5), "masked_columns": self.masked_columns}

    @property
    def grade(self) -> str:
        """'good', 'fair' (something to look at) or 'poor' (do not trust the spectrum)."""
        if (self.spikes > 5 or self.negative > 5 or self.boxcar_mismatch > 0.02 or self.masked_light > 0.05
                or any(f.startswith("empty_columns") for f in self.flags)):
            return "poor"
        return "fair" if self.flags else "good"


def check_spectrum(flux: np.ndarray, variance: np.ndarray, boxcar_flux: np.ndarray, *, fwhm_px: float,
                   masked: np.ndarray | None = None, profile: np.ndarray | None = None, exclude: np.ndarray | None = None, edge: int = 10,
                   spike_sigma: float = 6.0, floor: float = 0.01) -> SpectrumChecks:
    """Statistics that flag a broken spectrum (a mis-set cosmic-ray search, masked stretches, a bad sky).

    - spikes: a column above (below) both its neighbours by ``spike_sigma``
      (noise, plus ``floor`` of the local level for profile errors) *and* by
      more than a line as narrow as the line spread function (``fwhm_px``)
      could (a Gaussian line's peak drops by 1 - exp(-1/(2 s^2)) of its height
      one column away; a spike drops by ~100 %);
    - negative: columns more than 5 sigma below zero;
    - boxcar_mismatch: the extraction against the raw boxcar sum (no mask):
      the two agree within noise except where a cosmic ray hit, which a
      running median of 9 columns removes from both;
    - masked light: the share of the spatial profile (``profile``, over the
      aperture rows) lying on masked pixels (``masked``, same rows: True or
      the fraction of the exposures interpolated there).

    Columns in ``exclude`` (and next to them) are left out of every check.
    """
    f = np.asarray(flux, dtype=np.float64)
    var = np.asarray(variance, dtype=np.float64)
    box = np.asarray(boxcar_flux, dtype=np.float64)
    n = len(f)
    inner = np.zeros(n, bool)
    inner[edge : n - edge] = True
    if exclude is not None:  # e.g. saturated columns, flagged on their own
        inner &= ~ndimage.binary_dilation(np.asarray(exclude, bool), iterations=3)
    ok = inner & np.isfinite(f) & np.isfinite(var)
    fz = np.where(np.isfinite(f), f, 0.0)
    local = ndimage.median_filter(fz, size=max(9, 2 * int(3 * fwhm_px) + 1), mode="nearest")
    level = np.abs(local)
    sig = np.sqrt(np.where(np.isfinite(var), var, np.inf) + (floor * level) ** 2)
    flags: list[str] = []

    # Spikes: a local extremum whose smaller step to a neighbour is both significant and
    # larger than a line as narrow as the line spread function allows.
    left = np.full(n, np.nan)
    right = np.full(n, np.nan)
    left[1:] = fz[1:] - fz[:-1]
    right[:-1] = fz[:-1] - fz[1:]
    step = np.where(np.sign(left) == np.sign(right), np.sign(left) * np.minimum(np.abs(left), np.abs(right)), 0.0)
    step = np.nan_to_num(step)
    s2 = np.full(n, np.inf)
    s2[1:-1] = np.sqrt(sig[1:-1] ** 2 + np.maximum(sig[:-2], sig[2:]) ** 2)
    height = fz - local
    s_lsf = max(fwhm_px, 0.5) / 2.3548
    line_drop = 1.0 - np.exp(-0.5 / s_lsf**2)  # the most a resolved line's peak drops one column away
    sharp = (np.abs(step) > (0.5 * (1.0 + line_drop)) * np.abs(height)) & (np.sign(step) == np.sign(height))
    spikes = int(np.sum(ok & (np.abs(step) > spike_sigma * s2) & sharp)) if line_drop < 0.95 else 0
    if spikes:
        flags.append(f"spikes:{spikes}")

    # Negative flux.
    negative = int(np.sum(ok & (f < -5 * np.sqrt(np.where(np.isfinite(var), var, np.inf)))))
    if negative:
        flags.append(f"negative_flux:{negative}")

    # Against the raw boxcar sum.
    bz = np.where(np.isfinite(box), box, 0.0)
    fm = ndimage.median_filter(fz, size=9, mode="nearest")
    bm = ndimage.median_filter(bz, size=9, mode="nearest")
    scale = np.abs(bm)
    bsig = ndimage.median_filter(np.where(np.isfinite(var), np.sqrt(var), 0.0), size=9, mode="nearest")
    off = ok & (np.abs(fm - bm) > np.maximum(0.1 * scale, 5 * bsig))
    mismatch = float(off.sum() / max(ok.sum(), 1))
    if mismatch > 0.002:
        flags.append(f"boxcar_mismatch:{mismatch:.3f}")

    # Masked light.
    # Columns with no usable flux at all (every aperture pixel masked: the optimal extraction gives 0).
    dead = inner & ~(np.isfinite(f) & np.isfinite(var) & (var > 0))
    masked_light, masked_columns = 0.0, int(dead.sum())
    if masked is not None and profile is not None:
        p = np.clip(np.asarray(profile, dtype=np.float64), 0, None)
        tot = p.sum(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(tot > 0, (p * masked).sum(0) / tot, 0.0)
        masked_light = float(np.mean(share[inner]))
        masked_columns = int(np.sum(inner & ((share > 0.5) | dead)))
        if masked_light > 0.01:
            flags.append(f"masked_light:{masked_light:.3f}")
    # One hit on a sharp core masks half a column, which the optimal extraction fills from the
    # profile (unbiased, noisier): counted, not flagged. A column with nothing left is a hole.
    if dead.any():
        flags.append(f"empty_columns:{int(dead.sum())}")
    return SpectrumChecks(spikes=spikes, negative=negative, boxcar_mismatch=mismatch, masked_light=masked_light,
                          masked_columns=masked_columns, flags=flags)
