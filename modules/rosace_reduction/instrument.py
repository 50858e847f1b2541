"""Instrument set-ups as data: ``resources/instruments/<name>.toml``.

The same files drive the simulated observatory (which renders frames with
them) and the reduction (which starts its geometry and wavelength solution
from their nominal values and reads its recipe parameters there). A new
spectrograph is a new file; unknown keys are kept, so a set-up may carry
parameters for a custom step.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rosace_core.errors import ConfigError, RosaceError
from rosace_core.resources import resource_path


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Detector(_Open):
    """The camera behind the spectrograph."""

    nx: int = Field(3000, gt=0, description="pixels along dispersion (columns)")
    ny: int = Field(2000, gt=0, description="pixels along the slit (rows)")
    pixel_um: float = 4.54
    gain: float = Field(1.0, gt=0, description="e-/ADU")
    read_noise: float = Field(10.0, ge=0, description="e-")
    bias_level: float = 1000.0
    dark_current: float = Field(0.02, ge=0, description="e-/s/px at 0 degC")
    dark_doubling: float = Field(6.0, gt=0, description="degC per doubling of the dark current")
    saturation: float = 65535.0


class Dispersion(_Open):
    """Nominal wavelength solution: lambda = c + d (x - nx/2) + q (x - nx/2)^2 (air, A)."""

    central_wavelength: float
    dispersion: float
    quadratic: float = 0.0
    wavelength_min: float
    wavelength_max: float


class Geometry(_Open):
    """Where the star falls and how the arc lines lean."""

    trace_row: float = 1000.0
    trace_slope: float = 0.0
    spatial_scale: float = 1.0
    slit_width: float = 2.0
    slit_tilt: float = 0.0
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


class InstrumentSetup(_Open):
    """One spectrograph set-up (see ``resources/instruments``)."""

    name: str
    title: str = ""
    kind: str = "longslit"
    resolving_power: float = 1000.0
    lamp: str = "NeAr"
    line_lists: list[str] | None = Field(None, description="resources/linelists/<name>.csv; by default the elements of the lamp")
    flat_lamp: str = "tungsten"
    detector: Detector = Detector()
    dispersion: Dispersion
    geometry: Geometry = Geometry()
    recipe: Recipe = Recipe()

    @model_validator(mode="after")
    def _lamp_lists(self) -> "InstrumentSetup":
        if self.line_lists is None:
            from rosace_reduction.wavelength import lamp_line_lists

            try:
                self.line_lists = lamp_line_lists(self.lamp)
            except RosaceError as exc:
                raise ValueError(str(exc)) from None
        return self

    def nominal_wavelength(self, x: np.ndarray | float) -> np.ndarray:
        """Nominal air wavelength (A) at column ``x``."""
        d = self.dispersion
        u = np.asarray(x, dtype=float) - self.detector.nx / 2
        return d.central_wavelength + d.dispersion * u + d.quadratic * u * u


@dataclass(frozen=True)
class Layout:
    """Where an image's pixels lie on the set-up's detector (whose geometry is in unbinned pixels).

    Image pixel (row i, column j) sums unbinned rows ``y0 + by*i ... + by-1``
    and columns ``x0 + bx*j ... + bx-1`` (``x0``, ``y0``: unbinned origin of
    the subframe). ``x_known``/``y_known`` are False when a subframe does not
    say where it was read (no XORGSUBF/YORGSUBF): the origin is then a guess
    (the subframe centred on the detector) and the searches that start from
    the set-up's geometry cover the whole image instead.
    """

    bx: int = 1
    by: int = 1
    x0: int = 0
    y0: int = 0
    x_known: bool = True
    y_known: bool = True

    def unbinned_column(self, j):
        """Unbinned detector column at the centre of image column(s) ``j``."""
        return self.x0 + (self.bx - 1) / 2 + self.bx * np.asarray(j, dtype=float)

    def image_row(self, y_unbinned: float) -> float:
        """Image row at the centre of which unbinned detector row ``y_unbinned`` falls."""
        return (float(y_unbinned) - self.y0 - (self.by - 1) / 2) / self.by

    def rows(self, n_unbinned: float, minimum: int = 1) -> int:
        """A length along the slit given in unbinned rows, in image rows (at least ``minimum``)."""
        return max(int(round(float(n_unbinned) / self.by)), minimum)

    def columns(self, n_unbinned: float) -> float:
        """A length along the dispersion given in unbinned columns, in image columns."""
        return float(n_unbinned) / self.bx

    def to_dict(self) -> dict:
        return {"binning": [self.bx, self.by], "origin_unbinned": [self.x0, self.y0], "origin_known": [self.x_known, self.y_known]}


def layout_of(detector: Detector, shape: tuple[int, int], binning: tuple[int, int] = (1, 1),
              origin: tuple[int | None, int | None] = (None, None)) -> Layout:
    """The :class:`Layout` of an image of ``shape`` (rows, columns) read with ``binning`` (XBINNING, YBINNING)
    and subframe ``origin`` in binned pixels (XORGSUBF, YORGSUBF; None when not written).

    An image as large as the binned detector (or larger: a set-up whose
    detector size is only approximate) starts at the detector's corner; a
    smaller one without an origin is taken as centred, its origin unknown.
    """
    bx, by = int(binning[0]), int(binning[1])
    ny, nx = int(shape[0]), int(shape[1])

    def axis(n: int, full: int, scale: int, given: int | None) -> tuple[int, bool]:
        if given is not None:
            return int(given) * scale, True
        if n >= full // scale:
            return 0, True
        return max((full - n * scale) // 2, 0), False

    x0, x_known = axis(nx, detector.nx, bx, origin[0])
    y0, y_known = axis(ny, detector.ny, by, origin[1])
    return Layout(bx, by, x0, y0, x_known, y_known)


def instrument_path(name: str) -> Path:
    """Return the TOML file of a set-up name (or of a path given as is) among the built-in set-ups."""
    path = Path(name)
    if path.suffix == ".toml" and path.exists():
        return path
    return resource_path("instruments", f"{name.lower()}.toml")


def _toml_name(path: Path) -> str | None:
    """The ``name`` of a set-up file, None if it cannot be read (a broken file is reported when loaded)."""
    try:
        return str(tomllib.loads(path.read_text(encoding="utf-8")).get("name", ""))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None


def find_instrument(name: str, search: tuple[str, ...] = ()) -> Path:
    """Return the TOML file of the set-up a frame names in INSTRUME.

    Looked for, in order: ``name`` itself when it is a path to a ``.toml``;
    each entry of ``search`` (a ``.toml`` file whose ``name`` matches, or a
    folder holding ``<name>.toml`` or any ``.toml`` whose ``name`` matches);
    ``resources/instruments/<name>.toml``. The user's own files come first so
    that a set-up of theirs is never shadowed by a built-in one.

    Raises ConfigError listing every place looked at when nothing matches.
    """
    path = Path(name)
    if path.suffix == ".toml" and path.exists():
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
    builtin = resource_path("instruments", f"{wanted}.toml")
    if builtin.exists():
        return builtin
    looked.append(f"resources/instruments/{wanted}.toml")
    raise ConfigError(name, [("INSTRUME", f"unknown instrument set-up {name!r}: looked in " + "; ".join(looked)
                              + ". Set [instrument] spectrograph to your set-up's .toml path or [reduction] instruments_dir to its folder")])


def load_instrument(name: str, search: tuple[str, ...] = ()) -> InstrumentSetup:
    """Load an instrument set-up by name (``alpy600``) or TOML path.

    ``search`` lists the user's own set-up files and folders (see
    :func:`find_instrument`). Raises ConfigError if the set-up cannot be
    found or its file is invalid. A file edited since it was last read is read
    again (cached by path, size and modification time), so a running reduction
    service follows an edited spectrograph file.
    """
    path = find_instrument(name, tuple(search))
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(path, [("(file)", str(exc))]) from None
    return _load_file(str(path.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=32)
def _load_file(path: str, size: int, mtime_ns: int) -> InstrumentSetup:
    """One version of a set-up file (``size`` and ``mtime_ns`` key the cache: a changed file is a new entry)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return InstrumentSetup.model_validate(data)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [("(syntax)", str(exc))]) from None
    except ValidationError as exc:
        raise ConfigError(path, [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]) from None
