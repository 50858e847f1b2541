"""The reduction as a recipe of named stages over a typed :class:`State`.

A recipe is a list of stage names chosen by the set-up's ``kind``
(``longslit``; ``echelle`` is a skeleton whose order stages the user supplies;
``slitless`` has none yet). Each stage reads and changes the one
:class:`State` of the observation: the calibrated 2D science band, the trace,
the arc solution, the extracted 1D spectrum, the response, the quality record.
Users insert their own stages before or after a named one, or replace one::

    # the observatory configuration (every set-up), or a set-up's own [recipe]
    [reduction]
    stages = [{ use = "my_stages.py:MaskBadColumns", before = "trace" }]

or register one in Python with :func:`register_stage`. Every name a recipe
or a configuration gives is looked up by :func:`lookup_stage` alone.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
from astropy.time import Time
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from rosace_core.errors import ConfigError, RosaceError
from rosace_core.plugins import Registry, import_file, load_object, registry
from rosace_reduction import output
from rosace_reduction.calibration import build_masters, calibrate, remove_cosmic_rays
from rosace_reduction.extraction import check_spectrum, extract
from rosace_reduction.frames import FrameInfo, load_image
from rosace_reduction.geometry import band_rows, find_trace, rectify
from rosace_reduction.instrument import InstrumentSetup, Layout, find_instrument, layout_of, load_instrument
from rosace_reduction.pipeline import (
    C_KMS,
    GRADE_FAIR_FLAGS,
    Options,
    Plan,
    ReductionError,
    _cached,
    _check_read_out,
    _files_key,
    _infos,
    _model_outliers,
    _near_saturated,
    _night,
    _site_name,
    _solve_arc,
)
from rosace_reduction.response import (
    Response,
    ResponseError,
    barycentric_correction,
    compute_response,
    extinction_factor,
    find_reference,
    normalise,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: The stage that fills each optional field of the :class:`State` a later stage needs (see :meth:`State.need`).
FILLED_BY = {
    "layout": "the start of the reduction", "rows": "calibrate", "science": "calibrate", "science_variance": "calibrate",
    "saturated": "calibrate", "cosmic_rays": "calibrate", "cosmic_hits": "calibrate", "cosmic_rows": "calibrate",
    "trace": "trace", "geometry": "arc", "solution": "arc",
    "wavelength": "extraction", "flux": "extraction", "variance": "extraction", "record": "products",
}


@dataclass
class State:
    """Everything a reduction knows about one observation, filled in stage by stage.

    Arrays along the slit are the calibrated *band* of rows around the star
    (raw rows ``rows``); ``None`` means no stage has produced it yet.
    """

    plan: Plan
    options: Options
    setup: InstrumentSetup
    # Frames (headers read, data not) of each kind.
    science_frames: list[FrameInfo]
    arc_frames: list[FrameInfo]
    flat_frames: list[FrameInfo]
    bias_frames: list[FrameInfo]
    dark_frames: list[FrameInfo]
    setup_dir: Path | None = None  # the set-up file's folder
    #: Quality flags (strings) of the record and the FITS header (ROSFLAGS).
    flags: list[str] = field(default_factory=list)
    header_mapping: dict = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    # Where the image lies on the detector, and the extraction window in image rows.
    layout: Layout | None = None
    aperture: int = 0
    sky_offset: int = 0
    sky_width: int = 0
    half: int = 0
    # calibrate: masters, the raw rows of the band and the calibrated, cosmic-ray cleaned, summed science band.
    rows: slice | None = None
    masters: Any = None
    science: np.ndarray | None = None
    science_variance: np.ndarray | None = None
    saturated: np.ndarray | None = None
    cosmic_rays: np.ndarray | None = None  # pixels hit in every exposure (masked in the sum)
    cosmic_hits: np.ndarray | None = None  # per pixel, exposures hit
    cosmic_rows: slice | None = None  # band rows searched for cosmic rays
    cosmic_ray_pixels: int = 0
    cosmic_rays_searched: bool = False
    exptime: float = 0.0
    # trace, arc
    trace: Any = None
    geometry: Any = None
    solution: Any = None
    fwhm_px: float = 0.0
    wavelength_extrapolated_px: int = 0
    # extraction: the extraction (flux, variance, profile...), its checks, and the 1D spectrum
    # on a linear wavelength grid (A), counts per second per A until the response is applied.
    extraction: Any = None
    extraction_method: str = ""
    checks: Any = None
    saturated_columns: int = 0
    wavelength: np.ndarray | None = None
    flux: np.ndarray | None = None
    variance: np.ndarray | None = None
    bunit: str = "adu / (s Angstrom)"
    # Free room for the orders of an echelle, or a user stage's own results.
    extra: dict = field(default_factory=dict)
    # flux_calibration, telluric, barycentric, normalise
    airmass: float = 1.0
    response: Response | None = None
    response_record: dict = field(default_factory=lambda: {"applied": False})
    telluric: str = "none"
    barycentric_kms: float = 0.0
    normalised: bool = False
    # quality, products
    grade: str = ""
    snr: float = 0.0
    custom_steps: list[str] = field(default_factory=list)
    stages_run: list[str] = field(default_factory=list)
    record: "QualityRecord | None" = None

    def need(self, value: _T | None, name: str) -> _T:
        """``value`` (the field ``name`` of this state) when a stage has filled it, else a ReductionError.

        A stage placed before the stage that fills what it reads (a user's stage too
        early in the recipe, a replaced stage that left it empty) is told which.
        """
        if value is None:
            stage = self.stages_run[-1] if self.stages_run else "(none)"
            raise ReductionError(f"stage {stage} needs the {name}, which {FILLED_BY.get(name, 'an earlier stage')} fills, "
                                 f"and it is not there: check the order of the recipe's stages ({', '.join(self.stages_run)} ran)")
        return value

    @property
    def first(self) -> FrameInfo:
        return self.science_frames[0]

    @property
    def row0(self) -> int:
        return self.rows.start if self.rows is not None else 0

    @property
    def exposure_known(self) -> bool:
        return all(i.exptime > 0 for i in self.science_frames)

    @property
    def jd_start(self) -> float:
        return min(i.jd for i in self.science_frames)

    @property
    def jd_mid(self) -> float:
        return float(np.mean([i.jd + i.exptime / 2 / 86400 for i in self.science_frames]))

    @property
    def out_dir(self) -> Path:
        return Path(self.options.output_root) / _night(self.first.date_obs) / output.safe_name(self.first.object)

    @property
    def base(self) -> str:
        """File stem of the products: ``<object>_<YYYYMMDD>_<ddd>_<set-up>``."""
        jd = self.jd_start
        return (f"{output.safe_name(self.first.object)}_{Time(jd, format='jd').datetime.strftime('%Y%m%d')}_"
                f"{int((jd + 0.5) % 1 * 1000):03d}_{self.setup.name}")

    def set_spectrum(self, wavelength, flux, variance) -> None:
        """Replace the 1D spectrum (three arrays of the same length, at least 2 points)."""
        wavelength, flux, variance = (np.asarray(a, dtype=float) for a in (wavelength, flux, variance))
        if not (len(wavelength) == len(flux) == len(variance)) or len(wavelength) < 2:
            raise ReductionError(f"a 1D spectrum needs wavelength, flux and variance of one length (>= 2): got "
                                 f"{len(wavelength)}, {len(flux)}, {len(variance)}")
        self.wavelength, self.flux, self.variance = wavelength, flux, variance


@dataclass
class QualityRecord:
    """The quality and provenance record of one reduced observation (its ``.json`` product)."""

    id: str
    observation_id: str
    object: str
    instrument: str
    night: str
    date_obs: str
    jd_mid: float
    exptime: float
    airmass: float
    reference_star: bool
    campaign: str | None
    pipeline: str
    inputs_hash: str
    raw_frames: list[str]
    calibrations: dict
    products: dict
    quality: dict
    wavelength_solution: dict | None
    response: dict
    barycentric_kms: float
    flags: list[str]
    partial: dict | None
    header_mapping: dict
    custom_steps: list[str]
    stages: list[str]
    seconds: float

    def to_dict(self) -> dict:
        """The record as the JSON product and the REST API give it (keys in field order)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Stage:
    """One named stage of a recipe: ``run(state)`` reads and changes the :class:`State`."""

    name: str = "stage"

    def run(self, state: State) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class FunctionStage(Stage):
    """A plain function ``f(state)`` as a stage."""

    def __init__(self, name: str, function: Callable[[State], None]):
        self.name, self.function = name, function

    def run(self, state: State) -> None:
        self.function(state)


