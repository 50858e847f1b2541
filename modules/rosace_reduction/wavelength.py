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
from rosace_core.instrument import lamp_elements
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
    valid_range: tuple[float, float] | None = None  # pixels (first, last) where the solution is constrained by lines
    checks: dict = field(default_factory=dict)  # the acceptance test's figures

    def extrapolated(self, x) -> np.ndarray:
        """True where pixel ``x`` lies outside the valid range (wavelength extrapolated)."""
        x = np.asarray(x, dtype=float)
        if self.valid_range is None:
            return np.zeros(x.shape, bool)
        return (x < self.valid_range[0]) | (x > self.valid_range[1])

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
            "valid_range_px": list(self.valid_range) if self.valid_range else None,
            "valid_range_angstrom": sorted(float(w) for w in self(list(self.valid_range))) if self.valid_range else None,
            "checks": self.checks,
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


# Lamp names -> line lists: the elements named in the lamp ("HgArNe", "ThAr", "CuAr", "FeAr").
def lamp_line_lists(lamp: str) -> list[str]:
    """Line lists of a calibration lamp named by its elements: 'NeAr' -> ['ne', 'ar'], 'ThAr' -> ['thar'], 'HgArNe' -> ['hg', 'ar', 'ne']."""
    try:
        return lamp_elements(lamp)
    except ValueError as exc:
        raise WavelengthError(str(exc)) from None


@dataclass
class _Candidate:
    score: float
    scale: float
    curvature: float
    shift: float


def _coarse_candidates(obs_x, obs_a, cat_wl, cat_w, nominal, n, fwhm, search_shift, search_scale, search_curvature, keep=6) -> list[_Candidate]:
    """Cross-correlate the observed lines with the catalogue over non-linear nominals.

    The catalogue is placed with the nominal solution, then distorted by a
    dispersion scale, a curvature (pixels of extra displacement at the
    detector's ends, quadratic in position) and a shift; every shift comes at
    once from one batched FFT per curvature. Returns the best distinct
    (scale, curvature, shift) candidates, best first. Written by hand:
    specreduce/astropy offer no search over a distorted template.
    """
    xc = n / 2
    base_pred = _predict(nominal, cat_wl)
    u = base_pred - xc
    obs_sticks = np.zeros(n)
    np.add.at(obs_sticks, np.clip(np.round(obs_x).astype(int), 0, n - 1), np.sqrt(obs_a / obs_a.max()))
    sigma_c = max(fwhm / 2.3548, 1.5)
    obs_s = ndimage.gaussian_filter1d(obs_sticks, sigma_c)
    pad = int(search_shift + search_curvature) + 8
    step = max(0.25 * fwhm / n, 2e-4)
    scales = np.arange(1 - search_scale, 1 + search_scale + step / 2, step)
    c_step = max(0.5 * fwhm, 1.0)
    n_c = int(np.ceil(search_curvature / c_step))
    curvatures = np.arange(-n_c, n_c + 1) * c_step if n_c else np.zeros(1)
    width = n + 2 * pad
    nfft = int(2 ** np.ceil(np.log2(width + n)))
    obs_f = np.conj(np.fft.rfft(obs_s, nfft))
    rows = []
    for c in curvatures:
        px = xc + u[None, :] / scales[:, None] + c * (u[None, :] / xc) ** 2
        ok = np.isfinite(px) & (px > -pad) & (px < n + pad)
        rows_i, cols_i = np.nonzero(ok)
        models = np.zeros((len(scales), width))
        np.add.at(models, (rows_i, np.round(px[ok] + pad).astype(int).clip(0, width - 1)), cat_w[cols_i])
        models = ndimage.gaussian_filter1d(models, sigma_c, axis=1)
        # corr[k] = sum_i model[k + i] obs[i]: the observed lines sit (pad - k) px from the prediction.
        corr = np.fft.irfft(np.fft.rfft(models, nfft, axis=1) * obs_f[None, :], nfft, axis=1)[:, : width - n + 1]
        lo_k, hi_k = max(pad - int(search_shift), 0), min(pad + int(search_shift), width - n) + 1
        corr = corr[:, lo_k:hi_k]
        best_k = corr.argmax(axis=1)
        for i, k in enumerate(best_k):
            rows.append((float(corr[i, k]), float(scales[i]), float(c), float(pad - (k + lo_k))))
    rows.sort(key=lambda r: -r[0])
    out: list[_Candidate] = []
    for score, sc, c, sh in rows:
        distinct = all(abs(sh - o.shift) > 3 * fwhm or abs(sc - o.scale) * xc > 3 * fwhm or abs(c - o.curvature) > 3 * fwhm for o in out)
        if distinct:
            out.append(_Candidate(score, sc, c, sh))
            if len(out) >= keep:
                break
    return out


