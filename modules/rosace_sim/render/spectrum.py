"""The long-slit frame renderer: science, arc, flat, bias and dark frames of
one spectrograph set-up, each with the truth it was made from.

Frames are built in expected photo-electrons per unbinned pixel (float32),
from three vectorised pieces: smooth sources uniform along the slit (sky
continuum, tungsten flat) as an outer product of a column spectrum and the
slit illumination; narrow lines uniform along the slit (arc lamp, night-sky
lines) as pixel-integrated gaussians following the tilted, curved slit image;
and the star as a band of rows around its trace. :mod:`.detector` then adds
dark current, cosmic rays, noise and bias. See ``docs/dev/truth.md`` for the
truth record.
"""

from __future__ import annotations

import math
import threading
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.polynomial import Polynomial
from scipy.ndimage import gaussian_filter1d
from scipy.special import ndtr

from . import atmosphere
from .detector import Region, read_out, region_of
from .instrument import Instrument, load_instrument, response_curve
from .stars import C_KMS, EW_WINDOW, HALPHA, Star, trapezoid

TRUTH_SCHEMA = "rosace-sim-truth/1"
V0_PHOTONS = 1000.0  # photons s^-1 cm^-2 A^-1 at 5500 A from a V = 0 star (Bessell 1998: 3.63e-9 erg)
OVERSAMPLE = 4  # fine-grid samples per column for the star spectrum
PHASES = 64  # sub-pixel phases of the tabulated line profile
MOFFAT_BETA = 4.765  # Trujillo et al. (2001): the turbulence-limited seeing profile


