"""One observation from raw frames to products.

:func:`reduce_observation` runs the recipe of the instrument set-up on a
:class:`Plan` (science frames plus the calibrations chosen for them) and
writes the products; it is a plain function of picklable arguments so that a
batch can run it in worker processes.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.time import Time

from rosace_core.errors import ConfigError, RosaceError
from rosace_core.plugins import load_object
from rosace_reduction import output
from rosace_reduction.calibration import build_masters, calibrate, combine, remove_cosmic_rays
from rosace_reduction.extraction import check_spectrum, extract
from rosace_reduction.frames import FrameInfo, load_image, read_frame_info
from rosace_reduction.geometry import LineGeometry, band_rows, find_trace, measure_line_geometry, rectify, unrectify
from rosace_reduction.instrument import InstrumentSetup, layout_of, load_instrument
from rosace_reduction.response import (
    Response,
    ResponseError,
    barycentric_correction,
    compute_response,
    extinction_factor,
    find_reference,
    normalise,
)
from rosace_reduction.wavelength import find_arc_lines, identify, load_line_lists

log = logging.getLogger(__name__)
C_KMS = 299792.458


#: Flags that keep a spectrum from the grade 'good' even when its extraction checks pass.
GRADE_FAIR_FLAGS = {"saturated_columns", "custom_step_axis_resampled", "missing", "no_barycentric_correction"}


class ReductionError(RosaceError):
    """An observation cannot be reduced (reason in the message)."""


@dataclass
class Options:
    """Site and module options a reduction needs (from the configuration)."""

    output_root: str
    site_name: str = ""
    latitude: float = 43.75
    longitude: float = 6.92
    elevation: float = 1270.0
    extinction: str = "orm"
    reference_dirs: list[str] = field(default_factory=list)
    barycentric: bool = True
    telluric: bool = True
    cosmic_rays: bool | None = None
    extraction: str | None = None
    normalise: bool | None = None
    # The user's own set-ups: .toml files and folders searched for the INSTRUME name.
    instrument_search: list[str] = field(default_factory=list)
    #: The set-up of every frame (``rosace reduce --instrument``), whatever INSTRUME says (a camera name).
    instrument: str | None = None
    #: True when the site above is the observatory's configured one (not a default): used, flagged,
    #: for frames that do not say where they were taken.
    site_configured: bool = False


@dataclass
class Plan:
    """What to reduce: science frames of one observation and their calibrations."""

    science: list[str]
    arc: list[str] = field(default_factory=list)
    flat: list[str] = field(default_factory=list)
    bias: list[str] = field(default_factory=list)
    dark: list[str] = field(default_factory=list)
    response: str | None = None  # .npz written by the reduction of the night's reference star
    observation_id: str = ""
    # An interrupted observation (weather, dawn, disk): what the sequencer said about it
    # ({"reason", "science_frames", "planned_frames"}); its spectrum is flagged PARTIAL.
    partial: dict | None = None

    def inputs_hash(self) -> str:
        h = hashlib.sha256()
        for group in (self.science, self.arc, self.flat, self.bias, self.dark, [self.response or ""]):
            for p in sorted(group):
                h.update(p.encode())
                try:
                    st = Path(p).stat()
                    h.update(f"{st.st_size}:{int(st.st_mtime)}".encode())
                except OSError:
                    pass
        return h.hexdigest()[:16]


@dataclass
class Step:
    """Base of a custom step: ``run(ctx)`` may read and change the context dict (wavelength, flux, ...)."""

    name: str = "custom"

    def __post_init__(self) -> None:
        # A subclass names itself with a plain class attribute (``name = "my_step"``);
        # the dataclass __init__ would overwrite it with the base default.
        if self.name == "custom":
            self.name = type(self).name

    def run(self, ctx: dict) -> None:  # pragma: no cover - interface
        raise NotImplementedError


def _infos(paths: list[str], instrument: str | None = None) -> list[FrameInfo]:
    return [read_frame_info(p, instrument) for p in paths]


def _night(date_obs: str) -> str:
    from astropy import units as u

    t = Time(date_obs, scale="utc") - 12 * u.hour  # night = UTC date of the evening
    return t.datetime.strftime("%Y%m%d")


_CACHE: "OrderedDict[tuple, object]" = OrderedDict()
_CACHE_SIZE = 8
#: Arrays kept by the cache at most (masters of a 170-row band are ~6 MB; each night's
#: observation usually brings its own flats, so old masters are rarely asked for again).
_CACHE_BYTES = 32 << 20
_CACHE_LOCK = threading.Lock()


def _nbytes(value) -> int:
    """Bytes of the numpy arrays in a cached value (masters, (geometry, solution) pairs)."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(v) for v in value)
    if hasattr(value, "__dict__"):
        return sum(v.nbytes for v in vars(value).values() if isinstance(v, np.ndarray))
    return 0