class NotImplementedStage(Stage):
    """The place of a stage the user must supply (an echelle's order tracing...)."""

    def __init__(self, name: str, what: str):
        self.name, self.what = name, what

    def run(self, state: State) -> None:  # refused before any stage runs (see build_recipe)
        raise ReductionError(f"stage {self.name} ({self.what}) is not implemented: supply it")


class LegacyStep(Stage):
    """A custom 1D step of today's ``[recipe] steps`` (``run(ctx)`` on a dict) as a stage after extraction."""

    def __init__(self, ref: str):
        self.ref = ref
        self.step = load_object(ref)()
        self.name = str(getattr(self.step, "name", "") or ref)

    def run(self, state: State) -> None:
        ctx: dict[str, Any] = {"wavelength": state.wavelength, "flux": state.flux, "variance": state.variance, "setup": state.setup,
               "header": state.first.header, "flags": state.flags}
        self.step.run(ctx)
        n = len(ctx["wavelength"])
        if n < 2 or len(ctx["flux"]) != n or len(ctx["variance"]) != n:
            raise ReductionError(f"custom step {self.name} ({self.ref}) left wavelength, flux and variance of different lengths (or fewer than 2 points)")
        state.set_spectrum(ctx["wavelength"], ctx["flux"], ctx["variance"])


# ---------------------------------------------------------------------------------------------
# The built-in stages.


class Calibrate(Stage):
    """Masters (bias, dark, flat) and the science exposures calibrated, cleaned of cosmic rays and summed.

    For a long slit only the band of rows around the star is read: a first
    trace on the bias-subtracted first frame says where it is (the ``trace``
    stage fits the trace again on the calibrated band).
    """

    name = "calibrate"

    def run(self, state: State) -> None:
        setup, recipe, first = state.setup, state.setup.recipe, state.first
        ny, nx = first.shape
        if setup.kind == "longslit":
            # The trace stage fits it again on the calibrated band.
            state.trace = rough = _locate(state)
            state.rows = band_rows(rough, state.half + 2, ny)
        else:
            rough = None
            state.rows = slice(0, ny)
        rows = state.rows
        # The set-up's content is part of the keys: an edited set-up file is not served old masters or solutions.
        state.masters = _cached(("masters", _setup_key(setup), _files_key(state.bias_frames, state.dark_frames, state.flat_frames), rows.start, rows.stop),
                                lambda: build_masters(setup, rows, state.bias_frames, state.dark_frames, state.flat_frames))
        if not state.flat_frames:
            state.flags.append("no_flat")
        # Cosmic rays are searched where the star is extracted (the sky fit rejects the ones in the
        # sky windows): around the trace, so only on a long slit.
        use_cr = (recipe.cosmic_rays if state.options.cosmic_rays is None else state.options.cosmic_rays) and rough is not None
        state.cosmic_rays_searched = bool(use_cr)
        if use_cr:
            cr_rows = band_rows(rough, state.aperture + 3, ny, margin=4)
            state.cosmic_rows = cr_rows = slice(cr_rows.start - rows.start, cr_rows.stop - rows.start)
        data_sum = np.zeros((rows.stop - rows.start, nx), np.float32)
        var_sum = np.zeros_like(data_sum)
        sat_any = np.zeros(data_sum.shape, bool)
        cr_hits = np.zeros(data_sum.shape, np.float32)
        for info in state.science_frames:
            data, var, sat = calibrate(load_image(info.path, rows), state.masters, setup, info.exptime, info.ccd_temp)
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
                data[cr_rows] = np.where(near_sat[None, :], data[cr_rows], clean)
                cr_hits[cr_rows] += crmask
                state.cosmic_ray_pixels += int(crmask.sum())
            data_sum += data
            var_sum += var
            sat_any |= sat
            state.exptime += info.exptime
        state.science, state.science_variance, state.saturated = data_sum, var_sum, sat_any
        state.cosmic_hits = cr_hits
        state.cosmic_rays = cr_hits >= max(len(state.science_frames), 2)