class Renderer:
    """Render frames of one instrument set-up.

    ``instrument`` is a set-up name (``'alpy600'``, ``'lhires2400'``) or the
    path of a TOML file like those in ``resources/instruments``. Every method
    returns ``(image, truth)``: a uint16 array of shape (rows along the slit,
    columns along the dispersion), and a JSON-ready dict (``docs/dev/truth.md``).
    ``binning`` is (bx, by); ``subframe`` is (x0, y0, nx, ny) in binned pixels
    (ASCOM StartX, StartY, NumX, NumY). Raises ConfigError for an unknown set-up
    and ValueError for bad arguments.
    """

    def __init__(self, instrument: str | Path = "alpy600", *, keep_buffers: bool = True):
        self.instrument: Instrument = load_instrument(instrument)
        # Scratch arrays reused from frame to frame (about 3 x 24 MB for a full
        # 3000 x 2000 frame): fresh memory costs more in page faults than the
        # arithmetic. The lock makes a shared Renderer safe across threads.
        self._work: dict | None = {} if keep_buffers else None
        self._lock = threading.Lock()

    def prepare(self, *, astropy: bool = False) -> None:
        """Build the per-instrument grids now (about 0.5 s) rather than in the first exposure.

        ``astropy=True`` also loads astropy's coordinates and IERS tables (1-3 s),
        which the first science frame with a time and site otherwise pays.
        """
        ins = self.instrument
        for key in ("columns", "response", "illumination", "fixed_pattern"):
            ins.grid(key)
        self._fine_grid()
        self._line_table()
        if astropy:
            barycentric_correction(0.0, 0.0, datetime(2026, 1, 1, tzinfo=timezone.utc), (0.0, 0.0, 0.0))

    def _photo_buffer(self, region: Region, zero: bool) -> np.ndarray:
        shape = region.shape
        if self._work is None:
            return np.zeros(shape, dtype=np.float32) if zero else np.empty(shape, dtype=np.float32)
        buf = self._work.get(("photo", shape))
        if buf is None:
            if len(self._work) >= 6:
                self._work.clear()
            buf = self._work[("photo", shape)] = np.empty(shape, dtype=np.float32)
        if zero:
            buf.fill(0)
        return buf

    # ------------------------------------------------------------ frames
    def bias(self, *, ccd_temp: float = -10.0, binning=(1, 1), subframe=None, rng: np.random.Generator | None = None, noise: str = "gaussian"):
        """A zero-second frame: bias level, column pattern and read noise."""
        return self._calibration("bias", 0.0, ccd_temp, binning, subframe, rng, None, noise)

    def dark(self, *, exposure: float = 60.0, ccd_temp: float = -10.0, binning=(1, 1), subframe=None, rng: np.random.Generator | None = None, noise: str = "gaussian"):
        """A closed-shutter frame: dark current (doubling every ``dark_doubling`` degC), hot pixels, cosmic rays."""
        return self._calibration("dark", exposure, ccd_temp, binning, subframe, rng, None, noise)

    def flat(self, *, exposure: float = 5.0, ccd_temp: float = -10.0, binning=(1, 1), subframe=None, rng: np.random.Generator | None = None, lamp: str = "tungsten", noise: str = "gaussian"):
        """A tungsten flat: smooth lamp spectrum x instrument response x slit illumination."""
        return self._calibration("flat", exposure, ccd_temp, binning, subframe, rng, lamp, noise)

    def arc(self, lamp: str | None = None, *, exposure: float = 2.0, ccd_temp: float = -10.0, binning=(1, 1), subframe=None, rng: np.random.Generator | None = None, noise: str = "gaussian"):
        """An arc frame of ``lamp`` ('NeAr' by default, 'Ne', 'Ar', 'He'): emission lines only, tilted and curved.

        ``noise``: 'gaussian' (default), 'poisson' (exact shot noise, slower) or 'none' (expected values, no cosmic rays).
        """
        return self._calibration("arc", exposure, ccd_temp, binning, subframe, rng, lamp or self.instrument.lamp, noise)

    def science(
        self,
        star: Star | None,
        *,
        exposure: float = 60.0,
        airmass: float = 1.0,
        time: datetime | None = None,
        site: tuple[float, float, float] | None = None,
        slit_offset: tuple[float, float] = (0.0, 0.0),
        seeing: float = 2.5,
        ccd_temp: float = -10.0,
        binning=(1, 1),
        subframe=None,
        transmission: float = 1.0,
        rng: np.random.Generator | None = None,
        sky_brightness: float = 20.5,
        pwv_scale: float = 1.0,
        noise: str = "gaussian",
    ):
        """A science frame: ``star`` on the slit (None: sky only) under the sky.

        ``time`` (UTC) and ``site`` (lat deg, lon deg east, elevation m) give the
        barycentric correction (omitted: 0). ``slit_offset`` (dx, dy) in arcsec
        is the star's offset from the slit centre across the slit (toward
        redder columns) and along it (toward higher rows). ``seeing`` is the
        FWHM in arcsec, ``transmission`` the cloud transmission (0-1),
        ``sky_brightness`` V mag/arcsec^2, ``pwv_scale`` the water column
        relative to the default.
        """
        ins = self.instrument
        exposure, airmass, seeing = float(exposure), float(airmass), float(seeing)
        if exposure < 0 or airmass < 1 or seeing <= 0 or not 0 <= transmission <= 1:
            raise ValueError("need exposure >= 0, airmass >= 1, seeing > 0 and 0 <= transmission <= 1")
        rng = rng if rng is not None else np.random.default_rng()
        region = region_of(ins, binning, subframe)
        if isinstance(time, str):
            time = datetime.fromisoformat(time.replace("Z", "+00:00"))
        if time is not None and time.tzinfo is None:
            time = time.replace(tzinfo=timezone.utc)
        with self._lock:
            return self._science(star, region, exposure, airmass, time, site, slit_offset, seeing, ccd_temp, transmission, rng, sky_brightness, pwv_scale, noise)

    def _science(self, star, region, exposure, airmass, time, site, slit_offset, seeing, ccd_temp, transmission, rng, sky_brightness, pwv_scale, noise):
        ins = self.instrument
        e = self._photo_buffer(region, zero=False)
        illum = ins.grid("illumination")[region.y0 : region.y1]
        sky_rate, sky_truth = self._sky_columns(sky_brightness, region)
        np.multiply(illum[:, None], (sky_rate * exposure).astype(np.float32)[None, :], out=e)
        self._add_lines(e, region, sky_truth["line_columns"], np.asarray(sky_truth["line_e_per_s_per_row"]) * exposure)
        truth = self._truth_base("science", region, exposure)
        truth["observation"] = {
            "time_utc": time.isoformat() if time else None,
            "time_mid_utc": (time + timedelta(seconds=exposure / 2)).isoformat() if time else None,
            "site": list(site) if site else None,
            "airmass": airmass,
            "seeing_arcsec": seeing,
            "slit_offset_arcsec": [float(slit_offset[0]), float(slit_offset[1])],
            "transmission": transmission,
            "sky_brightness_mag_arcsec2": sky_brightness,
            "pwv_scale": pwv_scale,
            "extinction_curve": ins.render["extinction"],
        }
        truth["sky"] = {k: v for k, v in sky_truth.items() if k != "line_columns"}
        if star is not None:
            # The star's RV, its emission and the barycentric term are taken at mid-exposure (JD-MID).
            t_mid = time + timedelta(seconds=exposure / 2) if time else None
            truth.update(self._add_star(e, region, star, exposure, airmass, t_mid, site, slit_offset, seeing, transmission, pwv_scale))
        img, det = read_out(ins, region, e, exposure, ccd_temp, rng, noise=noise, cosmics=noise != "none", work=self._work)
        truth["detector"] = det
        return img, truth

    # ------------------------------------------------------------ pieces
    def _calibration(self, kind, exposure, ccd_temp, binning, subframe, rng, lamp, noise):
        ins = self.instrument
        exposure = float(exposure)
        if exposure < 0:
            raise ValueError("exposure must be >= 0 s")
        rng = rng if rng is not None else np.random.default_rng()
        region = region_of(ins, binning, subframe)
        with self._lock:
            return self._calibration_locked(kind, region, exposure, ccd_temp, rng, lamp, noise)

    def _calibration_locked(self, kind, region, exposure, ccd_temp, rng, lamp, noise):
        ins = self.instrument
        e = self._photo_buffer(region, zero=kind != "flat")
        truth = self._truth_base(kind, region, exposure)
        if kind == "flat":
            cols = self._flat_columns(region) * exposure
            illum = ins.grid("illumination")[region.y0 : region.y1]
            np.multiply(illum[:, None], cols.astype(np.float32)[None, :], out=e)
            truth["flat"] = {"lamp": lamp, "temperature_k": ins.render["flat_temperature"], "peak_e_per_s": ins.render["flat_rate"]}
        elif kind == "arc":
            lines = ins.arc_lines(lamp)
            u = ins.column_of(np.array([ln.wavelength for ln in lines])) if lines else np.empty(0)
            sigma = ins.lsf_fwhm_px / 2.3548
            peak = np.array([ln.intensity for ln in lines]) * ins.render["arc_rate"]
            self._add_lines(e, region, u, peak * sigma * math.sqrt(2 * math.pi) * exposure)
            truth["arc"] = {
                "lamp": lamp,
                "lines": [
                    {"wavelength": ln.wavelength, "element": ln.element, "intensity": ln.intensity, "column": round(float(c), 4), "image_column": round(float((c - region.x0 - (region.bx - 1) / 2) / region.bx), 4), "peak_e": round(float(p * exposure), 1)}
                    for ln, c, p in zip(lines, u, peak)
                ],
            }
        img, det = read_out(ins, region, e, exposure, ccd_temp, rng, cosmics=kind != "bias" and noise != "none", noise=noise, work=self._work)
        truth["detector"] = det
        return img, truth

    def _flat_columns(self, region: Region) -> np.ndarray:
        """Tungsten e-/s per pixel along the columns of the region (peak = ``flat_rate``)."""
        ins = self.instrument
        key = "flat_columns"
        if key not in ins._cache:
            cols = ins.grid("columns")
            wl = cols["wavelength"]
            c2 = 1.4387769e8 / ins.render["flat_temperature"]
            phot = wl**-4 / np.expm1(c2 / wl)
            f = phot * ins.grid("response") * cols["dlam"]
            ins._cache[key] = f / f.max() * ins.render["flat_rate"]
        return ins._cache[key][region.x0 : region.x1]

    def _sky_columns(self, sky_mag: float, region: Region) -> tuple[np.ndarray, dict]:
        ins = self.instrument
        cols = ins.grid("columns")
        wl = cols["wavelength"]
        per_arcsec2 = V0_PHOTONS * 10 ** (-0.4 * sky_mag) * ins.collecting_area_cm2
        pix_arcsec2 = ins.slit_width * ins.spatial_scale
        per_a = per_arcsec2 * pix_arcsec2 * atmosphere.sky_continuum(wl) * ins.grid("response")  # e-/s/A per row
        rate = per_a * cols["dlam"]
        lines = [(w, ew, n) for w, ew, n in atmosphere.SKY_LINES if wl[0] - 20 < w < wl[-1] + 20]
        lw = np.array([w for w, _, _ in lines])
        line_rate = np.array([ew for _, ew, _ in lines]) * np.interp(lw, wl, per_a) if lines else np.empty(0)
        truth = {
            "continuum_e_per_s_per_px_5500": float(np.interp(5500.0, wl, rate)) if wl[0] < 5500 < wl[-1] else None,
            "lines": [{"wavelength": w, "species": n, "ew_of_continuum_A": ew} for w, ew, n in lines],
            "line_e_per_s_per_row": line_rate.tolist(),
            "line_columns": ins.column_of(lw) if lines else np.empty(0),
        }
        return rate[region.x0 : region.x1], truth

    def _line_table(self) -> tuple[np.ndarray, int]:
        """Pixel-integrated gaussian LSF tabulated for PHASES sub-pixel centre phases: (PHASES + 1, W), half width."""
        ins = self.instrument
        key = "line_table"
        if key not in ins._cache:
            sigma = ins.lsf_fwhm_px / 2.3548
            half = int(math.ceil(6 * sigma)) + 1
            k = np.arange(-half, half + 2, dtype=np.float64)
            p = np.arange(PHASES + 1, dtype=np.float64)[:, None] / PHASES
            table = ndtr((k[None, :] + 0.5 - p) / sigma) - ndtr((k[None, :] - 0.5 - p) / sigma)
            ins._cache[key] = (table.astype(np.float32), half)
        return ins._cache[key]

    def _add_lines(self, e: np.ndarray, region: Region, u: np.ndarray, flux_per_row: np.ndarray) -> None:
        """Add lines uniform along the slit: total ``flux_per_row`` electrons per row, centred at trace column ``u``.

        Each row gets the pixel-integrated gaussian centred on the tilted, curved
        slit image (x = u + tilt v + smile v^2), interpolated between tabulated
        sub-pixel phases (1/PHASES px apart: centroid error < 1e-4 px).
        """
        ins = self.instrument
        if len(u) == 0:
            return
        table, half = self._line_table()
        k = np.arange(-half, half + 2)
        nrows, ncols = region.shape
        y = np.arange(region.y0, region.y1, dtype=np.float64)
        illum = ins.grid("illumination")[region.y0 : region.y1]
        flat = e.reshape(-1)
        row_start = (np.arange(nrows) * ncols)[:, None]
        for uc, f in zip(np.atleast_1d(u), np.atleast_1d(flux_per_row)):
            if not np.isfinite(uc) or f <= 0:
                continue
            v = y - ins.trace(uc)
            xc = uc + ins.tilt * v + ins.smile * v * v
            if xc.max() + half + 2 < region.x0 or xc.min() - half - 2 >= region.x1:
                continue
            base = np.floor(xc)
            ph = (xc - base) * PHASES
            i = ph.astype(np.int64)
            w = (ph - i).astype(np.float32)[:, None]
            vals = table[i] * (1 - w) + table[i + 1] * w
            vals *= (illum * np.float32(f))[:, None]
            cols = base.astype(np.int64)[:, None] + k[None, :] - region.x0
            if cols.min() < 0 or cols.max() >= ncols:
                ok = (cols >= 0) & (cols < ncols)
                flat[(row_start + cols)[ok]] += vals[ok]
            else:
                flat[row_start + cols] += vals

    def _fine_grid(self) -> dict:
        ins = self.instrument
        key = "fine_grid"
        if key not in ins._cache:
            sigma = ins.lsf_fwhm_px / 2.3548
            pad = int(6 * sigma) + 20
            u = np.arange(-pad * OVERSAMPLE, (ins.nx + pad) * OVERSAMPLE) / OVERSAMPLE
            wl = ins.wavelength(u)
            dlam = np.abs(ins.wavelength_poly.deriv()(u))
            step = float(np.max(dlam)) / OVERSAMPLE
            tau = atmosphere.telluric_optical_depth(wl, min_sigma=step)
            ins._cache[key] = {"u": u, "wavelength": wl, "dlam": dlam, "step": step, "tau": tau, "response": response_curve(ins, wl)}
        return ins._cache[key]

    def _star_components(self, star, airmass, time, site, transmission, pwv_scale) -> dict:
        """The star's light on the fine column grid: Doppler-shifted spectrum, atmosphere, response."""
        ins = self.instrument
        g = self._fine_grid()
        rv_star = star.rv(time)
        bary = barycentric_correction(star.ra, star.dec, time, site)
        v_topo = (rv_star - bary) / (1 + bary / C_KMS)
        rest = g["wavelength"] / (1 + v_topo / C_KMS)
        norm = star.normalised_spectrum(rest, time, min_width=g["step"])
        phot = V0_PHOTONS * 10 ** (-0.4 * star.vmag) * star.photon_continuum(rest)
        ext = atmosphere.extinction(g["wavelength"], airmass, ins.render["extinction"])
        tell = atmosphere.telluric_transmission(g["wavelength"], airmass, pwv_scale, g["tau"])
        f = phot * norm * ins.collecting_area_cm2 * g["response"] * ext * tell * transmission * g["dlam"]  # e-/s per unit column
        sig = ins.lsf_fwhm_px / 2.3548 * OVERSAMPLE
        return {
            "grid": g, "rv_star": rv_star, "bary": bary, "v_topo": v_topo, "norm": norm, "tell": tell, "ext": ext,
            "rate": gaussian_filter1d(f, sig, mode="nearest"), "sigma_fine": sig,
        }

    def star_model(self, star: Star, *, time: datetime | None = None, site=None, airmass: float = 1.0, seeing: float = 2.5,
                   slit_offset: tuple[float, float] = (0.0, 0.0), transmission: float = 1.0, pwv_scale: float = 1.0) -> dict:
        """The noise-free 1D truth of a science frame, per unbinned column on the trace.

        Returns numpy arrays: ``column``, ``wavelength`` (A, air, true solution
        at the trace), ``normalised`` (the star's spectrum over its continuum,
        Doppler shifted, at the instrument's resolution, no telluric),
        ``telluric`` (transmission at this airmass, instrument resolution),
        ``extinction`` (continuum transmission), ``response`` (efficiency) and
        ``e_per_s`` (star electrons per second per column summed along the
        slit, slit losses included), plus the RV terms (km/s).
        """
        ins = self.instrument
        if isinstance(time, str):
            time = datetime.fromisoformat(time.replace("Z", "+00:00"))
        c = self._star_components(star, airmass, time, site, transmission, pwv_scale)
        g = c["grid"]
        prof = slit_profile(seeing, ins.slit_width, ins.spatial_scale, slit_offset[0])
        shift = prof["centroid_arcsec"] / ins.spatial_scale
        x = np.arange(ins.nx, dtype=np.float64)

        def at_columns(a):
            return np.interp(x - shift, g["u"], gaussian_filter1d(a, c["sigma_fine"], mode="nearest"))

        return {
            "column": x,
            "wavelength": ins.wavelength(x),
            "normalised": at_columns(c["norm"]),
            "telluric": at_columns(c["tell"]),
            "extinction": np.interp(x, g["u"], c["ext"]),
            "response": np.interp(x, g["u"], g["response"]),
            "e_per_s": np.interp(x - shift, g["u"], c["rate"]) * prof["fraction"],
            "rv_star_kms": c["rv_star"],
            "barycentric_correction_kms": c["bary"],
            "topocentric_kms": c["v_topo"],
        }

    def _add_star(self, e, region, star, exposure, airmass, time, site, slit_offset, seeing, transmission, pwv_scale) -> dict:
        ins = self.instrument
        c = self._star_components(star, airmass, time, site, transmission, pwv_scale)
        g, f = c["grid"], c["rate"]
        rv_star, bary, v_topo = c["rv_star"], c["bary"], c["v_topo"]

        prof = slit_profile(seeing, ins.slit_width, ins.spatial_scale, slit_offset[0])
        shift_px = prof["centroid_arcsec"] / ins.spatial_scale  # light centroid across the slit moves the spectrum
        v0 = slit_offset[1] / ins.spatial_scale
        half = prof["half_rows"]
        tr = ins.grid("columns")["trace"][region.x0 : region.x1]
        lo = max(int(math.floor(tr.min() + v0 - half)), region.y0)
        hi = min(int(math.ceil(tr.max() + v0 + half)) + 1, region.y1)
        star_rate = np.interp(np.arange(ins.nx, dtype=np.float64) - shift_px, g["u"], f) * prof["fraction"]
        if hi > lo:
            y = np.arange(lo, hi, dtype=np.float64)[:, None]
            x = np.arange(region.x0, region.x1, dtype=np.float64)[None, :]
            u = x - shift_px
            for _ in range(3):  # solve x = u + tilt v + smile v^2, v = y - trace(u)
                v = y - ins.trace(u)
                u = x - ins.tilt * v - ins.smile * v * v
            v = y - ins.trace(u) - v0
            spec = np.interp(u - shift_px, g["u"], f)
            cum_v, cum = prof["rows"], prof["cumulative"]
            w = np.interp(v + 0.5, cum_v, cum) - np.interp(v - 0.5, cum_v, cum)
            e[lo - region.y0 : hi - region.y0, :] += (spec * w * exposure).astype(np.float32)

        x_img_centres = region.x0 + (region.bx - 1) / 2 + region.bx * np.arange(region.image_shape[1])
        per_col = np.interp(np.arange(region.x0, region.x1), np.arange(ins.nx), star_rate) * exposure
        per_img_col = per_col.reshape(-1, region.bx).sum(axis=1)
        em = star.emission(time)
        return {
            "star": star.to_dict(time) | {"expected_e_per_image_column": np.round(per_img_col, 1).tolist(), "image_column_centres_unbinned": [float(x_img_centres[0]), float(region.bx)]},
            "rv": {
                "star_barycentric_kms": rv_star,
                "barycentric_correction_kms": bary,
                "heliocentric_correction_kms": heliocentric_correction(star.ra, star.dec, time, site),
                "topocentric_kms": v_topo,
                "doppler": "lambda_obs = lambda_rest * (1 + topocentric_kms / c)",
                "slit_shift_px": shift_px,
            },
            "halpha": {
                "ew_A": star.halpha_ew(time),
                "window_A": [HALPHA - EW_WINDOW, HALPHA + EW_WINDOW],
                "sign": "negative = net emission",
                "emission": em,
            },
            "lines": star.lines(time),
            "slit": {
                "fraction_through_slit": prof["fraction"],
                "seeing_profile": f"moffat beta={MOFFAT_BETA}",
                "centroid_across_slit_arcsec": prof["centroid_arcsec"],
                "trace_offset_rows": v0,
            },
        }

    def _truth_base(self, kind: str, region: Region, exposure: float) -> dict:
        ins = self.instrument
        reg = region.to_dict()
        xo, xs = reg["x_unbinned"]["offset"], reg["x_unbinned"]["scale"]
        yo, ys = reg["y_unbinned"]["offset"], reg["y_unbinned"]["scale"]
        to_x = Polynomial([xo, xs])
        wl_img = ins.wavelength_poly(to_x)
        trace_img = (ins.trace_poly(to_x) - yo) / ys
        resp_wl = np.linspace(ins.wavelength(0), ins.wavelength(ins.nx - 1), 60)
        return {
            "schema": TRUTH_SCHEMA,
            "kind": kind,
            "instrument": ins.name,
            "exposure_s": exposure,
            "image": reg,
            "dispersion": {
                "medium": "air",
                "units": "angstrom",
                "coeffs_unbinned": [float(c) for c in ins.wavelength_poly.coef],
                "coeffs_image": [float(c) for c in wl_img.coef],
                "convention": "numpy.polynomial: wavelength = sum(c[k] * x**k) at the trace row, x = column",
                "lsf_fwhm_px": ins.lsf_fwhm_px,
                "resolving_power_nominal": ins.resolving_power,
            },
            "geometry": {
                "trace_coeffs_unbinned": [float(c) for c in ins.trace_poly.coef],
                "trace_coeffs_image": [float(c) for c in trace_img.coef],
                "tilt_deg": ins.tilt_deg,
                "tilt": ins.tilt,
                "smile": ins.smile,
                "tilt_image": ins.tilt * region.by / region.bx,
                "smile_image": ins.smile * region.by**2 / region.bx,
                "model": "x = u + tilt*v + smile*v**2, y = trace(u) + v (u: column on the trace, v: rows from the trace)",
                "spatial_scale_arcsec_per_row": ins.spatial_scale,
                "slit_width_arcsec": ins.slit_width,
            },
            "response": {
                "wavelength": np.round(resp_wl, 2).tolist(),
                "efficiency": np.round(response_curve(ins, resp_wl), 6).tolist(),
                "collecting_area_cm2": ins.collecting_area_cm2,
                "meaning": "electrons per photon reaching the telescope above the atmosphere, slit losses excluded",
            },
        }


