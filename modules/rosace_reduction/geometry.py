"""Geometry of a long-slit frame: the star's trace, the tilt and smile of the
arc lines, and the rectification of a band of rows onto (wavelength column,
distance from the trace) coordinates.

Rectified coordinates: row ``v`` is the distance from the trace along the slit
(v = 0 on the trace), column ``u`` is the column where the same wavelength
crosses the trace. A pixel (u, v) comes from the raw position
``x = u + tilt * v + smile * v**2``, ``y = trace(u) + v`` (bilinear
interpolation, which conserves the summed flux of a column).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import polynomial as P
from scipy import ndimage

from rosace_core.errors import RosaceError


class GeometryError(RosaceError):
    """The trace or the line geometry cannot be measured."""


@dataclass
class Trace:
    """The star's trace: row as a polynomial of column (numpy.polynomial coefficients, low order first)."""

    coeffs: np.ndarray
    nx: int
    fwhm: float
    rms: float

    def rows(self, x: np.ndarray | None = None) -> np.ndarray:
        """Trace row at columns ``x`` (all columns by default)."""
        x = np.arange(self.nx) if x is None else x
        return P.polyval(x, self.coeffs)

    def to_dict(self) -> dict:
        return {"coeffs": [float(c) for c in self.coeffs], "fwhm_px": self.fwhm, "rms_px": self.rms}


@dataclass
class LineGeometry:
    """Arc-line geometry: column shift = tilt * v + smile * v**2 at v rows from the trace."""

    tilt: float = 0.0
    smile: float = 0.0
    measured: bool = False
    lines_used: int = 0

    @property
    def tilt_deg(self) -> float:
        return float(np.degrees(np.arctan(self.tilt)))

    def to_dict(self) -> dict:
        return {"tilt_deg": self.tilt_deg, "smile_px_per_row2": self.smile, "measured": self.measured, "lines": self.lines_used}


def find_trace(image: np.ndarray, order: int = 2, bin_width: int = 50, guess_row: float | None = None, search: int | None = None) -> Trace:
    """Measure the star's trace on a (roughly bias-subtracted) 2D frame.

    Columns are summed in bins of ``bin_width``; in each bin the brightest
    spatial peak (near ``guess_row`` when given) is located with a 3-point
    parabola on the log profile (exact for a Gaussian), and a polynomial of
    ``order`` is fitted with 3-sigma rejection. Raises GeometryError when no
    star is found.
    """
    ny, nx = image.shape
    nb = nx // bin_width
    if nb < order + 2:
        raise GeometryError("frame too narrow to trace")
    binned = image[:, : nb * bin_width].reshape(ny, nb, bin_width).sum(axis=2)
    # Remove a smooth sky/background along the slit in each bin.
    back = np.median(binned, axis=0)
    prof = binned - back[None, :]
    if guess_row is not None and search:
        lo, hi = max(int(guess_row - search), 1), min(int(guess_row + search), ny - 2)
    else:
        lo, hi = 1, ny - 2
    collapsed = prof[lo:hi].sum(axis=1)
    smooth = ndimage.uniform_filter1d(collapsed, 3)
    centre = lo + int(np.argmax(smooth))
    window = 25
    a, b = max(centre - window, 1), min(centre + window, ny - 2)
    sub = prof[a:b]
    peak = np.argmax(ndimage.uniform_filter1d(sub, 3, axis=0), axis=0)
    peak = np.clip(peak, 1, sub.shape[0] - 2)
    cols = np.arange(nb)
    ym, y0, yp = sub[peak - 1, cols], sub[peak, cols], sub[peak + 1, cols]
    noise = 1.4826 * np.median(np.abs(np.diff(prof[:, :], axis=0)), axis=0) / np.sqrt(2)
    good = (y0 > 5 * noise) & (ym > 0) & (yp > 0)
    if good.sum() < order + 2:
        raise GeometryError("no star trace found (too faint or off the slit)")
    with np.errstate(divide="ignore", invalid="ignore"):
        lm, l0, lp = np.log(np.maximum(ym, 1e-9)), np.log(np.maximum(y0, 1e-9)), np.log(np.maximum(yp, 1e-9))
        denom = lm - 2 * l0 + lp
        offset = np.where(denom < 0, 0.5 * (lm - lp) / denom, 0.0)
        sigma2 = np.where(denom < 0, -1.0 / denom, np.nan)
    offset = np.clip(offset, -1, 1)
    yc = a + peak + offset
    xc = cols * bin_width + (bin_width - 1) / 2
    mask = good.copy()
    coeffs = P.polyfit(xc[mask], yc[mask], order)
    for _ in range(3):
        resid = yc - P.polyval(xc, coeffs)
        rms = 1.4826 * np.median(np.abs(resid[mask])) + 1e-3
        new = good & (np.abs(resid) < 4 * rms + 0.05)
        if new.sum() < order + 2 or (new == mask).all():
            break
        mask = new
        coeffs = P.polyfit(xc[mask], yc[mask], order)
    resid = yc[mask] - P.polyval(xc[mask], coeffs)
    fwhm = float(2.3548 * np.sqrt(np.nanmedian(sigma2[mask])))
    return Trace(coeffs=coeffs, nx=nx, fwhm=fwhm, rms=float(np.sqrt(np.mean(resid**2))))


