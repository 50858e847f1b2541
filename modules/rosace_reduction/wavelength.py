"""Wavelength calibration from an arc spectrum: find the lines, identify them
automatically against the air-wavelength line lists in ``resources/linelists``
starting from the set-up's nominal solution, fit a polynomial with outlier
rejection, and measure the resolving power from the line widths.

Identification: the catalogue is turned into a synthetic arc with the nominal
solution and cross-correlated with the observed arc over a grid of dispersion
scales (FFT correlation gives every shift at once); the best (scale, shift)
places the catalogue within a few pixels of the observed lines, which are then
matched one-to-one, fitted, and re-matched with tighter tolerances.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

import numpy as np
from numpy.polynomial import polynomial as P
from scipy import ndimage, optimize, signal

from rosace_core.errors import RosaceError
from rosace_core.resources import resource_path


class WavelengthError(RosaceError):
    """The arc could not be identified or fitted."""


@dataclass
class LineList:
    """Catalogue lines: air wavelengths (A), element names, relative intensities."""

    wavelength: np.ndarray
    element: list[str]
    intensity: np.ndarray

    def within(self, lo: float, hi: float) -> "LineList":
        sel = (self.wavelength >= lo) & (self.wavelength <= hi)
        return LineList(self.wavelength[sel], [e for e, s in zip(self.element, sel) if s], self.intensity[sel])


def load_line_lists(names: list[str]) -> LineList:
    """Load and merge ``resources/linelists/<name>.csv`` files (columns wavelength, element, intensity)."""
    wl, el, it = [], [], []
    for name in names:
        path = resource_path("linelists", f"{name.lower()}.csv")
        if not path.exists():
            raise WavelengthError(f"no line list {path}")
        with path.open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                wl.append(float(row["wavelength"]))
                el.append(row.get("element", name))
                it.append(float(row.get("intensity") or 100))
    order = np.argsort(wl)
    return LineList(np.array(wl)[order], [el[i] for i in order], np.array(it)[order])


@dataclass
class ArcLine:
    """A line measured on the arc spectrum."""

    x: float
    amplitude: float
    sigma: float
    x_err: float


@dataclass
class WavelengthSolution:
    """Pixel -> air wavelength (A) polynomial, with its quality figures."""

    coeffs: np.ndarray
    x0: float
    rms_angstrom: float
    rms_px: float
    n_lines: int
    resolving_power: float
    fwhm_px: float
    lines: list[dict] = field(default_factory=list)
    saturated_lines: int = 0  # arc lines found reaching saturated pixels (left out of the fit unless saturated_used)
    saturated_used: bool = False  # too few other lines: the saturated ones were fitted anyway

    def __call__(self, x) -> np.ndarray:
        return P.polyval(np.asarray(x, dtype=float) - self.x0, self.coeffs)

    def dispersion(self, x) -> np.ndarray:
        """Local dispersion dlambda/dx (A/px)."""
        return P.polyval(np.asarray(x, dtype=float) - self.x0, P.polyder(self.coeffs))

    def to_dict(self) -> dict:
        return {
            "coeffs": [float(c) for c in self.coeffs],
            "x0": self.x0,
            "rms_angstrom": self.rms_angstrom,
            "rms_px": self.rms_px,
            "n_lines": self.n_lines,
            "resolving_power": self.resolving_power,
            "fwhm_px": self.fwhm_px,
            "lines": self.lines,
            "saturated_lines": self.saturated_lines,
            "saturated_used": self.saturated_used,
        }


def _continuum(arc: np.ndarray, width: int) -> np.ndarray:
    """Lower envelope of the arc (running minimum, smoothed)."""
    low = ndimage.minimum_filter1d(arc, width, mode="nearest")
    return ndimage.uniform_filter1d(low, width, mode="nearest")


def _gauss(x, a, mu, sig, c0, c1):
    return a * np.exp(-0.5 * ((x - mu) / sig) ** 2) + c0 + c1 * (x - mu)


def _fit_gaussians(x: np.ndarray, y: np.ndarray, w: np.ndarray, p0: np.ndarray, lo: np.ndarray, hi: np.ndarray, iterations: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit ``_gauss`` to many windows at once (bounded Levenberg-Marquardt, vectorised over lines).

    ``x``, ``y``, ``w`` are (lines, samples) arrays (``w`` = 1/sigma, 0 for
    samples outside the spectrum); ``p0``, ``lo``, ``hi`` are (lines, 5).
    Returns (parameters, covariance scaled by the reduced chi^2 as curve_fit
    does, converged flags). One call replaces a curve_fit per line, which
    dominated the arc identification.
    """
    p = np.clip(p0.astype(np.float64), lo, hi)
    lam = np.full(len(p), 1e-3)

    def model_and_jac(p):
        a, mu, sig, c0, c1 = (p[:, k : k + 1] for k in range(5))
        dx = x - mu
        z = dx / sig
        g = np.exp(-0.5 * z * z)
        f = a * g + c0 + c1 * dx
        jac = np.stack([g, a * g * z / sig - c1, a * g * z * z / sig, np.ones_like(g), dx], axis=-1)
        return f, jac

    f, jac = model_and_jac(p)
    r = (y - f) * w
    chi2 = (r * r).sum(1)
    converged = np.zeros(len(p), bool)
    eye = np.eye(5)
    for _ in range(iterations):
        jw = jac * w[..., None]
        a_mat = np.einsum("lsi,lsj->lij", jw, jw)
        g_vec = np.einsum("lsi,ls->li", jw, r)
        diag = np.einsum("lii->li", a_mat)
        damped = a_mat + lam[:, None, None] * diag[:, :, None] * eye + 1e-12 * eye
        try:
            step = np.linalg.solve(damped, g_vec[..., None])[..., 0]
        except np.linalg.LinAlgError:
            break
        trial = np.clip(p + step, lo, hi)
        f_t, jac_t = model_and_jac(trial)
        r_t = (y - f_t) * w
        chi2_t = (r_t * r_t).sum(1)
        better = chi2_t < chi2
        small = np.abs(chi2 - chi2_t) <= 1e-8 * np.maximum(chi2, 1e-30)
        p = np.where(better[:, None], trial, p)
        f = np.where(better[:, None], f_t, f)
        jac = np.where(better[:, None, None], jac_t, jac)
        r = np.where(better[:, None], r_t, r)
        converged |= (better | ~better) & small
        chi2 = np.where(better, chi2_t, chi2)
        lam = np.where(better, lam * 0.3, lam * 10.0)
        if converged.all():
            break
    jw = jac * w[..., None]
    a_mat = np.einsum("lsi,lsj->lij", jw, jw)
    dof = np.maximum((w > 0).sum(1) - 5, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = np.linalg.pinv(a_mat) * (chi2 / dof)[:, None, None]
    return p, cov, converged


def find_arc_lines(arc: np.ndarray, fwhm: float, threshold: float = 8.0, variance: np.ndarray | None = None, *, fit: bool = True) -> list[ArcLine]:
    """Find emission lines in an arc spectrum and measure their centres with Gaussian fits.

    ``fwhm`` is the expected line width in pixels; lines whose peak stands
    ``threshold`` noise sigmas above the continuum are kept. All lines are
    fitted together (:func:`_fit_gaussians`); :func:`find_arc_lines_curve_fit`
    is the one-curve_fit-per-line reference it is tested against. With
    ``fit=False`` only the peaks are returned (integer positions), which is
    all the line-geometry measurement needs.
    """
    arc = np.nan_to_num(np.asarray(arc, dtype=np.float64))
    peaks, s, cont, noise = _arc_peaks(arc, fwhm, threshold, variance)
    sig0 = fwhm / 2.3548
    if not fit:
        return [ArcLine(float(p), float(s[p]), sig0, 0.5) for p in peaks]
    half = max(int(np.ceil(1.5 * fwhm)), 3)
    n = len(arc)
    # Windows cut at the spectrum's ends by zero weights; drop those with fewer than 5 samples.
    peaks = peaks[(np.minimum(peaks + half + 1, n) - np.maximum(peaks - half, 0)) >= 5]
    if len(peaks) == 0:
        return []
    idx = peaks[:, None] + np.arange(-half, half + 1)[None, :]
    inside = (idx >= 0) & (idx < n)
    idx_c = np.clip(idx, 0, n - 1)
    xs = idx.astype(np.float64)
    ys = arc[idx_c]
    if variance is None:
        sig_y = np.sqrt(np.maximum(ys, 0) + noise**2)
    else:
        sig_y = np.sqrt(np.maximum(np.asarray(variance, np.float64)[idx_c], 1e-12))
    w = np.where(inside, 1.0 / sig_y, 0.0)
    pf = peaks.astype(np.float64)
    p0 = np.stack([s[peaks], pf, np.full_like(pf, sig0), cont[peaks], np.zeros_like(pf)], axis=1)
    lo = np.stack([np.zeros_like(pf), pf - 2, np.full_like(pf, 0.3 * sig0), np.full_like(pf, -np.inf), np.full_like(pf, -np.inf)], axis=1)
    hi = np.stack([np.full_like(pf, np.inf), pf + 2, np.full_like(pf, 3 * sig0), np.full_like(pf, np.inf), np.full_like(pf, np.inf)], axis=1)
    popt, cov, _ = _fit_gaussians(xs, ys, w, p0, lo, hi)
    var_mu = cov[:, 1, 1]
    err = np.where(np.isfinite(var_mu) & (var_mu >= 0), np.sqrt(np.abs(var_mu)), 1.0)
    good = np.isfinite(popt).all(1)
    return [ArcLine(float(pp[1]), float(pp[0]), float(pp[2]), float(e)) for pp, e, g in zip(popt, err, good) if g]


def _arc_peaks(arc: np.ndarray, fwhm: float, threshold: float, variance: np.ndarray | None):
    """Peaks of the continuum-subtracted arc: (peak indices, arc - continuum, continuum, noise)."""
    width = max(int(6 * fwhm), 15)
    cont = _continuum(arc, width)
    s = arc - cont
    noise = 1.4826 * np.median(np.abs(np.diff(s))) / np.sqrt(2) + 1e-12
    if variance is not None:
        noise = np.sqrt(np.maximum(np.nanmedian(variance), noise**2))
    peaks, _ = signal.find_peaks(s, height=threshold * noise, distance=max(int(fwhm / 2), 2), prominence=threshold * noise)
    return peaks, s, cont, noise


def find_arc_lines_curve_fit(arc: np.ndarray, fwhm: float, threshold: float = 8.0, variance: np.ndarray | None = None) -> list[ArcLine]:
    """Reference implementation of :func:`find_arc_lines`: one ``scipy.optimize.curve_fit`` per line (slow)."""
    arc = np.nan_to_num(np.asarray(arc, dtype=np.float64))
    peaks, s, cont, noise = _arc_peaks(arc, fwhm, threshold, variance)
    half = max(int(np.ceil(1.5 * fwhm)), 3)
    sig0 = fwhm / 2.3548
    lines: list[ArcLine] = []
    x_all = np.arange(len(arc), dtype=float)
    for p in peaks:
        lo, hi = max(p - half, 0), min(p + half + 1, len(arc))
        if hi - lo < 5:
            continue
        xs, ys = x_all[lo:hi], arc[lo:hi]
        ws = np.sqrt(np.maximum(ys, 0) + noise**2) if variance is None else np.sqrt(np.maximum(variance[lo:hi], 1e-12))
        try:
            popt, pcov = optimize.curve_fit(
                _gauss, xs, ys, p0=(s[p], float(p), sig0, cont[p], 0.0), sigma=ws,
                bounds=([0, p - 2, 0.3 * sig0, -np.inf, -np.inf], [np.inf, p + 2, 3 * sig0, np.inf, np.inf]), maxfev=400,
            )
        except (RuntimeError, ValueError):
            continue
        err = float(np.sqrt(max(pcov[1, 1], 0))) if np.all(np.isfinite(pcov)) else 1.0
        lines.append(ArcLine(float(popt[1]), float(popt[0]), float(popt[2]), err))
    return lines


def _predict(setup_wl: np.ndarray, catalogue: np.ndarray) -> np.ndarray:
    """Pixel positions of catalogue wavelengths on a monotonic wavelength-per-pixel array."""
    x = np.arange(len(setup_wl), dtype=float)
    if setup_wl[-1] < setup_wl[0]:
        return np.interp(catalogue, setup_wl[::-1], x[::-1], left=np.nan, right=np.nan)
    return np.interp(catalogue, setup_wl, x, left=np.nan, right=np.nan)


def _isolated(wl: np.ndarray, inten: np.ndarray, min_sep: float) -> np.ndarray:
    """True for catalogue lines with no comparable neighbour (> 10 % of their intensity) closer than ``min_sep`` A."""
    d = np.abs(wl[:, None] - wl[None, :])
    comparable = inten[None, :] > 0.1 * inten[:, None]
    np.fill_diagonal(d, np.inf)
    return ~((d < min_sep) & comparable).any(1)


def _mutual_match(obs_x: np.ndarray, pred_x: np.ndarray, tol: float) -> list[tuple[int, int]]:
    """One-to-one nearest neighbours within ``tol`` pixels."""
    if len(obs_x) == 0 or len(pred_x) == 0:
        return []
    d = np.abs(obs_x[:, None] - pred_x[None, :])
    d = np.where(np.isfinite(d), d, np.inf)
    best_pred = d.argmin(1)
    best_obs = d.argmin(0)
    return [(i, j) for i, j in enumerate(best_pred) if best_obs[j] == i and d[i, j] <= tol]


def identify(
    arc: np.ndarray,
    nominal: np.ndarray,
    lines: LineList,
    *,
    fwhm: float,
    order: int = 3,
    search_shift: float = 200.0,
    search_scale: float = 0.04,
    variance: np.ndarray | None = None,
    min_lines: int | None = None,
    saturated: np.ndarray | None = None,
) -> WavelengthSolution:
    """Identify the arc lines and fit the wavelength solution.

    ``nominal`` is the set-up's nominal wavelength of every pixel (A, air);
    ``fwhm`` the expected line FWHM in pixels. Raises WavelengthError when too
    few lines are identified for the requested ``order``. ``saturated`` (bool
    per column) leaves out the lines that reach a saturated column (their flat
    tops bias the centre), unless fewer than 3 lines would be left.
    """
    arc = np.nan_to_num(np.asarray(arc, dtype=np.float64))
    n = len(arc)
    found = find_arc_lines(arc, fwhm, variance=variance)
    n_saturated, saturated_used = 0, False
    if saturated is not None and np.any(saturated):
        cols = np.nonzero(np.asarray(saturated, bool))[0]
        clean = [l for l in found if np.min(np.abs(cols - l.x)) > fwhm]
        n_saturated = len(found) - len(clean)
        if len(clean) >= 3:
            found = clean
        else:
            saturated_used = True
    if len(found) < 3:
        raise WavelengthError(f"only {len(found)} arc lines found; is the lamp on and the exposure long enough?")
    obs_x = np.array([l.x for l in found])
    obs_a = np.array([l.amplitude for l in found])
    disp = float(np.median(np.abs(np.diff(nominal))))
    margin = (search_shift + search_scale * n) * disp
    cat = lines.within(min(nominal[0], nominal[-1]) - margin, max(nominal[0], nominal[-1]) + margin)
    if len(cat.wavelength) < 3:
        raise WavelengthError("the line lists have fewer than 3 lines in the nominal range of the set-up")
    iso = _isolated(cat.wavelength, cat.intensity, 1.5 * fwhm * disp)

    # 1. Coarse placement: correlate observed line "stick" spectra with the catalogue, over scales.
    obs_sticks = np.zeros(n)
    np.add.at(obs_sticks, np.clip(np.round(obs_x).astype(int), 0, n - 1), np.sqrt(obs_a / obs_a.max()))
    sigma_c = max(fwhm / 2.3548, 1.5)
    obs_s = ndimage.gaussian_filter1d(obs_sticks, sigma_c)
    xc = n / 2
    base_pred = _predict(nominal, cat.wavelength)
    pad = int(search_shift) + 8
    weights = np.sqrt(cat.intensity / cat.intensity.max())
    step = max(0.25 * fwhm / n, 2e-4)
    scales = np.arange(1 - search_scale, 1 + search_scale + step / 2, step)
    # All scales at once: catalogue pixel positions if the true dispersion is
    # nominal / scale about the centre, as smoothed stick spectra, one row per scale.
    width = n + 2 * pad
    px = xc + (base_pred[None, :] - xc) / scales[:, None]
    ok = np.isfinite(px) & (px > -pad) & (px < n + pad)
    rows_i, cols_i = np.nonzero(ok)
    models = np.zeros((len(scales), width))
    np.add.at(models, (rows_i, np.round(px[ok] + pad).astype(int).clip(0, width - 1)), weights[cols_i])
    models = ndimage.gaussian_filter1d(models, sigma_c, axis=1)
    # corr[k] = sum_i model[k + i] obs[i] for every shift k (one batched FFT):
    # the observed lines sit (pad - k) px from the prediction.
    nfft = int(2 ** np.ceil(np.log2(width + n)))
    spec = np.fft.rfft(models, nfft, axis=1) * np.conj(np.fft.rfft(obs_s, nfft))[None, :]
    corr = np.fft.irfft(spec, nfft, axis=1)[:, : width - n + 1]
    best_k = corr.argmax(axis=1)
    best_val = corr[np.arange(len(scales)), best_k]
    i_best = int(np.argmax(best_val))
    scale, shift = float(scales[i_best]), float(pad - best_k[i_best])
    pred = xc + (base_pred - xc) / scale + shift

    # 2. Match, then refine the mapping predicted -> observed pixel (a low-order
    # correction of the nominal shape, so that the nominal curvature is kept
    # while lines are sparse), re-match tighter; finally fit the wavelength
    # polynomial of the recipe's order with sigma clipping.
    tolerances = [max(3 * fwhm, 6.0), max(1.5 * fwhm, 3.0), max(0.7 * fwhm, 1.5), max(0.5 * fwhm, 1.0)]
    iso_pred0 = np.where(iso, pred, np.nan)
    cur = iso_pred0.copy()
    pairs: list[tuple[int, int]] = []
    for i, tol in enumerate(tolerances):
        pairs = _mutual_match(obs_x, cur, tol)
        if len(pairs) < 3:
            raise WavelengthError(f"only {len(pairs)} arc lines identified; check the lamp and the nominal dispersion of the set-up")
        oi = np.array([p[0] for p in pairs])
        ci = np.array([p[1] for p in pairs])
        deg = min(1 + i // 2, len(pairs) - 2, 2)
        keep = np.ones(len(oi), bool)
        for _ in range(5):
            m = P.polyfit(iso_pred0[ci[keep]] - xc, obs_x[oi[keep]], deg)
            resid = obs_x[oi] - P.polyval(iso_pred0[ci] - xc, m)
            s_ = 1.4826 * np.median(np.abs(resid[keep])) + 0.02
            new = np.abs(resid) < max(3 * s_, 0.3)
            if new.sum() < deg + 2 or (new == keep).all():
                break
            keep = new
        cur = P.polyval(iso_pred0 - xc, m)
    pairs = _mutual_match(obs_x, cur, tolerances[-1])
    oi = np.array([p[0] for p in pairs])
    ci = np.array([p[1] for p in pairs])
    x0 = xc
    final_deg = min(order, len(oi) - 2)
    if final_deg < 1 or (min_lines and len(oi) < min_lines):
        raise WavelengthError(f"only {len(oi)} arc lines identified")
    keep = np.ones(len(oi), bool)
    for _ in range(6):
        coeffs = P.polyfit(obs_x[oi[keep]] - x0, cat.wavelength[ci[keep]], final_deg)
        resid = cat.wavelength[ci] - P.polyval(obs_x[oi] - x0, coeffs)
        s_ = 1.4826 * np.median(np.abs(resid[keep])) + 1e-3 * disp
        new = np.abs(resid) < max(3 * s_, 0.05 * disp)
        if new.sum() < final_deg + 2 or (new == keep).all():
            break
        keep = new
    used = np.stack([oi[keep], ci[keep]], axis=1)
    final_deg = min(order, len(used) - 2)
    if final_deg < 1:
        raise WavelengthError(f"only {len(used)} arc lines kept in the fit")
    oi, ci = used[:, 0], used[:, 1]
    w = 1.0 / np.maximum(np.array([found[i].x_err for i in oi]), 0.01)
    coeffs = P.polyfit(obs_x[oi] - x0, cat.wavelength[ci], final_deg, w=w)
    resid = cat.wavelength[ci] - P.polyval(obs_x[oi] - x0, coeffs)
    dof = max(len(oi) - final_deg - 1, 1)
    rms_a = float(np.sqrt(np.sum(resid**2) / dof))
    local_disp = np.abs(P.polyval(obs_x[oi] - x0, P.polyder(coeffs)))
    rms_px = float(np.sqrt(np.sum((resid / local_disp) ** 2) / dof))
    sig = np.array([found[i].sigma for i in oi])
    fwhm_px = 2.3548 * sig
    r = cat.wavelength[ci] / (fwhm_px * local_disp)
    table = [
        {"x": float(obs_x[i]), "wavelength": float(cat.wavelength[j]), "element": cat.element[j], "residual": float(rr), "fwhm_px": float(f)}
        for i, j, rr, f in zip(oi, ci, resid, fwhm_px)
    ]
    return WavelengthSolution(
        coeffs=coeffs,
        x0=float(x0),
        rms_angstrom=rms_a,
        rms_px=rms_px,
        n_lines=int(len(oi)),
        resolving_power=float(np.median(r)),
        fwhm_px=float(np.median(fwhm_px)),
        lines=table,
        saturated_lines=n_saturated,
        saturated_used=saturated_used,
    )