@lru_cache(maxsize=64)
def slit_profile(seeing: float, slit_width: float, scale: float, dx: float) -> dict:
    """Light of a Moffat star through the slit: total fraction, centroid across the slit, cumulative profile along it (rows)."""
    fwhm = seeing
    alpha = fwhm / (2 * math.sqrt(2 ** (1 / MOFFAT_BETA) - 1))
    half_arcsec = 6 * fwhm + 2 * scale
    eta = np.linspace(-half_arcsec, half_arcsec, 1201)  # along the slit
    xi = np.linspace(-slit_width / 2, slit_width / 2, 81)  # across the slit, inside it
    r2 = ((xi[None, :] - dx) ** 2 + eta[:, None] ** 2) / (alpha * alpha)
    norm = (MOFFAT_BETA - 1) / (math.pi * alpha * alpha)
    psf = norm * (1 + r2) ** -MOFFAT_BETA
    along = trapezoid(psf, xi, axis=1)
    fraction = float(trapezoid(along, eta))
    across = trapezoid(psf, eta, axis=0)
    centroid = float(trapezoid(across * xi, xi) / max(trapezoid(across, xi), 1e-300))
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (along[1:] + along[:-1]) * np.diff(eta))])
    return {"fraction": fraction, "centroid_arcsec": centroid, "rows": eta / scale, "cumulative": cum, "half_rows": half_arcsec / scale}