def _files_key(*groups) -> tuple:
    """Identity of input files (path, size, modification time): a changed file is a new key."""
    key = []
    for group in groups:
        for info in group:
            try:
                st = Path(info.path).stat()
                key.append((str(info.path), st.st_size, st.st_mtime_ns))
            except OSError:
                key.append((str(info.path), -1, -1))
    return tuple(key)


def _cached(key: tuple, compute):
    """Per-process cache of calibration products (masters, arc solutions): a few entries and at most
    ``_CACHE_BYTES`` of arrays (the newest entry always stays), least recent dropped."""
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    value = compute()
    with _CACHE_LOCK:
        _CACHE[key] = value
        while len(_CACHE) > _CACHE_SIZE or (len(_CACHE) > 1 and sum(_nbytes(v) for v in _CACHE.values()) > _CACHE_BYTES):
            _CACHE.popitem(last=False)
    return value


def clear_cache() -> None:
    """Forget cached masters and arc solutions (they are keyed by file identity, so this is rarely needed)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _solve_arc(arcs: list[FrameInfo], masters, setup: InstrumentSetup, rows: slice, trace, half: int, fwhm_px: float, nominal: np.ndarray,
               *, aperture: int | None = None, search_shift: float | None = None):
    """Arc frames -> (line geometry, wavelength solution) along the star's trace."""
    calibrated = [calibrate(load_image(a.path, rows), masters, setup, a.exptime, a.ccd_temp) for a in arcs]
    arc_band = combine([c[0] for c in calibrated])
    saturated = np.logical_or.reduce([c[2] for c in calibrated])
    return _solve_arc_band(arc_band, setup, rows, trace, half, fwhm_px, nominal, aperture=aperture, search_shift=search_shift,
                           saturated=saturated if saturated.any() else None)


def _solve_arc_band(arc_band: np.ndarray, setup: InstrumentSetup, rows: slice, trace, half: int, fwhm_px: float, nominal: np.ndarray,
                    *, aperture: int | None = None, search_shift: float | None = None, saturated: np.ndarray | None = None):
    """Calibrated arc band (raw rows ``rows``) -> (line geometry, wavelength solution) along the trace.

    ``aperture`` (rows) and ``search_shift`` (columns) are in the image's
    pixels; by default the recipe's values (unbinned pixels, right for a 1 x 1 frame).
    ``saturated`` (the band's saturated pixels) keeps flat-topped lines, whose
    centres are biased, out of the fit (binned pixels saturate sooner).
    """
    recipe = setup.recipe
    row0 = rows.start
    ap = recipe.aperture_half_width if aperture is None else aperture
    shift = recipe.search_shift if search_shift is None else search_shift
    geometry = _arc_geometry(arc_band, row0, trace, setup, half, fwhm_px, aperture=ap)
    # Only the aperture rows of the arc are needed for its spectrum.
    arc_spec = rectify(arc_band, row0, trace, geometry, ap, cval=0.0).sum(0)
    sat_cols = rectify(saturated.astype(np.float32), row0, trace, geometry, ap, cval=0.0).max(0) > 0 if saturated is not None else None
    lines = load_line_lists(setup.line_lists)
    solution = identify(arc_spec, nominal, lines, fwhm=fwhm_px, order=recipe.wavelength_order, search_shift=shift, search_scale=recipe.search_scale,
                        search_curvature=recipe.search_curvature, saturated=sat_cols)
    return geometry, solution


def _arc_geometry(arc_band: np.ndarray, row0: int, trace, setup: InstrumentSetup, half: int, fwhm_px: float, *, aperture: int | None = None) -> LineGeometry:
    """Measure line tilt/smile on the arc band from its strongest isolated lines."""
    ap = setup.recipe.aperture_half_width if aperture is None else aperture
    straight = rectify(arc_band, row0, trace, LineGeometry(), ap, cval=0.0)
    spec = straight.sum(0)
    # Peak positions are enough here: measure_line_geometry centroids each line itself.
    lines = find_arc_lines(spec, fwhm_px, fit=False)
    if len(lines) < 2:
        return LineGeometry()
    xs = np.array([l.x for l in lines])
    amp = np.array([l.amplitude for l in lines])
    sep = np.min(np.abs(xs[:, None] - xs[None, :]) + np.eye(len(xs)) * 1e9, axis=1)
    ok = (sep > 4 * fwhm_px) & (xs > 20) & (xs < arc_band.shape[1] - 20)
    idx = np.argsort(amp * ok)[::-1][: min(12, int(ok.sum()))]
    return measure_line_geometry(arc_band, row0, trace, xs[idx], half - 2, half_window=max(int(1.5 * fwhm_px), 4))


