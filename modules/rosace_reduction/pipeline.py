"""One observation from raw frames to products.

:func:`reduce_observation` runs the recipe of the instrument set-up
(:mod:`rosace_reduction.stages`) on a :class:`Plan` (science frames plus the
calibrations chosen for them) and writes the products; it is a plain function
of picklable arguments so that a batch can run it in worker processes. The
helpers below (cache of calibration products, arc solution, checks of the
frames) serve the stages.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.time import Time

from rosace_core.errors import RosaceError
from rosace_core.instrument import lamp_elements
from rosace_reduction.calibration import calibrate, combine
from rosace_reduction.frames import FrameInfo, load_image, read_frame_info
from rosace_reduction.geometry import LineGeometry, measure_line_geometry, rectify, unrectify
from rosace_reduction.instrument import InstrumentSetup
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
    #: The user's stages (``[reduction] stages``): ``{"use": ..., "before"|"after"|"replace": <stage>}`` tables.
    stages: list[dict] = field(default_factory=list)


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
    """Base of a custom 1D step (``[recipe] steps``): ``run(ctx)`` may read and change the context dict
    (wavelength, flux, ...). It runs as a stage before ``quality``; a stage (:mod:`rosace_reduction.stages`)
    sees the whole state instead."""

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
    # The set-up's validator fills line_lists with the lamp's elements; a set-up built without it gets the same default.
    lines = load_line_lists(setup.line_lists if setup.line_lists is not None else lamp_elements(setup.lamp))
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

    cols = np.asarray(saturated.any(axis=0), dtype=bool)
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
    """Reduce one observation and write its products; return the quality record (as its JSON product holds it).

    The reduction is the recipe of stages of the set-up's kind
    (:mod:`rosace_reduction.stages`); :func:`rosace_reduction.stages.run_recipe`
    gives the typed state and :class:`~rosace_reduction.stages.QualityRecord`.
    Raises ReductionError (or another RosaceError) with a message for the observer.
    """
    from rosace_reduction.stages import run_recipe  # the stages use this module's helpers

    state = run_recipe(plan, options)
    return state.need(state.record, "record").to_dict()
