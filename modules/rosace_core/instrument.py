"""Instrument set-ups as data: ``resources/instruments/<name>.toml`` and the user's own files.

One model of the file, one loader, for every module: the simulated observatory
renders frames with it (``rosace_sim.render.instrument`` builds its true optical
model from it), the reduction starts its geometry and wavelength solution from
its nominal values and reads its recipe there (``rosace_reduction.instrument``),
the sequencer writes the detector's GAIN and RDNOISE in the raw frames from it,
and an Observing File's ``[instrument]`` is checked against it
(:func:`observing_file_problems`).

A new spectrograph is a new file (docs/adapting/new-spectrograph.md); unknown
keys are kept, so a set-up may carry parameters for a custom step. A file is
read once and cached by its resolved path, size and modification time: an
edited file is read again, an unchanged one gives the very same object (treat
it as read-only).
"""

from __future__ import annotations

import logging
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from rosace_core.errors import ConfigError
from rosace_core.resources import resource_path

log = logging.getLogger(__name__)

#: Elements a calibration lamp may be named by, longest names first where one is the start of another.
LAMP_ELEMENTS = ("thar", "ne", "ar", "he", "hg", "kr", "xe", "cu", "fe")


def lamp_elements(lamp: str) -> list[str]:
    """Line lists of a calibration lamp named by its elements: 'NeAr' -> ['ne', 'ar'], 'ThAr' -> ['thar'].

    Raises ValueError for a name that is not made of known elements.
    """
    key = lamp.strip().lower().replace("-", "").replace(" ", "").replace("+", "")
    out: list[str] = []
    while key:
        for el in LAMP_ELEMENTS:
            if key.startswith(el):
                out.append(el)
                key = key[len(el):]
                break
        else:
            raise ValueError(f"unknown calibration lamp {lamp!r}: name it by its elements (NeAr, HgAr, ThAr, HeNeAr, CuAr, FeAr, Kr, Xe...)")
    return list(dict.fromkeys(out))


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Detector(_Open):
    """The camera behind the spectrograph.

    ``gain`` and ``read_noise`` have defaults the reduction can start from, but
    whether the file really gives them is :meth:`declared`: the sequencer writes
    GAIN and RDNOISE only from declared values (or from the camera), never from
    these defaults.
    """

    nx: int = Field(3000, gt=0, description="pixels along dispersion (columns)")
    ny: int = Field(2000, gt=0, description="pixels along the slit (rows)")
    pixel_um: float = Field(4.54, gt=0)
    gain: float = Field(1.0, gt=0, description="e-/ADU")
    read_noise: float = Field(10.0, ge=0, description="e-")
    bias_level: float = 1000.0
    dark_current: float = Field(0.02, ge=0, description="e-/s/px at 0 degC")
    dark_doubling: float = Field(6.0, gt=0, description="degC per doubling of the dark current")
    saturation: float = Field(65535.0, gt=0)

    def declared(self, key: str) -> float | None:
        """The value of ``key`` when the file gives it, else None (a default is not a measurement)."""
        return getattr(self, key) if key in self.model_fields_set else None


class Dispersion(_Open):
    """Nominal wavelength solution: lambda = c + d (x - nx/2) + q (x - nx/2)^2 (air, A)."""

    central_wavelength: float = Field(gt=0)
    dispersion: float
    quadratic: float = 0.0
    wavelength_min: float = Field(gt=0)
    wavelength_max: float = Field(gt=0)

    @model_validator(mode="after")
    def _range(self) -> "Dispersion":
        if self.wavelength_min >= self.wavelength_max:
            raise ValueError(f"wavelength_min ({self.wavelength_min:g}) must be below wavelength_max ({self.wavelength_max:g})")
        return self