def _model_outliers(data: np.ndarray, variance: np.ndarray, ext, raw_row0: int, trace, geometry: LineGeometry, aperture: int, read_var: float, gain: float,
                    *, reject: float = 5.0, profile_error: float = 0.1) -> np.ndarray:
    """Raw pixels (rows ``raw_row0 ...`` of ``data``) standing ``reject`` sigma above the optimal extraction's model.

    The model is flux x spatial profile (+ sky) mapped back to raw pixels, so
    emission lines are part of it and never flagged; ``profile_error``
    (relative) spares a bright core that the smoothed profile matches only to
    a few per cent.
    """
    model = unrectify((ext.flux[None, :] * ext.profile).astype(np.float64), raw_row0, data.shape[0], trace, geometry, aperture)
    sky = (ext.sky / (2 * aperture + 1))[None, :]
    expected_var = read_var + np.maximum(model + sky, 0) / gain + (profile_error * model) ** 2
    with np.errstate(invalid="ignore"):
        return np.isfinite(model) & (data - sky - model > reject * np.sqrt(expected_var))


def _near_saturated(saturated: np.ndarray, margin: int = 3) -> np.ndarray:
    """Columns holding a saturated pixel, and ``margin`` columns either side."""
    from scipy import ndimage

    cols = saturated.any(axis=0)
    return ndimage.binary_dilation(cols, iterations=margin) if cols.any() else cols


def _site_name(hdr: dict, first: FrameInfo, options: Options) -> str:
    """BSS_SITE: the header's SITENAME; else the configured site's name when it was used; else coordinates or 'unknown'."""
    name = str(hdr.get("SITENAME", "") or hdr.get("OBSERVAT", "") or "").strip()
    if name:
        return name
    if first.site is not None:
        return f"lat {first.site[0]:.4f} lon {first.site[1]:.4f}"
    return options.site_name if options.site_configured and options.site_name else "unknown"


def _check_read_out(first: FrameInfo, sci, arcs, flats, biases, darks) -> None:
    """Every frame of a reduction read out like the first science frame (same binning, size and subframe)."""
    def read_out(f: FrameInfo) -> tuple:
        return (tuple(f.binning), tuple(f.shape), tuple(f.origin))

    want = read_out(first)
    for kind, group in (("science", sci), ("arc", arcs), ("flat", flats), ("bias", biases), ("dark", darks)):
        for f in group:
            if read_out(f) != want:
                raise ReductionError(
                    f"{Path(f.path).name} ({kind}) was read out {f.binning[0]}x{f.binning[1]} binned, {f.shape[1]}x{f.shape[0]} px, "
                    f"subframe origin {f.origin}; the science frame {Path(first.path).name} {first.binning[0]}x{first.binning[1]}, "
                    f"{first.shape[1]}x{first.shape[0]} px, origin {first.origin}: calibrations must be taken with the same binning and subframe")