def _refine(cand: _Candidate, obs_x, found, cat: LineList, iso, nominal, n, fwhm, order, disp):
    """Match the catalogue placed by ``cand`` to the observed lines and fit; None if too few lines."""
    xc = n / 2
    u = _predict(nominal, cat.wavelength) - xc
    pred = xc + u / cand.scale + cand.curvature * (u / xc) ** 2 + cand.shift
    # Match, then refine the mapping predicted -> observed pixel (a low-order
    # correction of the candidate's shape, so that its curvature is kept while
    # lines are sparse), re-match tighter; finally fit the wavelength
    # polynomial of the recipe's order with sigma clipping.
    tolerances = [max(3 * fwhm, 6.0), max(1.5 * fwhm, 3.0), max(0.7 * fwhm, 1.5), max(0.5 * fwhm, 1.0)]
    iso_pred0 = np.where(iso, pred, np.nan)
    cur = iso_pred0.copy()
    for i, tol in enumerate(tolerances):
        pairs = _mutual_match(obs_x, cur, tol)
        if len(pairs) < 4:
            return None
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
    if len(pairs) < 4:
        return None
    oi = np.array([p[0] for p in pairs])
    ci = np.array([p[1] for p in pairs])
    final_deg = min(order, len(oi) - 3)
    if final_deg < 1:
        return None
    keep = np.ones(len(oi), bool)
    # Iterative fit with sigma clipping (3 sigma of a robust scatter).
    for _ in range(8):
        coeffs = P.polyfit(obs_x[oi[keep]] - xc, cat.wavelength[ci[keep]], final_deg)
        resid = cat.wavelength[ci] - P.polyval(obs_x[oi] - xc, coeffs)
        s_ = 1.4826 * np.median(np.abs(resid[keep])) + 1e-3 * disp
        new = np.abs(resid) < max(3 * s_, 0.05 * disp)
        if new.sum() < final_deg + 3 or (new == keep).all():
            break
        keep = new
    oi, ci = oi[keep], ci[keep]
    # Leave-one-out: a line counts only if the others predict it (a lone line at
    # the end of the span bends the polynomial onto a wrong identification
    # without leaving a residual); the worst unconfirmed line goes first.
    while True:
        final_deg = min(order, len(oi) - 3)
        if final_deg < 1:
            return None
        loo = np.empty(len(oi))
        for k in range(len(oi)):
            m = np.arange(len(oi)) != k
            c_k = P.polyfit(obs_x[oi[m]] - xc, cat.wavelength[ci[m]], final_deg)
            d_k = abs(P.polyval(obs_x[oi[k]] - xc, P.polyder(c_k))) or disp
            loo[k] = abs(cat.wavelength[ci[k]] - P.polyval(obs_x[oi[k]] - xc, c_k)) / d_k
        worst = int(np.argmax(loo))
        if loo[worst] <= max(1.0, 0.5 * fwhm):
            break
        oi, ci = np.delete(oi, worst), np.delete(ci, worst)
    w = 1.0 / np.maximum(np.array([found[i].x_err for i in oi]), 0.01)
    coeffs = P.polyfit(obs_x[oi] - xc, cat.wavelength[ci], final_deg, w=w)
    return coeffs, oi, ci, cur


def _binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    from scipy import stats

    return float(stats.binom.sf(k - 1, n, min(max(p, 1e-9), 1.0)))