class Geometry(_Open):
    """Where the star falls and how the arc lines lean (unbinned pixels)."""

    trace_row: float | None = Field(None, description="row of the trace at the central column; default: the middle row")
    trace_slope: float = 0.0
    spatial_scale: float = Field(1.0, gt=0, description="arcsec per row along the slit")
    slit_width: float = Field(2.0, gt=0, description="arcsec on the sky")
    slit_tilt: float = Field(0.0, description="degrees of the arc lines against the columns")
    smile: float = 0.0


class Recipe(_Open):
    """Reduction parameters of the set-up."""

    extraction: str = Field("optimal", pattern="^(optimal|boxcar)$")
    aperture_half_width: int = Field(12, gt=0)
    sky_offset: int = Field(30, gt=0)
    sky_width: int = Field(40, gt=0)
    trace_order: int = Field(2, ge=0, le=5)
    wavelength_order: int = Field(3, ge=1, le=6)
    normalise: bool = False
    search_shift: float = Field(200.0, description="largest offset (px) of the arc from the nominal solution searched")
    search_scale: float = Field(0.04, description="largest relative error of the nominal dispersion searched")
    search_curvature: float = Field(0.0, ge=0, le=200, description="largest error (px at the detector's ends) of the nominal solution's curvature searched")
    cosmic_rays: bool = True
    steps: list[str] = Field(default_factory=list, description="custom steps, 'package.module:Class'")


class Render(_Open):
    """Simulator-only: how the simulated instrument differs from the nominal values and what it is
    mounted on (docs/dev/truth.md). The reduction and the sequencer ignore this table."""

    aperture_mm: float = Field(200.0, gt=0, description="telescope clear aperture")
    obstruction: float = Field(0.35, ge=0, lt=1, description="central obstruction, fraction of the diameter")
    throughput_peak: float = Field(0.20, gt=0, le=1, description="telescope x spectrograph x QE at the peak (atmosphere excluded)")
    response_centre: float = Field(5600.0, description="A, peak of the instrument response")
    response_width: float = Field(1600.0, gt=0, description="A, gaussian sigma of the response")
    response_slope: float = Field(0.0, description="relative change per 1000 A")
    wavelength_offset: float = Field(1.8, description="A, true minus nominal wavelength at the centre")
    dispersion_scale: float = Field(1.0008, gt=0, description="true / nominal linear dispersion")
    cubic: float = Field(3.0e-10, description="A/px^3, true cubic term (nominal has none)")
    trace_curvature: float = Field(6.0e-7, description="rows/px^2")
    lsf_fwhm_px: float | None = Field(None, gt=0, description="default: central_wavelength / resolving_power / dispersion")
    slit_rows: tuple[float, float] | None = Field(None, description="[first, last] illuminated rows; default: 3 % margins")
    slit_edge_rows: float = Field(4.0, gt=0, description="softness of the slit ends")
    illumination_gradient: float = Field(0.06, description="relative change of the slit illumination end to end")
    slit_dust: list[tuple[float, float, float]] = Field([(0.31, 2.5, 0.06), (0.72, 1.5, 0.04)], description="[relative row, sigma rows, depth]")
    arc_rate: float = Field(40.0, ge=0, description="e-/s at the peak pixel of a line of relative intensity 1")
    flat_rate: float = Field(6000.0, ge=0, description="e-/s/px at the peak of the tungsten flat")
    flat_temperature: float = Field(3000.0, gt=0, description="K, tungsten colour temperature")
    prnu_rms: float = Field(0.006, ge=0)
    bias_column_rms: float = Field(1.5, ge=0, description="ADU")
    hot_pixel_fraction: float = Field(1.0e-4, ge=0, le=1)
    hot_pixel_rate: tuple[float, float] = Field((0.5, 40.0), description="e-/s at 0 degC, log-uniform range")
    cosmic_rate: float = Field(0.04, ge=0, description="events per cm^2 per s")
    extinction: str = Field("orm", description="resources/extinction/<name>.csv")
    seed: int | None = Field(None, description="fixed-pattern seed; default: from the set-up name")


def _grating_key(name: str) -> str:
    return "".join(str(name).lower().split())


