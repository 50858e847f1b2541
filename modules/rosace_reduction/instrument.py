"""Instrument set-ups as data: ``resources/instruments/<name>.toml``.

The same files drive the simulated observatory (which renders frames with
them) and the reduction (which starts its geometry and wavelength solution
from their nominal values and reads its recipe parameters there). A new
spectrograph is a new file; unknown keys are kept, so a set-up may carry
parameters for a custom step.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rosace_core.errors import ConfigError
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
    cosmic_rays: bool = True
    steps: list[str] = Field(default_factory=list, description="custom steps, 'package.module:Class'")


class InstrumentSetup(_Open):
    """One spectrograph set-up (see ``resources/instruments``)."""

    name: str
    title: str = ""
    kind: str = "longslit"
    resolving_power: float = 1000.0
    lamp: str = "NeAr"
    line_lists: list[str] = Field(default_factory=lambda: ["ne", "ar"])
    flat_lamp: str = "tungsten"
    detector: Detector = Detector()
    dispersion: Dispersion
    geometry: Geometry = Geometry()
    recipe: Recipe = Recipe()

    def nominal_wavelength(self, x: np.ndarray | float) -> np.ndarray:
        """Nominal air wavelength (A) at column ``x``."""
        d = self.dispersion
        u = np.asarray(x, dtype=float) - self.detector.nx / 2
        return d.central_wavelength + d.dispersion * u + d.quadratic * u * u


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


@lru_cache(maxsize=32)
def load_instrument(name: str, search: tuple[str, ...] = ()) -> InstrumentSetup:
    """Load an instrument set-up by name (``alpy600``) or TOML path.

    ``search`` lists the user's own set-up files and folders (see
    :func:`find_instrument`). Raises ConfigError if the set-up cannot be
    found or its file is invalid.
    """
    path = find_instrument(name, tuple(search))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return InstrumentSetup.model_validate(data)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [("(syntax)", str(exc))]) from None
    except ValidationError as exc:
        raise ConfigError(path, [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]) from None