def reduce_observation(plan: Plan, options: Options) -> dict:
    """Reduce one observation and write its products; return the quality record.

    Raises ReductionError (or another RosaceError) with a message for the observer.
    """
    t0 = time.perf_counter()
    sci = _infos(plan.science, options.instrument)
    if not sci:
        raise ReductionError("no science frame")
    first = sci[0]
    try:
        setup = load_instrument(options.instrument or first.instrument, tuple(options.instrument_search))
    except ConfigError as exc:
        if options.instrument:
            raise
        # Another capture program writes the camera's name in INSTRUME: say how to name the set-up.
        hint = (f"{Path(first.path).name} was written by {first.program or 'another capture program'}, whose INSTRUME is "
                f"the camera: name the set-up with `rosace reduce --instrument <set-up>`")
        raise ConfigError(exc.path, [*exc.problems, ("--instrument", hint)]) from None
    recipe = setup.recipe
    det = setup.detector
    arcs, flats, biases, darks = (_infos(group, options.instrument) for group in (plan.arc, plan.flat, plan.bias, plan.dark))
    if not arcs:
        raise ReductionError(f"no arc frame for {first.object} ({first.observation_id}): cannot calibrate wavelengths")
    _check_read_out(first, sci, arcs, flats, biases, darks)
    flags: list[str] = ["partial"] if plan.partial else []
    # Essential header values a frame does not give (frames of other capture programs): each is
    # a flag in the quality record and the FITS header (ROSFLAGS), never a silent default.
    missing = sorted({m for f in sci for m in f.missing})
    for m in missing:
        if m == "SITE":
            flags.append("missing:SITE" + (":configured_site_used" if options.site_configured else ""))
        elif m == "EXPTIME":
            flags.append("missing:EXPTIME:flux_per_exposure")
        else:
            flags.append(f"missing:{m}")
    # Provenance: the program that wrote the frames, and kinds not read from IMAGETYP alone.
    header_mapping = {"program": first.program or None, "missing": missing,
                      "kinds_from": {Path(f.path).name: f.kind_from for f in sci + arcs + flats + biases + darks if f.kind_from}}

    # The set-up's geometry and recipe are in unbinned detector pixels: brought
    # to this image's pixels (binning, subframe) once, here.
    ny, nx = first.shape
    layout = layout_of(det, first.shape, first.binning, first.origin)
    ap = layout.rows(recipe.aperture_half_width, minimum=2)
    sky_offset = max(layout.rows(recipe.sky_offset), ap + 1)
    sky_width = layout.rows(recipe.sky_width, minimum=3)
    if not (layout.x_known and layout.y_known):
        flags.append("subframe_origin_unknown")

    # Trace on the first science frame, roughly bias-subtracted: only the rows
    # the search can reach are read.
    if layout.y_known:
        guess = layout.image_row(setup.geometry.trace_row)
        search = min(layout.rows(400), ny // 2 - 10)
        win = slice(max(int(guess) - search - 40, 0), min(int(guess) + search + 40, ny))
        if win.stop - win.start < 20:
            raise ReductionError(f"{Path(first.path).name}: the set-up's trace row {setup.geometry.trace_row:.0f} (unbinned) is "
                                 f"outside this {ny}-row image ({layout.by}x binned, origin row {layout.y0}): wrong set-up or subframe")
    else:
        # A subframe that does not say where it was read: search all its rows.
        guess, search, win = None, None, slice(0, ny)
    raw_win = load_image(first.path, win)
    bias_level = float(np.median(load_image(biases[0].path, slice(win.start, win.start + 50)))) if biases else det.bias_level
    raw_win -= np.float32(bias_level)
    trace = find_trace(raw_win, order=recipe.trace_order, guess_row=None if guess is None else guess - win.start, search=search)
    del raw_win
    trace.coeffs = np.asarray(trace.coeffs, dtype=float).copy()
    trace.coeffs[0] += win.start
    half = sky_offset + sky_width + 1
    rows = band_rows(trace, half + 2, ny)
    row0 = rows.start
    # The set-up's content is part of the keys: an edited set-up file is not served old masters or solutions.
    setup_key = (setup.name, hashlib.sha256(setup.model_dump_json().encode()).hexdigest()[:16])
    masters = _cached(("masters", setup_key, _files_key(biases, darks, flats), rows.start, rows.stop),
                      lambda: build_masters(setup, rows, biases, darks, flats))
    if not flats:
        flags.append("no_flat")

    # Science: calibrate each exposure on the band, remove cosmic rays where
    # the star is extracted (the sky fit rejects the ones in the sky windows),
    # sum.
    use_cr = recipe.cosmic_rays if options.cosmic_rays is None else options.cosmic_rays
    cr_rows = band_rows(trace, ap + 3, ny, margin=4)
    cr_rows = slice(cr_rows.start - row0, cr_rows.stop - row0)
    data_sum = np.zeros((rows.stop - rows.start, nx), np.float32)
    var_sum = np.zeros_like(data_sum)
    sat_any = np.zeros(data_sum.shape, bool)
    cr_hits = np.zeros(data_sum.shape, np.float32)
    n_cr = 0
    exptime = 0.0
    for info in sci:
        data, var, sat = calibrate(load_image(info.path, rows), masters, setup, info.exptime, info.ccd_temp)
        if use_cr:
            # Hit pixels take the trace model's value in this exposure (the column's robust flux
            # x the profile: the optimal extraction would fill them no better). A pixel is masked
            # in the sum only when every exposure was hit there: masking the core of a sharp trace
            # left the column's flux to its wings (+50 % beside a track along the trace).
            clean, crmask = remove_cosmic_rays(data[cr_rows], setup, mask=sat[cr_rows])
            # Next to saturated columns the trace model (fitted without the saturated pixels) is
            # wrong: those columns are flagged saturated and left as they were read.
            near_sat = _near_saturated(sat[cr_rows])
            crmask &= ~near_sat[None, :]
            clean = np.where(near_sat[None, :], data[cr_rows], clean)
            data[cr_rows] = clean
            cr_hits[cr_rows] += crmask
            n_cr += int(crmask.sum())
        data_sum += data
        var_sum += var
        sat_any |= sat
        exptime += info.exptime
    cr_any = cr_hits >= max(len(sci), 2)

    # Arc: calibrated mean of the arc frames, geometry, rectified along the
    # star's trace, identified. The result depends only on the arc frames,
    # the masters and the trace, so a batch of observations sharing an arc
    # (several exposures, a monitoring series) solves it once per process.
    # Nominal wavelength of each image column (the set-up's solution is per unbinned
    # column), dispersion and line width in image columns, the search in image columns
    # (a subframe of unknown origin may lie anywhere along the dispersion).
    nominal = setup.nominal_wavelength(layout.unbinned_column(np.arange(nx)))
    disp_nom = abs(setup.dispersion.dispersion) * layout.bx
    fwhm_px = float(np.median(nominal) / setup.resolving_power / disp_nom)
    search_shift = layout.columns(recipe.search_shift)
    if not layout.x_known:
        search_shift += layout.columns(layout.x0)
    trace_key = tuple(np.round(trace.rows(np.array([0, nx // 2, nx - 1])), 1))
    arc_key = ("arc", setup_key, _files_key(arcs), _files_key(biases, darks, flats), rows.start, rows.stop, trace_key, ap, search_shift)
    geometry, solution = _cached(arc_key, lambda: _solve_arc(arcs, masters, setup, rows, trace, half, fwhm_px, nominal, aperture=ap, search_shift=search_shift))

    if solution.saturated_lines:
        flags.append(f"arc_saturated_lines:{solution.saturated_lines}" + (":used" if solution.saturated_used else ""))
    # Columns outside the span of the fitted arc lines carry extrapolated wavelengths.
    n_extra = int(solution.extrapolated(np.arange(nx)).sum())
    if n_extra:
        lo_a, hi_a = solution.to_dict()["valid_range_angstrom"]
        flags.append(f"wavelength_extrapolated:{n_extra}px:valid_{lo_a:.0f}-{hi_a:.0f}A")

    # Science rectified and extracted.
    band = rectify(data_sum, row0, trace, geometry, half)
    vband = rectify(var_sum, row0, trace, geometry, half)
    # Most frames have no saturated pixel: skip that resampling then.
    sband = rectify(sat_any.astype(np.float32), row0, trace, geometry, half, cval=0.0) > 0 if sat_any.any() else np.zeros(band.shape, bool)
    mask = ~np.isfinite(band) | sband
    if cr_any.any():
        mask |= rectify(cr_any.astype(np.float32), row0, trace, geometry, half, cval=0.0) > 0
    method = options.extraction or recipe.extraction
    read_var = len(sci) * (det.read_noise / det.gain) ** 2
    ext = extract(np.nan_to_num(band), np.nan_to_num(vband, nan=np.inf), mask, half, aperture=ap, sky_offset=sky_offset,
                  sky_width=sky_width, method=method, read_var=read_var, gain=det.gain, saturated=sband)
    if use_cr and ext.profile is not None:
        # L.A.Cosmic spares hits on the sharp stellar core (its objlim test), and
        # after rectification a hit is spread over 2-4 pixels that Horne's
        # one-per-pass rejection misses: compare the raw pixels with the
        # extraction's own 2D model instead, and extract again without them.
        extra = _model_outliers(data_sum[cr_rows], var_sum[cr_rows], ext, row0 + cr_rows.start, trace, geometry, ap, read_var, det.gain)
        extra &= ~_near_saturated(sat_any[cr_rows])[None, :]
        if extra.any():
            cr_any[cr_rows] |= extra
            n_cr += int(extra.sum())
            mask |= rectify(cr_any.astype(np.float32), row0, trace, geometry, half, cval=0.0) > 0
            ext = extract(np.nan_to_num(band), np.nan_to_num(vband, nan=np.inf), mask, half, aperture=ap, sky_offset=sky_offset,
                          sky_width=sky_width, method=method, read_var=read_var, gain=det.gain, saturated=sband)
    n_sat = int(ext.saturated.sum())
    if n_sat:
        flags.append(f"saturated_columns:{n_sat}")
    # Checks that catch a broken extraction (spikes, holes, masked stretches) before anything is
    # archived: a spectrum that fails them is graded fair or poor, never good.
    ap_rows = slice(half - ap, half + ap + 1)
    # Share of each aperture pixel's exposures that were interpolated (cosmic rays, masks), saturation apart.
    filled = rectify(np.minimum(cr_hits / len(sci) + cr_any, 1.0), row0, trace, geometry, half, cval=0.0) if cr_hits.any() else np.zeros(band.shape, np.float32)
    filled = np.where(mask & ~sband, 1.0, filled)[ap_rows]
    checks = check_spectrum(ext.flux, ext.variance, ext.raw, fwhm_px=fwhm_px, masked=filled,
                            profile=ext.profile if ext.profile is not None else np.ones(filled.shape), exclude=ext.saturated)
    flags.extend(checks.flags)

    # Wavelengths, counts per second per angstrom, linear resampling.
    x = np.arange(nx)
    wl = solution(x)
    disp = np.abs(solution.dispersion(x))
    # Per second when every exposure is known; a frame without one (flagged missing:EXPTIME)
    # leaves the flux per exposure (ADU/A), not per 1e-6 s.
    exposure_known = all(i.exptime > 0 for i in sci)
    per = exptime if exposure_known else float(len(sci))
    rate = ext.flux / per / disp
    rate_var = ext.variance / per**2 / disp**2
    if wl[0] > wl[-1]:
        wl, rate, rate_var = wl[::-1], rate[::-1], rate_var[::-1]
    lo = max(wl[0], setup.dispersion.wavelength_min - 50) if False else wl[0]
    step = float(np.median(disp))
    n_out = int(np.floor((wl[-1] - lo) / step)) + 1
    grid = lo + step * np.arange(n_out)
    flux = np.interp(grid, wl, rate)
    fvar = np.interp(grid, wl, rate_var)

    # Instrument response, extinction, tellurics.
    airmass = float(np.mean([i.airmass for i in sci if i.airmass])) if any(i.airmass for i in sci) else 1.0
    bunit = "adu / (s Angstrom)" if exposure_known else "adu / Angstrom"
    response_file = None
    response_record: dict = {"applied": False}
    tell_done = "none"
    ctx_ref = first.reference
    out_dir = Path(options.output_root) / _night(first.date_obs) / output.safe_name(first.object)
    jd_start = min(i.jd for i in sci)
    jd_mid = float(np.mean([i.jd + i.exptime / 2 / 86400 for i in sci]))
    base = f"{output.safe_name(first.object)}_{Time(jd_start, format='jd').datetime.strftime('%Y%m%d')}_{int((jd_start + 0.5) % 1 * 1000):03d}_{setup.name}"
    if ctx_ref:
        ref = find_reference(first.object, [Path(p) for p in options.reference_dirs])
        if ref is None:
            flags.append("reference_star_not_in_library")
        else:
            try:
                resp = compute_response(grid, flux, ref, airmass, resolution=float(np.median(grid)) / max(solution.resolving_power, 50), extinction=options.extinction)
                response_file = out_dir / f"{base}_response.npz"
                out_dir.mkdir(parents=True, exist_ok=True)
                np.savez(response_file, **resp.to_arrays(), star=np.array(ref.key))
                response_record = {"computed": True, "star": ref.key, "source": ref.source, "file": str(response_file)}
            except ResponseError as exc:
                flags.append(f"response_failed:{exc}")
    if plan.response and Path(plan.response).exists():
        with np.load(plan.response) as z:
            resp = Response(z["wavelength"], z["response"], z["telluric"], float(z["airmass"][0]), str(z["star"]))
        r = resp.at(grid)
        good = np.isfinite(r) & (r > 0)
        if good.sum() > 0.5 * len(grid):
            corr = extinction_factor(grid, airmass, options.extinction)
            with np.errstate(divide="ignore", invalid="ignore"):
                flux = np.where(good, flux * corr / r, np.nan)
                fvar = np.where(good, fvar * (corr / r) ** 2, np.nan)
            if options.telluric:
                t = resp.telluric_at(grid, airmass)
                flux, fvar = flux / t, fvar / t**2
                tell_done = f"reference star {resp.star} ratio scaled to airmass"
            bunit = "erg / (s cm2 Angstrom)"
            response_record = {**response_record, "applied": True, "from": plan.response, "star": resp.star}
            # Keep only the covered part of the spectrum.
            idx = np.nonzero(good)[0]
            grid, flux, fvar = grid[idx[0] : idx[-1] + 1], flux[idx[0] : idx[-1] + 1], fvar[idx[0] : idx[-1] + 1]
        else:
            flags.append("response_does_not_cover_spectrum")
    elif not ctx_ref:
        flags.append("no_response")

    # Barycentric correction: shift the wavelength axis (BSS_VHEL records it). Coordinates and
    # site come from the frame's header through the capture-program mapping (frames.py); what
    # it lacks is flagged, never silently defaulted.
    hdr = first.header
    vbary = 0.0
    ra, dec = first.ra, first.dec
    if first.site is not None:
        lat, lon, elev = first.site
    else:
        lat, lon, elev = options.latitude, options.longitude, options.elevation
    if options.barycentric and ra is not None and dec is not None and (first.site is not None or options.site_configured):
        vbary = barycentric_correction(float(ra), float(dec), jd_mid, lat, lon, elev)
        grid = grid * (1 + vbary / C_KMS)
    elif options.barycentric:
        flags.append("no_barycentric_correction")
    resolution_a = float(np.median(grid)) / max(solution.resolving_power, 50)
    do_norm = recipe.normalise if options.normalise is None else options.normalise
    if do_norm:
        norm = normalise(grid, np.nan_to_num(flux), resolution_a)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = norm / flux
        fvar = fvar * scale**2
        flux = norm
        bunit = ""
    ctx = {"wavelength": grid, "flux": flux, "variance": fvar, "setup": setup, "header": hdr, "flags": flags}
    steps_run: list[str] = []
    for ref in recipe.steps:
        step_obj = load_object(ref)()
        step_obj.run(ctx)
        step_name = str(getattr(step_obj, "name", "") or ref)
        steps_run.append(step_name)
        n = len(ctx["wavelength"])
        if n < 2 or len(ctx["flux"]) != n or len(ctx["variance"]) != n:
            raise ReductionError(f"custom step {step_name} ({ref}) left wavelength, flux and variance of different lengths (or fewer than 2 points)")
    grid = np.asarray(ctx["wavelength"], dtype=float)
    flux, fvar = np.asarray(ctx["flux"], dtype=float), np.asarray(ctx["variance"], dtype=float)
    # The output axis comes from the final wavelengths, after the custom steps (one may
    # shift or resample the axis). The FITS axis is linear: a step that leaves a
    # non-linear axis gets its spectrum resampled onto a linear one.
    wl0, dwl = float(grid[0]), float((grid[-1] - grid[0]) / (len(grid) - 1))
    linear = wl0 + dwl * np.arange(len(grid))
    if not (np.all(np.isfinite(grid)) and np.all(np.diff(grid) > 0)):
        raise ReductionError(f"custom steps {steps_run} left a wavelength axis that does not increase")
    if np.max(np.abs(grid - linear)) > 0.01 * dwl:
        flux, fvar = np.interp(linear, grid, flux), np.interp(linear, grid, fvar)
        flags.append("custom_step_axis_resampled")
    grid = linear

    grade = checks.grade
    if grade == "good" and any(f.split(":")[0] in GRADE_FAIR_FLAGS for f in flags):
        grade = "fair"
    snr_arr = flux / np.sqrt(fvar)
    snr = float(np.nanmedian(snr_arr[np.isfinite(snr_arr)])) if np.isfinite(snr_arr).any() else 0.0
    obs_id = plan.observation_id or first.observation_id or base
    observer = str(hdr.get("OBSERVER", "")).strip()[:68]
    campaign = str(hdr.get("ROSCAMP", "") or "").strip()
    keywords = {
        "OBJNAME": first.object,
        "OBJECT": first.object,
        "DATE-OBS": Time(jd_start, format="jd", scale="utc").isot,
        "EXPTIME": (float(exptime), "total exposure, s") if exposure_known else None,
        "OBSERVER": observer or "unknown",
        "BSS_INST": f"{hdr.get('TELESCOP', '')} + {setup.title or setup.name}".strip(" +")[:68],
        "BSS_SITE": _site_name(hdr, first, options)[:68],
        "BSS_VHEL": (round(vbary, 4), "barycentric correction applied, km/s"),
        "BSS_COSM": "astroscrappy (L.A.Cosmic)" if use_cr else "none",
        "BSS_NORM": "continuum spline" if do_norm else "none",
        "BSS_TELL": tell_done,
        "BSS_ITRP": (float(setup.resolving_power), "instrument resolving power"),
        "BSS_ESRP": (round(solution.resolving_power, 1), "measured resolving power (arc lines)"),
        "BSS_SRPW": (round(float(np.median([l["wavelength"] for l in solution.lines])), 1), "wavelength of BSS_ESRP"),
        "BSS_RA": float(ra) if ra is not None else None,
        "BSS_DEC": float(dec) if dec is not None else None,
        "JD-OBS": jd_start,
        "JD-MID": jd_mid,
        "GEO_LONG": float(lon) if first.site is not None or options.site_configured else None,
        "GEO_LAT": float(lat) if first.site is not None or options.site_configured else None,
        "GEO_ELEV": float(elev) if first.site is not None or options.site_configured else None,
        "AIRMASS": airmass,
        "BUNIT": bunit,
        "ROSOBSID": obs_id,
        # The campaign the sequencer took from the Observing File: the share upload sends it.
        "ROSCAMP": (campaign, "campaign id (share server)") if campaign else None,
        "ROSPIPE": output.pipeline_version(),
        "ROSSNR": (round(snr, 1), "median S/N per pixel"),
        "ROSWRMS": (round(solution.rms_angstrom, 4), "wavelength solution RMS, A"),
        "PARTIAL": (True, f"interrupted: {len(sci)} of {plan.partial.get('planned_frames') or '?'} science frames") if plan.partial else None,
        "ROSQUAL": (grade, "reduction quality: good, fair or poor"),
        # Value only (a comment would not fit beside 68 characters); every flag is in the JSON record.
        "ROSFLAGS": ",".join(flags)[:68] or "none",
    }
    fits_path = out_dir / f"{base}.fits"
    output.write_bess_fits(fits_path, wl0, dwl, flux, keywords, np.sqrt(fvar))
    png_path = out_dir / f"{base}.png"
    output.quicklook_png(png_path, grid, flux, f"{first.object}  {keywords['DATE-OBS'][:19]}  {setup.name}", bunit or "normalised flux", arc=solution.to_dict())
    record = {
        "id": output.safe_name(obs_id),
        "observation_id": obs_id,
        "object": first.object,
        "instrument": setup.name,
        "night": _night(first.date_obs),
        "date_obs": keywords["DATE-OBS"],
        "jd_mid": jd_mid,
        "exptime": exptime,
        "airmass": airmass,
        "reference_star": bool(ctx_ref),
        "campaign": campaign or None,
        "pipeline": output.pipeline_version(),
        "inputs_hash": plan.inputs_hash(),
        "raw_frames": [str(i.path) for i in sci],
        "calibrations": {"arc": [str(a.path) for a in arcs], **masters.used, "response": plan.response},
        "products": {"fits": str(fits_path), "png": str(png_path), "json": str(out_dir / f"{base}.json")},
        "quality": {
            "snr": snr,
            "wavelength_rms_angstrom": solution.rms_angstrom,
            "wavelength_rms_px": solution.rms_px,
            "arc_lines": solution.n_lines,
            "wavelength_valid_range_angstrom": solution.to_dict()["valid_range_angstrom"],
            "wavelength_extrapolated_px": n_extra,
            "resolving_power": solution.resolving_power,
            "trace": trace.to_dict(),
            "geometry": geometry.to_dict(),
            "cosmic_ray_pixels": n_cr,
            "saturated_columns": n_sat,
            "extraction": method,
            # In image rows (the recipe's unbinned rows divided by the binning).
            "window": {"aperture_half_width": ap, "sky_offset": sky_offset, "sky_width": sky_width},
            "layout": layout.to_dict(),
            "rejected_pixels": ext.rejected,
            "checks": checks.to_dict(),
            "grade": grade,
        },
        "wavelength_solution": solution.to_dict(),
        "response": response_record,
        "barycentric_kms": vbary,
        "flags": flags,
        "partial": dict(plan.partial, science_frames=len(sci)) if plan.partial else None,
        "header_mapping": header_mapping,
        "custom_steps": steps_run,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    output.write_json(out_dir / f"{base}.json", record)
    return record