def _acceptance(coeffs, oi, ci, obs_x, obs_a, found, cat: LineList, nominal, n, fwhm, order, disp, search_shift, search_scale, search_curvature,
                min_lines, all_x=None) -> tuple[dict, list[str]]:
    """Independent checks of a fitted solution: (figures, reasons it is refused; empty = accepted).

    - enough lines, spread over the detector (span of the fitted lines);
    - residual RMS a fraction of the line width;
    - the lines found and the catalogue agree far beyond chance: of the
      strongest observed lines inside the span, the share lying on a
      catalogue line is compared with the share a random placement gives
      (binomial tail probability), and of the strongest catalogue lines
      expected inside the span, enough are seen;
    - the solution stays within the searched tolerance of the nominal one.
    """
    xc = n / 2
    x_fit = obs_x[oi]
    lo_x, hi_x = float(x_fit.min()), float(x_fit.max())
    span = hi_x - lo_x
    resid = cat.wavelength[ci] - P.polyval(x_fit - xc, coeffs)
    local = np.abs(P.polyval(x_fit - xc, P.polyder(coeffs)))
    deg = len(coeffs) - 1
    dof = max(len(oi) - deg - 1, 1)
    rms_px = float(np.sqrt(np.sum((resid / local) ** 2) / dof))
    x = np.arange(n, dtype=float)
    sol = P.polyval(x - xc, coeffs)
    dsol = P.polyval(x - xc, P.polyder(coeffs))
    inside = (x >= lo_x) & (x <= hi_x)
    # Chance agreement: strongest observed lines in the span vs the whole catalogue there.
    tol = max(0.5 * fwhm, 1.0)
    in_span = (obs_x >= lo_x) & (obs_x <= hi_x)
    strong = np.argsort(-np.where(in_span, obs_a, -np.inf))[: min(25, int(in_span.sum()))]
    cat_px = _predict(sol if sol[-1] > sol[0] else sol, cat.wavelength) if np.all(np.diff(sol) > 0) or np.all(np.diff(sol) < 0) else np.full(len(cat.wavelength), np.nan)
    cat_in = cat_px[np.isfinite(cat_px) & (cat_px >= lo_x) & (cat_px <= hi_x)]
    hits = int(sum(np.any(np.abs(cat_in - obs_x[i]) <= tol) for i in strong)) if len(cat_in) else 0
    p_chance = min(1.0, len(cat_in) * 2 * tol / max(span, 1.0))
    p_value = _binom_sf(hits, len(strong), p_chance) if len(strong) else 1.0
    # Strongest catalogue lines expected in the span (as many as lines were found there): how many are seen.
    in_cat = np.isfinite(cat_px) & (cat_px >= lo_x + 2 * fwhm) & (cat_px <= hi_x - 2 * fwhm)
    top = np.argsort(-np.where(in_cat, cat.intensity, -np.inf))[: min(int(in_cat.sum()), max(int(in_span.sum()), 5))]
    peaks = obs_x if all_x is None else all_x  # saturated lines, left out of the fit, are seen all the same
    seen = int(sum(np.any(np.abs(peaks - cat_px[j]) <= tol) for j in top))
    # Departure from the nominal, in pixels, over the fitted span.
    nom = _predict(nominal, sol[inside]) if np.isfinite(sol[inside]).all() else np.full(int(inside.sum()), np.nan)
    depart = np.abs(nom - x[inside])
    scale = np.abs(dsol[inside]) / np.maximum(np.abs(np.gradient(nominal))[inside], 1e-12)
    monotonic = bool(np.all(dsol * dsol[n // 2] > 0))
    figures = {
        "n_lines": int(len(oi)), "span_px": span, "rms_px": rms_px, "strong_lines_on_catalogue": hits, "strong_lines_checked": int(len(strong)),
        "chance_fraction": p_chance, "chance_probability": p_value, "catalogue_lines_seen": seen, "catalogue_lines_expected": int(len(top)),
        "nominal_departure_px": float(np.nanmax(depart)) if np.isfinite(depart).any() else float("inf"),
        "dispersion_ratio": [float(scale.min()), float(scale.max())],
    }
    reasons = []
    need = max(min_lines or 0, deg + 3, 6)
    if len(oi) < need:
        reasons.append(f"{len(oi)} lines identified, {need} needed")
    middle = int(np.sum((x_fit > lo_x + span / 3) & (x_fit < hi_x - span / 3)))
    if span < 0.25 * n or middle == 0:
        reasons.append(f"the identified lines span {span:.0f} px of {n}" + ("" if middle else ", none in the middle third"))
    if rms_px > 0.25:
        reasons.append(f"residual RMS {rms_px:.2f} px")
    if p_value > 1e-8:
        reasons.append(f"{hits} of the {len(strong)} strongest lines fall on catalogue lines, chance gives {p_chance * len(strong):.1f}")
    if len(top) and seen < 0.5 * len(top):
        reasons.append(f"{seen} of the {len(top)} strongest catalogue lines in range are seen")
    limit = search_shift + search_scale * n / 2 + search_curvature + 3 * fwhm
    if not np.isfinite(figures["nominal_departure_px"]) or figures["nominal_departure_px"] > limit:
        reasons.append(f"the solution departs {figures['nominal_departure_px']:.0f} px from the nominal one (searched: {limit:.0f} px)")
    if not monotonic or scale.min() < 1 - search_scale - 0.05 or scale.max() > 1 + search_scale + 0.05:
        reasons.append(f"local dispersion {scale.min():.3f}-{scale.max():.3f} x nominal (searched: +-{search_scale:.1%})")
    return figures, reasons


def identify(
    arc: np.ndarray,
    nominal: np.ndarray,
    lines: LineList,
    *,
    fwhm: float,
    order: int = 3,
    search_shift: float = 200.0,
    search_scale: float = 0.04,
    search_curvature: float = 0.0,
    variance: np.ndarray | None = None,
    min_lines: int | None = None,
    saturated: np.ndarray | None = None,
    valid_margin: float | None = None,
) -> WavelengthSolution:
    """Identify the arc lines, fit the wavelength solution and check it.

    ``nominal`` is the set-up's nominal wavelength of every pixel (A, air);
    ``fwhm`` the expected line FWHM in pixels. The search covers offsets up to
    ``search_shift`` px, dispersion errors up to ``search_scale`` (relative)
    and curvature errors up to ``search_curvature`` px at the detector's ends.
    Several candidate placements are fitted; each fit must pass an
    independent acceptance test (:func:`_acceptance`), and a second, different
    placement passing it nearly as well makes the arc ambiguous. Raises
    WavelengthError (saying why) rather than returning a doubtful solution.
    The solution is valid over the span of the fitted lines plus
    ``valid_margin`` pixels on each side (default three line widths: a cubic
    drifts by a pixel within a few per cent of the detector beyond its last
    line) (``valid_range``).
    ``saturated`` (bool per column) leaves out the lines that reach a
    saturated column (their flat tops bias the centre), unless fewer than 3
    lines would be left.
    """
    arc = np.nan_to_num(np.asarray(arc, dtype=np.float64))
    n = len(arc)
    found = find_arc_lines(arc, fwhm, variance=variance)
    all_x = np.array([l.x for l in found])
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
    margin = (search_shift + search_scale * n + search_curvature) * disp
    cat = lines.within(min(nominal[0], nominal[-1]) - margin, max(nominal[0], nominal[-1]) + margin)
    if len(cat.wavelength) < 3:
        raise WavelengthError("the line lists have fewer than 3 lines in the nominal range of the set-up")
    # Dense lists (ThAr): only the strongest lines, a few times as many as were found, take part.
    n_cat = max(3 * len(found), 40)
    if len(cat.wavelength) > n_cat:
        strongest = np.sort(np.argsort(-cat.intensity)[:n_cat])
        cat = LineList(cat.wavelength[strongest], [cat.element[i] for i in strongest], cat.intensity[strongest])
    iso = _isolated(cat.wavelength, cat.intensity, 1.5 * fwhm * disp)
    weights = np.sqrt(cat.intensity / cat.intensity.max()) * iso

    candidates = _coarse_candidates(obs_x, obs_a, cat.wavelength, weights, nominal, n, fwhm, search_shift, search_scale, search_curvature)
    results = []
    for cand in candidates:
        fit = _refine(cand, obs_x, found, cat, iso, nominal, n, fwhm, order, disp)
        if fit is None:
            continue
        coeffs, oi, ci, _ = fit
        figures, reasons = _acceptance(coeffs, oi, ci, obs_x, obs_a, found, cat, nominal, n, fwhm, order, disp, search_shift, search_scale,
                                       search_curvature, min_lines, all_x)
        results.append((coeffs, oi, ci, figures, reasons))
    accepted = [r for r in results if not r[4]]
    if not accepted:
        best = max(results, key=lambda r: r[3]["n_lines"], default=None)
        why = "; ".join(best[4]) if best else "too few lines matched the line lists"
        raise WavelengthError(f"wavelength calibration refused: {why} (lamp, line lists and nominal dispersion of the set-up?)")
    # Distinct accepted solutions (differing by more than a line width somewhere in the span) make the arc ambiguous.
    x = np.arange(n, dtype=float) - n / 2
    accepted.sort(key=lambda r: -r[3]["n_lines"] / (r[3]["rms_px"] + 0.05))
    best = accepted[0]
    sol0 = P.polyval(x, best[0])
    lo_x, hi_x = obs_x[best[1]].min(), obs_x[best[1]].max()
    inside = (x + n / 2 >= lo_x) & (x + n / 2 <= hi_x)
    for other in accepted[1:]:
        diff_px = np.abs(P.polyval(x, other[0]) - sol0)[inside] / max(disp, 1e-12)
        comparable = other[3]["n_lines"] >= 0.7 * best[3]["n_lines"] and other[3]["rms_px"] <= 2 * best[3]["rms_px"] + 0.05
        if diff_px.max() > fwhm and comparable:
            raise WavelengthError(
                f"wavelength calibration refused: two different identifications fit the arc ({best[3]['n_lines']} and {other[3]['n_lines']} lines, "
                f"{diff_px.max():.0f} px apart); narrow the nominal dispersion of the set-up")
    coeffs, oi, ci, figures, _ = best
    x0 = n / 2
    resid = cat.wavelength[ci] - P.polyval(obs_x[oi] - x0, coeffs)
    final_deg = len(coeffs) - 1
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
    pad = 3 * fwhm if valid_margin is None else valid_margin
    valid = (max(float(lo_x) - pad, 0.0), min(float(hi_x) + pad, n - 1.0))
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
        valid_range=valid,
        checks=figures,
    )