class InstrumentSetup(_Open):
    """One spectrograph set-up (see ``resources/instruments`` and docs/adapting/new-spectrograph.md)."""

    name: str = Field(min_length=1, description="written as INSTRUME in every raw frame")
    title: str = ""
    kind: Literal["longslit", "echelle", "slitless"] = Field("longslit", description="how the reduction must treat the frames")
    resolving_power: float = Field(1000.0, gt=0)
    lamp: str = "NeAr"
    line_lists: list[str] | None = Field(None, description="resources/linelists/<name>.csv; by default the elements of the lamp")
    flat_lamp: str = "tungsten"
    # What an Observing File's [instrument] may ask of the set-up; a key left out is not checked.
    gratings: list[str] | None = Field(None, description="grating names an Observing File may give, e.g. '600 l/mm'")
    slits: list[float] | None = Field(None, description="slit widths (um) an Observing File may give")
    central_wavelengths: tuple[float, float] | None = Field(None, description="[min, max] A an Observing File's central_wavelength may be")
    orders: list[int] | None = Field(None, description="diffraction orders an Observing File may give (echelle)")
    detector: Detector = Field(default_factory=Detector)
    dispersion: Dispersion
    geometry: Geometry = Field(default_factory=Geometry)
    recipe: Recipe = Field(default_factory=Recipe)
    render: Render = Field(default_factory=Render)
    _source: Path | None = PrivateAttr(None)

    @property
    def source(self) -> Path | None:
        """The file the set-up was read from (None when built in memory)."""
        return self._source

    @model_validator(mode="after")
    def _defaults(self) -> "InstrumentSetup":
        if self.line_lists is None:
            self.line_lists = lamp_elements(self.lamp)
        if self.geometry.trace_row is None:
            self.geometry.trace_row = self.detector.ny / 2
        if self.central_wavelengths is not None and self.central_wavelengths[0] > self.central_wavelengths[1]:
            raise ValueError("central_wavelengths must be [min, max]")
        return self

    def nominal_wavelength(self, x: np.ndarray | float) -> np.ndarray:
        """Nominal air wavelength (A) at column ``x``."""
        d = self.dispersion
        u = np.asarray(x, dtype=float) - self.detector.nx / 2
        return d.central_wavelength + d.dispersion * u + d.quadratic * u * u


def observing_file_problems(setup: InstrumentSetup, wanted: Any) -> list[str]:
    """Why an Observing File's ``[instrument]`` table (``wanted``) cannot be observed with ``setup``; [] if it can.

    Checks ``grating``, ``slit``, ``central_wavelength`` and ``order`` against the
    set-up's ``gratings``, ``slits``, ``central_wavelengths`` and ``orders``: a
    value the file leaves out, or a key the set-up does not list, is not checked.
    Each reason names the Observing File's field.
    """
    out: list[str] = []
    grating = getattr(wanted, "grating", None)
    if grating is not None and setup.gratings is not None:
        if _grating_key(grating) not in {_grating_key(g) for g in setup.gratings}:
            out.append(f"instrument.grating {grating!r} is not one of {setup.name}'s gratings ({', '.join(setup.gratings) or 'none'})")
    slit = getattr(wanted, "slit", None)
    if slit is not None and setup.slits is not None:
        if not any(abs(float(slit) - s) <= 0.5 for s in setup.slits):
            out.append(f"instrument.slit {float(slit):g} um is not one of {setup.name}'s slits ({', '.join(f'{s:g}' for s in setup.slits) or 'none'} um)")
    central = getattr(wanted, "central_wavelength", None)
    if central is not None and setup.central_wavelengths is not None:
        lo, hi = setup.central_wavelengths
        if not lo <= float(central) <= hi:
            out.append(f"instrument.central_wavelength {float(central):g} A is outside {setup.name}'s range {lo:g}-{hi:g} A")
    order = getattr(wanted, "order", None)
    if order is not None and setup.orders is not None and int(order) not in setup.orders:
        out.append(f"instrument.order {int(order)} is not one of {setup.name}'s orders ({', '.join(str(o) for o in setup.orders) or 'none'})")
    return out