@lru_cache(maxsize=256)
def _corrections_cached(ra: float, dec: float, jd_minute: int, lat: float, lon: float, elev: float) -> tuple[float, float]:
    from astropy import units as u
    from astropy.coordinates import EarthLocation, SkyCoord
    from astropy.time import Time

    from rosace_core.astro import configure_offline

    configure_offline()
    t = Time(jd_minute / 1440.0, format="jd", scale="utc")
    loc = EarthLocation.from_geodetic(lon * u.deg, lat * u.deg, elev * u.m)
    c = SkyCoord(ra * u.deg, dec * u.deg)
    bary, helio = (float(c.radial_velocity_correction(kind, obstime=t, location=loc).to_value(u.km / u.s)) for kind in ("barycentric", "heliocentric"))
    return bary, helio


def _corrections(ra: float, dec: float, time: datetime | None, site) -> tuple[float, float]:
    if time is None or site is None:
        return 0.0, 0.0
    if time.tzinfo is None:
        time = time.replace(tzinfo=timezone.utc)
    jd = 2440587.5 + time.timestamp() / 86400.0
    lat, lon, elev = (float(v) for v in site)
    # Cached to the minute: the correction changes by < 0.5 m/s in a minute.
    return _corrections_cached(round(ra, 6), round(dec, 6), int(round(jd * 1440)), lat, lon, elev)


def barycentric_correction(ra: float, dec: float, time: datetime | None, site) -> float:
    """Barycentric correction (km/s, astropy's sign: add it to a measured RV) for the site and time; 0 if either is missing."""
    return _corrections(ra, dec, time, site)[0]


def heliocentric_correction(ra: float, dec: float, time: datetime | None, site) -> float:
    """Heliocentric correction (km/s, BeSS ``BSS_VHEL`` convention: add it to a measured RV); 0 without site or time."""
    return _corrections(ra, dec, time, site)[1]