def _setup_key(setup: InstrumentSetup) -> tuple:
    return (setup.name, hashlib.sha256(setup.model_dump_json().encode()).hexdigest()[:16])


def _locate(state: State):
    """The star's trace on the first science frame, roughly bias-subtracted (only the rows the search can reach are read)."""
    setup, layout, first = state.setup, state.need(state.layout, "layout"), state.first
    ny = first.shape[0]
    trace_row = setup.geometry.trace_row
    if trace_row is None:  # the set-up's validator fills it; this is its default
        trace_row = setup.detector.ny / 2
    guess: float | None
    search: int | None
    if layout.y_known:
        guess = layout.image_row(trace_row)
        search = min(layout.rows(400), ny // 2 - 10)
        win = slice(max(int(guess) - search - 40, 0), min(int(guess) + search + 40, ny))
        if win.stop - win.start < 20:
            raise ReductionError(f"{Path(first.path).name}: the set-up's trace row {trace_row:.0f} (unbinned) is "
                                 f"outside this {ny}-row image ({layout.by}x binned, origin row {layout.y0}): wrong set-up or subframe")
    else:
        # A subframe that does not say where it was read: search all its rows.
        guess, search, win = None, None, slice(0, ny)
    raw_win = load_image(first.path, win)
    biases = state.bias_frames
    bias_level = float(np.median(load_image(biases[0].path, slice(win.start, win.start + 50)))) if biases else setup.detector.bias_level
    raw_win -= np.float32(bias_level)
    trace = find_trace(raw_win, order=setup.recipe.trace_order, guess_row=None if guess is None else guess - win.start, search=search)
    trace.coeffs = np.asarray(trace.coeffs, dtype=float).copy()
    trace.coeffs[0] += win.start
    return trace


class TraceStage(Stage):
    """The star's trace (polynomial of ``trace_order``) fitted on the calibrated science band, in raw rows.

    It starts from the trace ``calibrate`` located on the raw first frame.
    """

    name = "trace"

    def run(self, state: State) -> None:
        band = np.nan_to_num(state.need(state.science, "science"))
        nx = band.shape[1]
        guess = float(state.trace.rows(np.array([nx // 2]))[0]) - state.row0 if state.trace is not None else (band.shape[0] - 1) / 2
        trace = find_trace(band, order=state.setup.recipe.trace_order, guess_row=guess, search=state.aperture + 3)
        trace.coeffs = np.asarray(trace.coeffs, dtype=float).copy()
        trace.coeffs[0] += state.row0
        state.trace = trace


class ArcStage(Stage):
    """Wavelength solution: calibrated arcs, line tilt and smile, lines identified along the trace.

    The result depends only on the arc frames, the masters and the trace, so
    a batch of observations sharing an arc solves it once per process.
    """

    name = "arc"

    def run(self, state: State) -> None:
        setup, layout, recipe = state.setup, state.need(state.layout, "layout"), state.setup.recipe
        nx = state.first.shape[1]
        # Nominal wavelength of each image column (the set-up's solution is per unbinned column), dispersion
        # and line width in image columns, the search in image columns (a subframe of unknown origin may lie
        # anywhere along the dispersion).
        nominal = setup.nominal_wavelength(layout.unbinned_column(np.arange(nx)))
        disp_nom = abs(setup.dispersion.dispersion) * layout.bx
        state.fwhm_px = fwhm_px = float(np.median(nominal) / setup.resolving_power / disp_nom)
        search_shift = layout.columns(recipe.search_shift)
        if not layout.x_known:
            search_shift += layout.columns(layout.x0)
        trace, rows, ap = state.need(state.trace, "trace"), state.need(state.rows, "rows"), state.aperture
        trace_key = tuple(np.round(trace.rows(np.array([0, nx // 2, nx - 1])), 1))
        key = ("arc", _setup_key(setup), _files_key(state.arc_frames), _files_key(state.bias_frames, state.dark_frames, state.flat_frames),
               rows.start, rows.stop, trace_key, ap, search_shift)
        state.geometry, state.solution = _cached(key, lambda: _solve_arc(state.arc_frames, state.masters, setup, rows, trace, state.half, fwhm_px,
                                                                          nominal, aperture=ap, search_shift=search_shift))
        solution = state.solution
        if solution.saturated_lines:
            state.flags.append(f"arc_saturated_lines:{solution.saturated_lines}" + (":used" if solution.saturated_used else ""))
        # Columns outside the span of the fitted arc lines carry extrapolated wavelengths.
        state.wavelength_extrapolated_px = n_extra = int(solution.extrapolated(np.arange(nx)).sum())
        if n_extra:
            lo_a, hi_a = solution.to_dict()["valid_range_angstrom"]
            state.flags.append(f"wavelength_extrapolated:{n_extra}px:valid_{lo_a:.0f}-{hi_a:.0f}A")


class Extraction(Stage):
    """Band rectified along the trace and the arc lines, optimal or boxcar extraction, its checks, linear wavelength grid."""

    name = "extraction"

    def run(self, state: State) -> None:
        setup, det = state.setup, state.setup.detector
        trace, geometry, half, ap, row0 = state.trace, state.geometry, state.half, state.aperture, state.row0
        data_sum, var_sum = state.need(state.science, "science"), state.need(state.science_variance, "science_variance")
        sat_any, cr_any = state.need(state.saturated, "saturated"), state.need(state.cosmic_rays, "cosmic_rays")
        n_sci = len(state.science_frames)
        band = rectify(data_sum, row0, trace, geometry, half)
        vband = rectify(var_sum, row0, trace, geometry, half)
        # Most frames have no saturated pixel: skip that resampling then.
        sband = rectify(sat_any.astype(np.float32), row0, trace, geometry, half, cval=0.0) > 0 if sat_any.any() else np.zeros(band.shape, bool)
        mask = ~np.isfinite(band) | sband
        if cr_any.any():
            mask |= rectify(cr_any.astype(np.float32), row0, trace, geometry, half, cval=0.0) > 0
        state.extraction_method = method = state.options.extraction or setup.recipe.extraction
        read_var = n_sci * (det.read_noise / det.gain) ** 2
        window: dict[str, Any] = dict(aperture=ap, sky_offset=state.sky_offset, sky_width=state.sky_width, method=method, read_var=read_var, gain=det.gain, saturated=sband)
        ext = extract(np.nan_to_num(band), np.nan_to_num(vband, nan=np.inf), mask, half, **window)
        if state.cosmic_rays_searched and ext.profile is not None:
            # L.A.Cosmic spares hits on the sharp stellar core (its objlim test), and after rectification a hit is
            # spread over 2-4 pixels that Horne's one-per-pass rejection misses: compare the raw pixels with the
            # extraction's own 2D model instead, and extract again without them.
            cr_rows = state.need(state.cosmic_rows, "cosmic_rows")
            extra = _model_outliers(data_sum[cr_rows], var_sum[cr_rows], ext, row0 + cr_rows.start, trace, geometry, ap, read_var, det.gain)
            extra &= ~_near_saturated(sat_any[cr_rows])[None, :]
            if extra.any():
                cr_any[cr_rows] |= extra
                state.cosmic_ray_pixels += int(extra.sum())
                mask |= rectify(cr_any.astype(np.float32), row0, trace, geometry, half, cval=0.0) > 0
                ext = extract(np.nan_to_num(band), np.nan_to_num(vband, nan=np.inf), mask, half, **window)
        state.extraction = ext
        state.saturated_columns = n_sat = int(ext.saturated.sum())
        if n_sat:
            state.flags.append(f"saturated_columns:{n_sat}")
        # Checks that catch a broken extraction (spikes, holes, masked stretches) before anything is
        # archived: a spectrum that fails them is graded fair or poor, never good.
        ap_rows = slice(half - ap, half + ap + 1)
        # Share of each aperture pixel's exposures that were interpolated (cosmic rays, masks), saturation apart.
        cr_hits = state.need(state.cosmic_hits, "cosmic_hits")
        filled = rectify(np.minimum(cr_hits / n_sci + cr_any, 1.0), row0, trace, geometry, half, cval=0.0) if cr_hits.any() else np.zeros(band.shape, np.float32)
        filled = np.where(mask & ~sband, 1.0, filled)[ap_rows]
        if ext.raw is None:  # extract() always gives it
            raise ReductionError("the extraction gave no raw boxcar sum to check the spectrum against")
        state.checks = check_spectrum(ext.flux, ext.variance, ext.raw, fwhm_px=state.fwhm_px, masked=filled,
                                      profile=ext.profile if ext.profile is not None else np.ones(filled.shape), exclude=ext.saturated)
        state.flags.extend(state.checks.flags)

        # Wavelengths, counts per second per angstrom, linear resampling. Per second when every exposure is
        # known; a frame without one (flagged missing:EXPTIME) leaves the flux per exposure (ADU/A), not per 1e-6 s.
        x = np.arange(len(ext.flux))
        solution = state.need(state.solution, "solution")
        wl = solution(x)
        disp = np.abs(solution.dispersion(x))
        per = state.exptime if state.exposure_known else float(n_sci)
        rate = ext.flux / per / disp
        rate_var = ext.variance / per**2 / disp**2
        if wl[0] > wl[-1]:
            wl, rate, rate_var = wl[::-1], rate[::-1], rate_var[::-1]
        step = float(np.median(disp))
        grid = wl[0] + step * np.arange(int(np.floor((wl[-1] - wl[0]) / step)) + 1)
        state.set_spectrum(grid, np.interp(grid, wl, rate), np.interp(grid, wl, rate_var))
        state.bunit = "adu / (s Angstrom)" if state.exposure_known else "adu / Angstrom"


class FluxCalibration(Stage):
    """Response: computed from a reference star of the night (``ROSREF``), applied with the site's extinction to the others."""

    name = "flux_calibration"

    def run(self, state: State) -> None:
        options, first, plan = state.options, state.first, state.plan
        grid, flux, fvar = state.need(state.wavelength, "wavelength"), state.need(state.flux, "flux"), state.need(state.variance, "variance")
        if first.reference:
            ref = find_reference(first.object, [Path(p) for p in options.reference_dirs])
            if ref is None:
                state.flags.append("reference_star_not_in_library")
            else:
                try:
                    resolving_power = state.solution.resolving_power if state.solution is not None else state.setup.resolving_power
                    resp = compute_response(grid, flux, ref, state.airmass, resolution=float(np.median(grid)) / max(resolving_power, 50),
                                            extinction=options.extinction)
                    response_file = state.out_dir / f"{state.base}_response.npz"
                    state.out_dir.mkdir(parents=True, exist_ok=True)
                    np.savez(response_file, **resp.to_arrays(), star=np.array(ref.key))
                    state.response_record = {"computed": True, "star": ref.key, "source": ref.source, "file": str(response_file)}
                except ResponseError as exc:
                    state.flags.append(f"response_failed:{exc}")
        if plan.response and Path(plan.response).exists():
            with np.load(plan.response) as z:
                resp = Response(z["wavelength"], z["response"], z["telluric"], float(z["airmass"][0]), str(z["star"]))
            r = resp.at(grid)
            good = np.isfinite(r) & (r > 0)
            if good.sum() > 0.5 * len(grid):
                corr = extinction_factor(grid, state.airmass, options.extinction)
                with np.errstate(divide="ignore", invalid="ignore"):
                    flux = np.where(good, flux * corr / r, np.nan)
                    fvar = np.where(good, fvar * (corr / r) ** 2, np.nan)
                state.bunit = "erg / (s cm2 Angstrom)"
                state.response = resp
                state.response_record = {**state.response_record, "applied": True, "from": plan.response, "star": resp.star}
                # Keep only the covered part of the spectrum.
                idx = np.nonzero(good)[0]
                state.set_spectrum(grid[idx[0]: idx[-1] + 1], flux[idx[0]: idx[-1] + 1], fvar[idx[0]: idx[-1] + 1])
            else:
                state.flags.append("response_does_not_cover_spectrum")
        elif not first.reference:
            state.flags.append("no_response")


class Telluric(Stage):
    """Telluric bands divided by the reference star's ratio scaled to the airmass (when a response was applied)."""

    name = "telluric"

    def run(self, state: State) -> None:
        if state.response is None or not state.options.telluric:
            return
        t = state.response.telluric_at(state.need(state.wavelength, "wavelength"), state.airmass)
        state.flux, state.variance = state.need(state.flux, "flux") / t, state.need(state.variance, "variance") / t**2
        state.telluric = f"reference star {state.response.star} ratio scaled to airmass"


class Barycentric(Stage):
    """Barycentric correction: the wavelength axis shifted (BSS_VHEL records it).

    Coordinates and site come from the frame's header through the
    capture-program mapping (frames.py); what it lacks is flagged, never
    silently defaulted.
    """

    name = "barycentric"

    def run(self, state: State) -> None:
        first, options = state.first, state.options
        if not options.barycentric:
            return
        lat, lon, elev = _site(state)
        if first.ra is not None and first.dec is not None and (first.site is not None or options.site_configured):
            state.barycentric_kms = barycentric_correction(float(first.ra), float(first.dec), state.jd_mid, lat, lon, elev)
            state.wavelength = state.need(state.wavelength, "wavelength") * (1 + state.barycentric_kms / C_KMS)
        else:
            state.flags.append("no_barycentric_correction")


def _site(state: State) -> tuple[float, float, float]:
    if state.first.site is not None:
        return state.first.site
    return state.options.latitude, state.options.longitude, state.options.elevation


class Normalise(Stage):
    """Continuum normalisation (a spline through the continuum) when the recipe or the options ask for it."""

    name = "normalise"

    def run(self, state: State) -> None:
        do_norm = state.setup.recipe.normalise if state.options.normalise is None else state.options.normalise
        if not do_norm:
            return
        resolving_power = state.solution.resolving_power if state.solution is not None else state.setup.resolving_power
        wavelength, flux = state.need(state.wavelength, "wavelength"), state.need(state.flux, "flux")
        resolution_a = float(np.median(wavelength)) / max(resolving_power, 50)
        norm = normalise(wavelength, np.nan_to_num(flux), resolution_a)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = norm / flux
        state.variance = state.need(state.variance, "variance") * scale**2
        state.flux = norm
        state.bunit = ""
        state.normalised = True


class Quality(Stage):
    """The final axis made linear (a stage may shift or resample it), the grade and the S/N."""

    name = "quality"

    def run(self, state: State) -> None:
        grid, flux, fvar = state.need(state.wavelength, "wavelength"), state.need(state.flux, "flux"), state.need(state.variance, "variance")
        if not (np.all(np.isfinite(grid)) and np.all(np.diff(grid) > 0)):
            raise ReductionError(f"stages {state.custom_steps} left a wavelength axis that does not increase")
        # The FITS axis is linear: a stage that leaves a non-linear axis gets its spectrum resampled onto a linear one.
        wl0, dwl = float(grid[0]), float((grid[-1] - grid[0]) / (len(grid) - 1))
        linear = wl0 + dwl * np.arange(len(grid))
        if np.max(np.abs(grid - linear)) > 0.01 * dwl:
            flux, fvar = np.interp(linear, grid, flux), np.interp(linear, grid, fvar)
            state.flags.append("custom_step_axis_resampled")
        state.set_spectrum(linear, flux, fvar)
        if state.checks is not None:
            grade = state.checks.grade
        else:
            # A recipe without the long-slit extraction (an echelle's own stages) has no extraction checks.
            grade = "fair"
            state.flags.append("no_extraction_checks")
        if grade == "good" and any(f.split(":")[0] in GRADE_FAIR_FLAGS for f in state.flags):
            grade = "fair"
        state.grade = grade
        snr = state.need(state.flux, "flux") / np.sqrt(state.need(state.variance, "variance"))
        state.snr = float(np.nanmedian(snr[np.isfinite(snr)])) if np.isfinite(snr).any() else 0.0


class Products(Stage):
    """The BeSS FITS spectrum, the quick-look PNG and the JSON quality record."""

    name = "products"

    def run(self, state: State) -> None:
        first, plan, options, setup, solution = state.first, state.plan, state.options, state.setup, state.solution
        hdr = first.header
        n_sci = len(state.science_frames)
        grid, flux, fvar = state.need(state.wavelength, "wavelength"), state.need(state.flux, "flux"), state.need(state.variance, "variance")
        wl0, dwl = float(grid[0]), float((grid[-1] - grid[0]) / (len(grid) - 1))
        lat, lon, elev = _site(state)
        site_known = first.site is not None or options.site_configured
        ra, dec = first.ra, first.dec
        obs_id = plan.observation_id or first.observation_id or state.base
        observer = str(hdr.get("OBSERVER", "")).strip()[:68]
        campaign = str(hdr.get("ROSCAMP", "") or "").strip()
        arc = solution.to_dict() if solution is not None else None
        keywords = {
            "OBJNAME": first.object,
            "OBJECT": first.object,
            "DATE-OBS": Time(state.jd_start, format="jd", scale="utc").isot,
            "EXPTIME": (float(state.exptime), "total exposure, s") if state.exposure_known else None,
            "OBSERVER": observer or "unknown",
            "BSS_INST": f"{hdr.get('TELESCOP', '')} + {setup.title or setup.name}".strip(" +")[:68],
            "BSS_SITE": _site_name(hdr, first, options)[:68],
            "BSS_VHEL": (round(state.barycentric_kms, 4), "barycentric correction applied, km/s"),
            "BSS_COSM": "astroscrappy (L.A.Cosmic)" if state.cosmic_rays_searched else "none",
            "BSS_NORM": "continuum spline" if state.normalised else "none",
            "BSS_TELL": state.telluric,
            "BSS_ITRP": (float(setup.resolving_power), "instrument resolving power"),
            "BSS_ESRP": (round(solution.resolving_power, 1), "measured resolving power (arc lines)") if solution is not None else None,
            "BSS_SRPW": (round(float(np.median([line["wavelength"] for line in solution.lines])), 1), "wavelength of BSS_ESRP") if solution is not None else None,
            "BSS_RA": float(ra) if ra is not None else None,
            "BSS_DEC": float(dec) if dec is not None else None,
            "JD-OBS": state.jd_start,
            "JD-MID": state.jd_mid,
            "GEO_LONG": float(lon) if site_known else None,
            "GEO_LAT": float(lat) if site_known else None,
            "GEO_ELEV": float(elev) if site_known else None,
            "AIRMASS": state.airmass,
            "BUNIT": state.bunit,
            "ROSOBSID": obs_id,
            # The campaign the sequencer took from the Observing File: the share upload sends it.
            "ROSCAMP": (campaign, "campaign id (share server)") if campaign else None,
            "ROSPIPE": output.pipeline_version(),
            "ROSSNR": (round(state.snr, 1), "median S/N per pixel"),
            "ROSWRMS": (round(solution.rms_angstrom, 4), "wavelength solution RMS, A") if solution is not None else None,
            "PARTIAL": (True, f"interrupted: {n_sci} of {plan.partial.get('planned_frames') or '?'} science frames") if plan.partial else None,
            "ROSQUAL": (state.grade, "reduction quality: good, fair or poor"),
            # Value only (a comment would not fit beside 68 characters); every flag is in the JSON record.
            "ROSFLAGS": ",".join(state.flags)[:68] or "none",
        }
        out_dir, base = state.out_dir, state.base
        fits_path = out_dir / f"{base}.fits"
        output.write_bess_fits(fits_path, wl0, dwl, flux, keywords, np.sqrt(fvar))
        png_path = out_dir / f"{base}.png"
        output.quicklook_png(png_path, grid, flux, f"{first.object}  {keywords['DATE-OBS'][:19]}  {setup.name}", state.bunit or "normalised flux", arc=arc)
        state.record = QualityRecord(
            id=output.safe_name(obs_id),
            observation_id=obs_id,
            object=first.object,
            instrument=setup.name,
            night=_night(first.date_obs),
            date_obs=keywords["DATE-OBS"],
            jd_mid=state.jd_mid,
            exptime=state.exptime,
            airmass=state.airmass,
            reference_star=bool(first.reference),
            campaign=campaign or None,
            pipeline=output.pipeline_version(),
            inputs_hash=plan.inputs_hash(),
            raw_frames=[str(i.path) for i in state.science_frames],
            calibrations={"arc": [str(a.path) for a in state.arc_frames], **(state.masters.used if state.masters is not None else {}), "response": plan.response},
            products={"fits": str(fits_path), "png": str(png_path), "json": str(out_dir / f"{base}.json")},
            quality={
                "snr": state.snr,
                "wavelength_rms_angstrom": solution.rms_angstrom if solution is not None else None,
                "wavelength_rms_px": solution.rms_px if solution is not None else None,
                "arc_lines": solution.n_lines if solution is not None else None,
                "wavelength_valid_range_angstrom": arc["valid_range_angstrom"] if arc is not None else None,
                "wavelength_extrapolated_px": state.wavelength_extrapolated_px,
                "resolving_power": solution.resolving_power if solution is not None else None,
                "trace": state.trace.to_dict() if hasattr(state.trace, "to_dict") else None,
                "geometry": state.geometry.to_dict() if hasattr(state.geometry, "to_dict") else None,
                "cosmic_ray_pixels": state.cosmic_ray_pixels,
                "saturated_columns": state.saturated_columns,
                "extraction": state.extraction_method or None,
                # In image rows (the recipe's unbinned rows divided by the binning).
                "window": {"aperture_half_width": state.aperture, "sky_offset": state.sky_offset, "sky_width": state.sky_width},
                "layout": state.need(state.layout, "layout").to_dict(),
                "rejected_pixels": getattr(state.extraction, "rejected", None),
                "checks": state.checks.to_dict() if state.checks is not None else None,
                "grade": state.grade,
            },
            wavelength_solution=arc,
            response=state.response_record,
            barycentric_kms=state.barycentric_kms,
            flags=state.flags,
            partial=dict(plan.partial, science_frames=n_sci) if plan.partial else None,
            header_mapping=state.header_mapping,
            custom_steps=state.custom_steps,
            stages=state.stages_run,
            seconds=round(time.perf_counter() - state.started, 3),
        )
        output.write_json(out_dir / f"{base}.json", state.record.to_dict())


# ---------------------------------------------------------------------------------------------
# Registry and recipes.

#: Stages live in ROSACE's one plug-in registry (kind ``reduction.stage``): the built-ins
#: below, installed packages' ``rosace.reduction.stage`` entry points (loaded on first
#: lookup) and :func:`register_stage`. A module attribute so that tests can swap in a copy.
REGISTRY: Registry = registry
KIND = "reduction.stage"
_REGISTERED_BY_CODE = "register_stage()"
_entry_points_loaded = False


def _is_users(name: str) -> bool:
    """A stage that is not ROSACE's own (its failures become a ReductionError naming it)."""
    return (KIND, name) in REGISTRY and REGISTRY.entry(KIND, name).origin != "builtin"


def _load_entry_points() -> None:
    global _entry_points_loaded
    if not _entry_points_loaded:
        _entry_points_loaded = True
        for name, error in REGISTRY.load_entry_points(KIND).items():
            log.warning("reduction stage %s from an installed package cannot be used: %s", name, error)

#: The recipe of each instrument kind; None for a kind that has none yet.
RECIPES: dict[str, list[str] | None] = {
    "longslit": ["calibrate", "trace", "arc", "extraction", "flux_calibration", "telluric", "barycentric", "normalise", "quality", "products"],
    # A skeleton: the order stages are the user's (see examples/echelle).
    "echelle": ["calibrate", "order_trace", "order_extraction", "merge", "flux_calibration", "telluric", "barycentric", "normalise", "quality", "products"],
    "slitless": None,
}

#: Where today's custom 1D steps (``[recipe] steps``) run: on the final spectrum, before its quality.
LEGACY_STEPS_BEFORE = "quality"


def register_stage(name: str, obj: Any) -> None:
    """Register a stage under ``name``: a :class:`Stage` subclass, an instance, or a function ``f(state)``.

    A recipe names its stages: registering ``"trace"`` replaces the built-in
    trace for every recipe, registering ``"order_trace"`` supplies the
    echelle skeleton's. The registry is per process: a batch with worker
    processes (``[reduction] workers``) sees only stages named in the
    configuration (``stages = [...]``), which every worker loads.
    """
    if not name or not isinstance(name, str):
        raise ValueError("a stage needs a name")
    if (KIND, name) in REGISTRY and REGISTRY.entry(KIND, name).source == _REGISTERED_BY_CODE:
        REGISTRY.unregister(KIND, name)  # registering again from code replaces one's own stage
    REGISTRY.register(KIND, name, obj, origin="file", source=_REGISTERED_BY_CODE)


def lookup_stage(ref: str) -> Any:
    """The stage object a name or reference stands for (the ONE lookup of stage names).

    ``ref`` is a registered name (built-in or :func:`register_stage`), a
    user file ``path/to/file.py:Class``, or ``package.module:Class``.
    Raises LookupError with a message when it cannot be found.
    """
    _load_entry_points()
    if (KIND, ref) in REGISTRY:
        return REGISTRY.get(KIND, ref)
    file, sep, attr = ref.rpartition(":")
    if sep and file.lower().endswith(".py"):
        path = Path(file).expanduser()
        if not path.exists():
            raise LookupError(f"{path} not found")
        module = import_file(path, f"rosace_user_stages_{path.stem}")
        try:
            return getattr(module, attr)
        except AttributeError:
            raise LookupError(f"{path} has no {attr!r}") from None
    if ":" not in ref:
        raise LookupError(f"unknown stage {ref!r}; registered: {', '.join(REGISTRY.names(KIND))}")
    try:
        return load_object(ref)
    except (ImportError, AttributeError) as exc:
        raise LookupError(f"cannot import {ref}: {exc}") from None


def make_stage(obj: Any, name: str | None = None) -> Stage:
    """A runnable stage from what :func:`lookup_stage` found (a class is instantiated, a function wrapped),
    named ``name`` when given (a registered object is copied, not renamed)."""
    created = isinstance(obj, type)
    if created:
        obj = obj()
    if hasattr(obj, "run") and callable(obj.run):
        if name and getattr(obj, "name", None) != name:
            obj = obj if created else copy.copy(obj)
            obj.name = name
        if not getattr(obj, "name", None):
            raise ValueError(f"stage {obj!r} has no name")
        return obj
    if callable(obj):
        return FunctionStage(name or str(getattr(obj, "__name__", "stage")), obj)
    raise ValueError(f"{obj!r} is not a stage (a class or object with run(state), or a function of the state)")


class StageSpec(BaseModel):
    """One user stage of a configuration: ``{ use = "...", before|after|replace = "<stage>" }``."""

    model_config = ConfigDict(extra="forbid")

    use: str
    before: str | None = None
    after: str | None = None
    replace: str | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _one_place(self) -> "StageSpec":
        if sum(x is not None for x in (self.before, self.after, self.replace)) != 1:
            raise ValueError("give exactly one of before, after or replace (the name of a stage of the recipe)")
        return self


def parse_specs(specs: list, where: str, source: Any) -> list[StageSpec]:
    """Validate a list of stage tables; ConfigError names ``where[i].key`` of a wrong one."""
    parsed = []
    for i, spec in enumerate(specs or []):
        try:
            parsed.append(spec if isinstance(spec, StageSpec) else StageSpec.model_validate(spec))
        except ValidationError as exc:
            raise ConfigError(source, [(f"{where}[{i}]" + "".join(f".{p}" for p in e["loc"]), e["msg"]) for e in exc.errors()]) from None
    return parsed


def build_recipe(setup: InstrumentSetup, options: Options, setup_dir: Path | None = None) -> list[Stage]:
    """The stages of a set-up's recipe (by its ``kind``) with the user's stages in place.

    User stages come from the set-up's ``[recipe] stages`` and the
    configuration's ``[reduction] stages`` (both ``{use, before|after|replace}``),
    today's 1D ``[recipe] steps`` run before ``quality``. Raises ConfigError
    naming the entry that cannot be placed or loaded, and ReductionError for a
    kind without a recipe or a skeleton whose stages were not supplied. A
    relative ``file.py:Class`` of the set-up is taken from ``setup_dir`` (the
    set-up file's folder).
    """
    return [stage for stage, _ in _plan_recipe(setup, options, setup_dir)]


def _plan_recipe(setup: InstrumentSetup, options: Options, setup_dir: Path | None = None) -> list[tuple[Stage, bool]]:
    """(stage, True when it is the user's) in recipe order; see :func:`build_recipe`."""
    kind = setup.kind
    if kind not in RECIPES:
        raise ConfigError(setup.name, [("kind", f"unknown instrument kind {kind!r}; known: {', '.join(RECIPES)}")])
    names = RECIPES[kind]
    if names is None:
        raise ReductionError(f"{kind} reduction is not implemented yet (set-up {setup.name}): there is no recipe of stages for kind {kind!r}")
    # (name, the user's stage object, or None for a name the registry resolves)
    plan: list[tuple[str, Stage | None]] = [(n, None) for n in names]
    last_after: dict[str, str] = {}

    def index(anchor: str, where: str, source) -> int:
        for i, (n, _) in enumerate(plan):
            if n == anchor:
                return i
        raise ConfigError(source, [(where, f"no stage {anchor!r} in the {kind} recipe; its stages: {', '.join(n for n, _ in plan)}")])

    sources = [("recipe.stages", setup.name, getattr(setup.recipe, "stages", None) or []),
               ("reduction.stages", "configuration", options.stages)]
    for key, source, raw in sources:
        for i, spec in enumerate(parse_specs(raw, key, source)):
            where = f"{key}[{i}]"
            use = spec.use
            file, sep, attr = use.rpartition(":")
            if key == "recipe.stages" and setup_dir is not None and sep and file.lower().endswith(".py") and not Path(file).expanduser().is_absolute():
                use = f"{setup_dir / file}:{attr}"
            try:
                stage = make_stage(lookup_stage(use), spec.name)
            except Exception as exc:  # a user's file or class: say which entry, never a traceback
                raise ConfigError(source, [(f"{where}.use", f"cannot load stage {spec.use!r}: {exc.__class__.__name__}: {exc}")]) from None
            if spec.replace is not None:
                plan[index(spec.replace, f"{where}.replace", source)] = (stage.name, stage)
            elif spec.before is not None:
                plan.insert(index(spec.before, f"{where}.before", source), (stage.name, stage))
            elif spec.after is not None:  # StageSpec holds exactly one of before, after, replace
                # Several stages after one keep their order.
                plan.insert(index(last_after.get(spec.after, spec.after), f"{where}.after", source) + 1, (stage.name, stage))
                last_after[spec.after] = stage.name
    for ref in setup.recipe.steps:
        try:
            step = LegacyStep(ref)
        except Exception as exc:
            raise ConfigError(setup.name, [("recipe.steps", f"cannot load custom step {ref!r}: {exc.__class__.__name__}: {exc}")]) from None
        plan.insert(index(LEGACY_STEPS_BEFORE, "recipe.steps", setup.name), (step.name, step))

    stages: list[tuple[Stage, bool]] = []
    for name, obj in plan:
        if obj is not None:
            stages.append((obj, True))
            continue
        try:
            stages.append((make_stage(lookup_stage(name), name), _is_users(name)))
        except Exception as exc:
            raise ReductionError(f"stage {name} of the {kind} recipe cannot be loaded: {exc}") from None
    missing = [s.name for s, _ in stages if isinstance(s, NotImplementedStage)]
    if missing:
        listing = ", ".join(f"{s.name} (yours to supply)" if isinstance(s, NotImplementedStage) else s.name for s, _ in stages)
        raise ReductionError(f"{kind} extraction is not implemented yet; stages: {listing}. Supply {', '.join(missing)} in the set-up's "
                             f"[recipe] stages, e.g. {{ use = \"my_stages.py:MyClass\", replace = \"{missing[0]}\" }} "
                             f"(see examples/echelle and docs/reduction.md)")
    return stages


for _stage in (Calibrate, TraceStage, ArcStage, Extraction, FluxCalibration, Telluric, Barycentric, Normalise, Quality, Products):
    REGISTRY.register(KIND, _stage.name, _stage, source="rosace_reduction")
for _name, _what in (("order_trace", "finding each order on the 2D frame"), ("order_extraction", "a wavelength-calibrated spectrum of each order"),
                     ("merge", "the orders merged into one spectrum")):
    REGISTRY.register(KIND, _name, NotImplementedStage(_name, _what), source="rosace_reduction (echelle skeleton)")


# ---------------------------------------------------------------------------------------------
# The run.


def start_state(plan: Plan, options: Options) -> State:
    """The state before the first stage: frames read (headers), the set-up loaded and checked, flags of missing header values."""
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
    arcs, flats, biases, darks = (_infos(group, options.instrument) for group in (plan.arc, plan.flat, plan.bias, plan.dark))
    try:
        setup_dir = find_instrument(options.instrument or first.instrument, tuple(options.instrument_search)).parent
    except ConfigError:
        setup_dir = None
    state = State(plan=plan, options=options, setup=setup, setup_dir=setup_dir, science_frames=sci, arc_frames=arcs, flat_frames=flats, bias_frames=biases, dark_frames=darks)
    if not arcs:
        raise ReductionError(f"no arc frame for {first.object} ({first.observation_id}): cannot calibrate wavelengths")
    _check_read_out(first, sci, arcs, flats, biases, darks)
    state.flags = ["partial"] if plan.partial else []
    # Essential header values a frame does not give (frames of other capture programs): each is
    # a flag in the quality record and the FITS header (ROSFLAGS), never a silent default.
    missing = sorted({m for f in sci for m in f.missing})
    for m in missing:
        if m == "SITE":
            state.flags.append("missing:SITE" + (":configured_site_used" if options.site_configured else ""))
        elif m == "EXPTIME":
            state.flags.append("missing:EXPTIME:flux_per_exposure")
        else:
            state.flags.append(f"missing:{m}")
    # Provenance: the program that wrote the frames, and kinds not read from IMAGETYP alone.
    state.header_mapping = {"program": first.program or None, "missing": missing,
                            "kinds_from": {Path(f.path).name: f.kind_from for f in sci + arcs + flats + biases + darks if f.kind_from}}
    # The set-up's geometry and recipe are in unbinned detector pixels: brought to this image's pixels
    # (binning, subframe) once, here.
    recipe = setup.recipe
    state.layout = layout = layout_of(setup.detector, first.shape, first.binning, first.origin)
    state.aperture = layout.rows(recipe.aperture_half_width, minimum=2)
    state.sky_offset = max(layout.rows(recipe.sky_offset), state.aperture + 1)
    state.sky_width = layout.rows(recipe.sky_width, minimum=3)
    state.half = state.sky_offset + state.sky_width + 1
    if not (layout.x_known and layout.y_known):
        state.flags.append("subframe_origin_unknown")
    state.airmass = float(np.mean([i.airmass for i in sci if i.airmass])) if any(i.airmass for i in sci) else 1.0
    return state


def run_recipe(plan: Plan, options: Options) -> State:
    """Reduce one observation through its set-up's recipe; return the final state (``state.record`` is the quality record)."""
    state = start_state(plan, options)
    stages = _plan_recipe(state.setup, options, state.setup_dir)
    for stage, user in stages:
        state.stages_run.append(stage.name)
        if user:
            state.custom_steps.append(stage.name)
        try:
            stage.run(state)
        except RosaceError:
            raise
        except Exception as exc:
            if not user:
                raise
            # The user's code: the message names the stage, the traceback goes to the log.
            log.exception("reduction stage %s failed", stage.name)
            raise ReductionError(f"stage {stage.name} failed: {exc.__class__.__name__}: {exc}") from exc
    if state.record is None:
        raise ReductionError(f"the recipe {[s.name for s, _ in stages]} wrote no products (its products stage was replaced?)")
    return state