def measure_line_geometry(arc_band: np.ndarray, row0: int, trace: Trace, line_columns: np.ndarray, half_height: int, bin_rows: int = 8, half_window: int = 6) -> LineGeometry:
    """Measure tilt and smile of arc lines on a band of a bias-subtracted arc frame.

    ``arc_band`` holds raw rows ``row0 ...``; ``line_columns`` are columns of
    strong isolated lines on the trace. Each line's centroid is measured in
    bins of ``bin_rows`` rows from ``-half_height`` to ``+half_height`` about
    the trace and ``x = x0 + tilt*v + smile*v^2`` is fitted to all lines
    together (one x0 per line).
    """
    ny, nx = arc_band.shape
    if len(line_columns) < 2:
        return LineGeometry()
    vs = np.arange(-half_height, half_height + 1 - bin_rows, bin_rows) + bin_rows / 2
    xs_list, v_list, id_list = [], [], []
    for k, xc in enumerate(line_columns):
        yt = trace.rows(np.array([xc]))[0] - row0
        for v in vs:
            r0 = int(round(yt + v - bin_rows / 2))
            r1 = r0 + bin_rows
            if r0 < 0 or r1 > ny:
                continue
            c = int(round(xc))
            if c - half_window - 3 < 0 or c + half_window + 3 >= nx:
                continue
            prof = arc_band[r0:r1, c - half_window - 3 : c + half_window + 4].sum(axis=0)
            base = np.median(np.r_[prof[:3], prof[-3:]])
            p = prof[3:-3] - base
            # Re-centre on the local peak before the centroid.
            j = int(np.argmax(p))
            lo, hi = max(j - 3, 0), min(j + 4, len(p))
            w = np.clip(p[lo:hi], 0, None)
            if w.sum() <= 0:
                continue
            xs_list.append(c - half_window + lo + (w * np.arange(hi - lo)).sum() / w.sum())
            v_list.append(v + (r0 + bin_rows / 2 - (yt + v)))
            id_list.append(k)
    if len(xs_list) < 6:
        return LineGeometry()
    xs, v, ids = np.array(xs_list), np.array(v_list), np.array(id_list)
    nl = len(line_columns)
    # Design matrix: one intercept per line + common tilt and smile.
    A = np.zeros((len(xs), nl + 2))
    A[np.arange(len(xs)), ids] = 1.0
    A[:, nl] = v
    A[:, nl + 1] = v * v
    keep = np.ones(len(xs), bool)
    for _ in range(3):
        sol, *_ = np.linalg.lstsq(A[keep], xs[keep], rcond=None)
        resid = xs - A @ sol
        s = 1.4826 * np.median(np.abs(resid[keep])) + 1e-3
        new = np.abs(resid) < 4 * s
        if (new == keep).all():
            break
        keep = new
    return LineGeometry(tilt=float(sol[nl]), smile=float(sol[nl + 1]), measured=True, lines_used=int(len(set(ids[keep]))))


def rectify(band: np.ndarray, row0: int, trace: Trace, geometry: LineGeometry, half_height: int, order: int = 1, cval: float = np.nan) -> np.ndarray:
    """Resample a band of rows (raw rows ``row0 ...``) to rectified (v, u) coordinates.

    Returns an array of shape (2*half_height+1, nx); row ``half_height`` is the trace.
    Pixels that fall outside the band are ``cval``.
    """
    ny, nx = band.shape
    u = np.arange(nx, dtype=np.float64)
    v = np.arange(-half_height, half_height + 1, dtype=np.float64)
    x = u[None, :] + geometry.tilt * v[:, None] + geometry.smile * (v * v)[:, None]
    y = (trace.rows(u) - row0)[None, :] + v[:, None]
    return ndimage.map_coordinates(band, [y, x], order=order, mode="constant", cval=cval, prefilter=False).astype(np.float32)


def unrectify(rect: np.ndarray, row0: int, nrows: int, trace: Trace, geometry: LineGeometry, half_height: int) -> np.ndarray:
    """Map a rectified (v, u) image (rows -half_height..half_height) back onto raw rows ``row0 ... row0+nrows``.

    The inverse of :func:`rectify` to first order in the tilt (bilinear);
    raw pixels farther than ``half_height`` rows from the trace are NaN.
    """
    nx = rect.shape[1]
    x = np.arange(nx, dtype=np.float64)[None, :]
    y = np.arange(row0, row0 + nrows, dtype=np.float64)[:, None]
    v = y - trace.rows(np.arange(nx))[None, :]
    u = x - geometry.tilt * v - geometry.smile * v * v
    v = y - P.polyval(u, trace.coeffs)
    return ndimage.map_coordinates(rect, [v + half_height, u], order=1, mode="constant", cval=np.nan, prefilter=False)


def band_rows(trace: Trace, half_height: int, ny: int, margin: int = 4) -> slice:
    """Raw rows covering the trace +- ``half_height`` over the whole frame width."""
    t = trace.rows()
    lo = int(np.floor(t.min())) - half_height - margin
    hi = int(np.ceil(t.max())) + half_height + margin + 1
    if lo < 0 or hi > ny:
        raise GeometryError(f"the trace (rows {t.min():.0f}-{t.max():.0f}) is too close to the frame edge for the sky windows")
    return slice(lo, hi)