# --------------------------------------------------------------------------- finding and loading


def instrument_path(name: str | Path) -> Path:
    """The TOML file of a built-in set-up name (``alpy600``), or a ``.toml`` path given as is."""
    path = Path(name)
    if path.suffix.lower() == ".toml":
        return path
    return resource_path("instruments", f"{str(name).strip().lower()}.toml")


def _toml_name(path: Path) -> str | None:
    """The ``name`` of a set-up file, None if it cannot be read (a broken file is reported when loaded)."""
    try:
        return str(tomllib.loads(path.read_text(encoding="utf-8")).get("name", ""))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None


def find_instrument(name: str | Path, search: tuple[str, ...] = ()) -> Path:
    """Return the TOML file of a set-up, e.g. the one a frame names in INSTRUME.

    Looked for, in order: ``name`` itself when it is a path to a ``.toml``;
    each entry of ``search`` (a ``.toml`` file whose ``name`` matches, or a
    folder holding ``<name>.toml`` or any ``.toml`` whose ``name`` matches);
    ``resources/instruments/<name>.toml``. The user's own files come first so
    that a set-up of theirs is never shadowed by a built-in one.

    Raises ConfigError listing every place looked at when nothing matches.
    """
    name = str(name)
    path = Path(name)
    if path.suffix.lower() == ".toml" and path.exists():
        return path
    wanted = name.strip().lower()
    looked: list[str] = []
    for entry in search:
        if not entry:
            continue
        where = Path(entry).expanduser()
        if where.is_dir():
            direct = where / f"{wanted}.toml"
            if direct.exists() and (_toml_name(direct) or wanted).lower() == wanted:
                return direct
            for candidate in sorted(where.glob("*.toml")):
                if (_toml_name(candidate) or "").lower() == wanted:
                    return candidate
            looked.append(f"folder {where}")
        elif where.suffix == ".toml" and where.exists():
            if (_toml_name(where) or "").lower() == wanted:
                return where
            looked.append(f"{where} (its name is {_toml_name(where)!r})")
        else:
            looked.append(f"{where} (not found)")
    if path.suffix.lower() == ".toml":
        looked.append(f"{path} (not found)")
    else:
        builtin = resource_path("instruments", f"{wanted}.toml")
        if builtin.exists():
            return builtin
        looked.append(f"resources/instruments/{wanted}.toml")
    raise ConfigError(name, [("INSTRUME", f"unknown instrument set-up {name!r}: looked in " + "; ".join(looked)
                              + ". Set [instrument] spectrograph to your set-up's .toml path or [reduction] instruments_dir to its folder")])


def load_instrument(name_or_path: str | Path, search: tuple[str, ...] = ()) -> InstrumentSetup:
    """Load an instrument set-up by name (``alpy600``) or TOML path.

    ``search`` lists the user's own set-up files and folders (see
    :func:`find_instrument`). Raises ConfigError if the set-up cannot be found
    or its file is invalid (naming the file and the key). A file edited since it
    was last read is read again (cached by resolved path, size and modification
    time), so a running service follows an edited spectrograph file; an
    unchanged file gives the same object.
    """
    path = find_instrument(name_or_path, tuple(search))
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(path, [("(file)", str(exc))]) from None
    return _load_file(str(path.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=32)
def _load_file(path: str, size: int, mtime_ns: int) -> InstrumentSetup:
    """One version of a set-up file (``size`` and ``mtime_ns`` key the cache: a changed file is a new entry)."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, [("(syntax)", str(exc))]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(file, [("(file)", str(exc))]) from None
    try:
        setup = InstrumentSetup.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(file, [(".".join(str(p) for p in e["loc"]) or "(file)", e["msg"]) for e in exc.errors()]) from None
    setup._source = file
    return setup
