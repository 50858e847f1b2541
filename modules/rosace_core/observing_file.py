"""The Observing File, format version 1 (revision 1.2): what an observer wants observed.

This is ROSACE's long-term contract between observers and observatories
(specification: ``docs/observing-file.md``). A file is YAML or JSON, carries
``rosace: 1``, and is validated by the pydantic models below; the same models
produce the published JSON Schema. Errors name the file, the line and column and
the field path.

Compatibility promise: a version 1 file keeps working. A later version adds an
upgrader to ``UPGRADERS`` that turns the older dict into the newer one on load.
Keys starting with ``x-`` are extensions: kept, round-tripped, never interpreted.
Any other unknown key is an error, so a typo never passes silently.

Revision 1.1 (``rosace: 1.1``; ``rosace: 1`` files are read by the same rules): a right
ascension is 'hh:mm:ss.s' text, a value with a unit ('5.588h') or ``ra_deg`` (degrees); a
bare number is an error naming the field, since ``ra: 5.588`` was as often meant as hours
as degrees (format 1 read it as degrees without a word).

Revision 1.2 (``rosace: 1.2``; 1 and 1.1 files are read unchanged) adds one optional key,
``sequence.split``: the science frames may be spread over several blocks (each repeating the
acquisition and its calibrations). A file using it must say ``rosace: 1.2``, so that an older
ROSACE refuses it by its version instead of running the whole block without a word.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from rosace_core.errors import RosaceError

FORMAT_VERSION = 1
#: the revisions of format 1 this ROSACE reads; 1.1 refuses a bare-number RA (``ra_deg`` or a unit instead),
#: 1.2 adds ``sequence.split``
FORMAT_REVISIONS = (1, 1.1, 1.2)
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$"

#: Functions that upgrade a file dict from version N to N+1, keyed by N.
UPGRADERS: dict[int, Any] = {}


def _schema_extensions(schema: dict) -> None:
    schema.get("properties", {}).pop("extensions", None)
    schema["patternProperties"] = {"^x-": {"description": "extension key, kept but not interpreted"}}
    schema["additionalProperties"] = False


class _Model(BaseModel):
    """Base: unknown keys are errors, except ``x-...`` extension keys which are kept.

    Extension keys are moved into ``extensions`` on load and put back in place by
    :meth:`ObservingFile.to_dict`, so they round-trip.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=_schema_extensions)

    extensions: dict[str, Any] = Field(default_factory=dict, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _collect_extensions(cls, data):
        if isinstance(data, dict):
            ext = {k: v for k, v in data.items() if isinstance(k, str) and k.startswith("x-")}
            if ext or "extensions" in data:
                data = {k: v for k, v in data.items() if k not in ext}
                if "extensions" in data:  # only x- keys may become extensions
                    data["extensions "] = data.pop("extensions")
                data["extensions"] = ext
        return data

    def _with_extensions(self) -> dict:
        out = {}
        for name in type(self).model_fields:
            if name == "extensions":
                continue
            value = getattr(self, name)
            if value is None:
                continue
            out[name] = _plain(value)
        out.update(self.extensions)
        return out


@lru_cache(maxsize=None)
def _adapter(kind: type):
    from pydantic import TypeAdapter

    return TypeAdapter(kind)  # building one costs about a millisecond: once per type, not per value


def _plain(value: Any) -> Any:
    if isinstance(value, _Model):
        return value._with_extensions()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return _adapter(type(value)).dump_python(value, mode="json")  # type: ignore[arg-type]  # a class is hashable; lru_cache's stub says Hashable


_SEXA_RE = re.compile(r"([+-]?)(\d{1,3})([:\sdh])\s*(\d{1,2})[:\sm']\s*(\d{1,2}(?:\.\d*)?)\s*[s\"]?")
#: a number with an angle unit: '5.588h', '83.82 deg' (hand-written: a regex this small beats
#: astropy.units here, which would also accept units the JSON Schema cannot describe)
_UNIT_RE = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))\s*(h|hr|hours?|hourangle|d|deg|degrees?|°)")
_HOUR_UNITS = ("h", "hr", "hour", "hours", "hourangle")


def _bare_ra(value: Any) -> str:
    return (f"ra {value!r}: a bare number is ambiguous (hours or degrees?) and is refused since format 1.1 "
            f"(format 1 read it as degrees): write 'hh:mm:ss.s' text, a unit ('{value}h' or '{value} deg') "
            f"or 'ra_deg: {value}'")


def _sexagesimal(value: Any, *, hours: bool, field: str) -> Any:
    """Turn 'hh:mm:ss' / 'dd mm ss' text or a number with a unit into decimal degrees.

    Declinations may also be bare numbers (degrees). A right ascension may not: a bare
    ``ra: 5.588`` was meant as hours as often as degrees, so it is an error (``ra_deg``
    says degrees explicitly). Sexagesimal RA is hours unless its first separator is 'd'.
    """
    if isinstance(value, bool):
        raise ValueError(f"{field} must be {'text or ra_deg' if hours else 'a number of degrees or sexagesimal text'}")
    if isinstance(value, (int, float)):
        if hours:
            raise ValueError(_bare_ra(value))
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"{field} must be {'text or ra_deg' if hours else 'a number of degrees or sexagesimal text'}")
    text = value.strip()
    match = _SEXA_RE.fullmatch(text)
    if not match:
        unit = _UNIT_RE.fullmatch(text)
        if unit:
            number = float(unit.group(1))
            return number * 15.0 if unit.group(2) in _HOUR_UNITS else number
        try:
            number = float(text)
        except ValueError:
            form = "hh:mm:ss.s or a value with a unit ('5.588h', '83.82 deg')" if hours else "+dd:mm:ss.s"
            raise ValueError(f"{field} {value!r} is neither degrees nor {form}") from None
        if hours:
            raise ValueError(_bare_ra(value))
        return number
    sign = -1.0 if match.group(1) == "-" else 1.0
    in_hours = hours and match.group(3) != "d"
    a, b, c = float(match.group(2)), float(match.group(4)), float(match.group(5))
    if b >= 60 or c >= 60:
        raise ValueError(f"{field} {value!r}: minutes and seconds must be below 60")
    if in_hours and a >= 24:
        raise ValueError(f"{field} {value!r}: hours must be below 24")
    degrees = sign * (a + b / 60 + c / 3600)
    return degrees * 15.0 if in_hours else degrees


_SEXA = r"^[+-]?\d{1,3}[:\sdh]\s*\d{1,2}[:\sm']\s*\d{1,2}(\.\d*)?\s*[s\"]?$"
_WITH_UNIT = r"^\s*[+-]?(\d+\.?\d*|\.\d+)\s*(h|hr|hours?|hourangle|d|deg|degrees?|°)\s*$"
RA = Annotated[
    float,
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": _SEXA}, {"type": "string", "pattern": _WITH_UNIT}],
                    "description": "ICRS right ascension: 'hh:mm:ss.s' text (hours; 'dd d mm m ss s' for degrees) or a value with a unit "
                                   "('5.588h', '83.82 deg'); a bare number is refused (use ra_deg)"}),
]
RA_DEG = Annotated[float, WithJsonSchema({"type": "number", "minimum": 0, "exclusiveMaximum": 360,
                                          "description": "ICRS right ascension in degrees (instead of ra)"})]
DEC = Annotated[
    float,
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": -90, "maximum": 90}, {"type": "string", "pattern": _SEXA}],
                    "description": "ICRS declination: degrees, or '+dd:mm:ss.s' text"}),
]


def _one_ra_schema(schema: dict) -> None:
    _schema_extensions(schema)
    schema["not"] = {"required": ["ra", "ra_deg"]}


def _target_ra_schema(schema: dict) -> None:
    _schema_extensions(schema)
    schema["oneOf"] = [{"required": ["ra"]}, {"required": ["ra_deg"]}]


def _ra_from_deg(model, required: bool):
    """After validation: ``ra`` holds degrees whichever key the file used (``ra`` or ``ra_deg``); ``ra_deg`` is None."""
    if model.ra is not None and model.ra_deg is not None:
        raise ValueError("give either 'ra' or 'ra_deg', not both")
    if model.ra is None and model.ra_deg is not None:
        model.ra, model.ra_deg = model.ra_deg, None  # one canonical form: ``ra`` in degrees
    if required and model.ra is None:
        raise ValueError("missing the right ascension: add 'ra' (hh:mm:ss.s text or a value with a unit) or 'ra_deg' (degrees)")
    return model


def _ra_as_degrees(out: dict, ra: float | None) -> dict:
    """Write ``ra`` back as ``ra_deg`` (same place in the key order), so that a dumped file reloads."""
    if ra is None:
        return out
    return {("ra_deg" if k == "ra" else k): (ra if k == "ra" else v) for k, v in out.items() if k != "ra_deg"}


class Observer(_Model):
    """Who asks for the observation."""

    name: str = Field(min_length=1, max_length=120)
    contact: str | None = Field(None, description="e-mail or other contact")
    code: str | None = Field(None, max_length=32, description="BeSS / ARAS observer code")


class Programme(_Model):
    """The science programme or campaign the file belongs to."""

    name: str = Field(min_length=1, max_length=120)
    campaign: str | None = Field(None, max_length=120, description="campaign id on a share server")
    url: str | None = None


class Magnitude(_Model):
    """A brightness in a photometric band."""

    value: float = Field(ge=-2, le=25)
    band: str = "V"


class SiderealTarget(_Model):
    """A star: ICRS position at an epoch, with proper motion and parallax."""

    type: Literal["sidereal"] = "sidereal"
    name: str = Field(min_length=1, max_length=80, description="standard name (BeSS OBJNAME)")
    model_config = ConfigDict(extra="forbid", json_schema_extra=_target_ra_schema)

    ra: RA | None = Field(None, ge=0, lt=360, description="ICRS right ascension: 'hh:mm:ss.s' text or a value with a unit; read as degrees")
    ra_deg: RA_DEG | None = Field(None, ge=0, lt=360, description="ICRS right ascension, degrees (instead of ra)")
    dec: DEC = Field(ge=-90, le=90, description="ICRS declination, degrees (or '+dd:mm:ss' text)")
    epoch: float = Field(2000.0, ge=1800, le=2200, description="epoch of the position, Julian year")
    pm_ra_cosdec: float = Field(0.0, description="proper motion in RA * cos(Dec), mas/yr")
    pm_dec: float = Field(0.0, description="proper motion in Dec, mas/yr")
    parallax: float = Field(0.0, ge=0, description="mas")
    radial_velocity: float | None = Field(None, description="km/s, if known")
    magnitude: Magnitude | None = None
    spectral_type: str | None = Field(None, max_length=40)

    @field_validator("ra", mode="before")
    @classmethod
    def _ra(cls, value):
        return None if value is None else _sexagesimal(value, hours=True, field="ra")

    @field_validator("dec", mode="before")
    @classmethod
    def _dec(cls, value):
        return _sexagesimal(value, hours=False, field="dec")

    @model_validator(mode="after")
    def _one_ra(self):
        return _ra_from_deg(self, required=True)

    def _with_extensions(self) -> dict:
        return _ra_as_degrees(super()._with_extensions(), self.ra)


class EphemerisPoint(_Model):
    """One tabulated position of a moving target."""

    time: datetime
    ra: float = Field(ge=0, lt=360)
    dec: float = Field(ge=-90, le=90)


class NonSiderealTarget(_Model):
    """A solar-system or moving target, given as a tabulated ephemeris.

    Schedulers that cannot handle it report it as unsupported; the format leaves
    room for orbital elements in a later version.
    """

    type: Literal["nonsidereal"]
    name: str = Field(min_length=1, max_length=80)
    ephemeris: list[EphemerisPoint] = Field(min_length=2)
    magnitude: Magnitude | None = None


def _default_target_type(value: Any) -> Any:
    if isinstance(value, dict) and "type" not in value:
        return {"type": "sidereal", **value}
    return value


Target = Annotated[Union[SiderealTarget, NonSiderealTarget], Field(discriminator="type")]


class InstrumentSetup(_Model):
    """The spectrograph set-up the observation needs."""

    spectrograph: str = Field(min_length=1, description="instrument set-up name, e.g. alpy600, lhires2400")
    grating: str | None = Field(None, description="grating, e.g. '2400 l/mm'")
    order: int | None = Field(None, ge=1, description="diffraction order (echelle)")
    central_wavelength: float | None = Field(None, gt=3000, lt=11000, description="angstrom")
    slit: float | None = Field(None, gt=0, description="slit width, micrometres")
    binning: tuple[int, int] = Field((1, 1), description="binning [x, y]")

    @field_validator("binning")
    @classmethod
    def _binning(cls, value):
        if not all(1 <= b <= 8 for b in value):
            raise ValueError("binning must be between 1 and 8 on each axis")
        return value


class Acquisition(_Model):
    """How the star is put on the slit."""

    mode: Literal["slit_centering", "blind", "plate_solve"] = "slit_centering"
    exposure: float = Field(2.0, gt=0, le=120, description="guide camera exposure, seconds")
    tolerance: float = Field(0.5, gt=0, le=10, description="centring tolerance, arcsec")
    max_iterations: int = Field(8, ge=1, le=50)


class Exposures(_Model):
    """A number of exposures of one duration."""

    count: int = Field(ge=1, le=1000)
    exposure: float = Field(gt=0, le=7200, description="seconds")


class Arcs(_Model):
    """Wavelength-calibration lamp frames."""

    lamp: str = Field("NeAr", description="lamp name on the calibration Switch")
    exposure: float = Field(gt=0, le=600, description="seconds")
    count: int = Field(1, ge=1, le=50, description="frames per arc block")
    when: Literal["before", "after", "bracket", "none"] = "bracket"


class Flats(_Model):
    """Flat-field lamp frames."""

    lamp: str = "tungsten"
    count: int = Field(5, ge=1, le=100)
    exposure: float = Field(gt=0, le=600, description="seconds")


class ReferenceStar(_Model):
    """The reference star used for the instrument response."""

    mode: Literal["auto", "named", "none"] = "auto"
    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_ra_schema)

    name: str | None = None
    ra: RA | None = Field(None, ge=0, lt=360)
    ra_deg: RA_DEG | None = Field(None, ge=0, lt=360, description="degrees (instead of ra)")
    dec: DEC | None = Field(None, ge=-90, le=90)

    @field_validator("ra", mode="before")
    @classmethod
    def _ra(cls, value):
        return None if value is None else _sexagesimal(value, hours=True, field="ra")

    @field_validator("dec", mode="before")
    @classmethod
    def _dec(cls, value):
        return None if value is None else _sexagesimal(value, hours=False, field="dec")

    @model_validator(mode="after")
    def _named_needs_name(self):
        if self.mode == "named" and not self.name:
            raise ValueError("a named reference star needs a 'name'")
        return _ra_from_deg(self, required=False)

    def _with_extensions(self) -> dict:
        return _ra_as_degrees(super()._with_extensions(), self.ra)


class Split(_Model):
    """Permission to spread the science frames over several blocks (format 1.2).

    Each block (part) repeats the acquisition and the file's calibrations (arcs around each
    part when ``arcs.when`` is ``bracket``); a part holds at least ``min_minutes`` of science
    frames, and so does what is left after it (unless nothing is).
    """

    allowed: bool = Field(True, description="the science frames may be taken in several blocks")
    min_minutes: float = Field(30.0, ge=1, le=720, description="shortest part, minutes of science frames (exposure plus readout)")


class Sequence(_Model):
    """What is taken: science frames and their calibrations."""

    science: Exposures
    arcs: Arcs | None = None
    flats: Flats | None = None
    bias_dark: Literal["library", "each_night", "none"] = Field(
        "library", description="library: reuse bias/darks by temperature, exposure and binning"
    )
    reference_star: ReferenceStar = ReferenceStar()
    steps: list[str] | None = Field(
        None, description="custom sequence: names of registered sequence steps, in order (advanced)"
    )
    split: Split | None = Field(None, description="since 1.2: the science frames may be taken in several blocks (parts)")


class TimeWindow(_Model):
    """An interval (UTC) in which the observation may run."""

    start: datetime
    end: datetime

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    @model_validator(mode="after")
    def _ordered(self):
        if self.end <= self.start:
            raise ValueError("window 'end' must be after 'start'")
        return self


class Cadence(_Model):
    """Repeat the observation every ``period`` days, within ``tolerance`` days."""

    period: float = Field(gt=0, le=3650, description="days")
    tolerance: float | None = Field(None, ge=0, description="days before the due date a visit may already be made; below the period (default: 0.5, or half a shorter period)")

    @model_validator(mode="after")
    def _tolerance_below_period(self):
        if self.tolerance is None:
            self.tolerance = min(0.5, self.period / 2)
        if self.tolerance >= self.period:
            raise ValueError(f"tolerance ({self.tolerance:g} d) must be below the period ({self.period:g} d): "
                             "otherwise a visit would be due again as soon as one is made")
        return self


class PhaseWindow(_Model):
    """Observe only in phase intervals of a periodic system (binary, pulsator)."""

    t0: float = Field(gt=2_000_000, lt=3_000_000, description="epoch of phase 0, JD (UTC, heliocentric or barycentric)")
    period: float = Field(gt=0, description="days")
    phases: list[tuple[float, float]] = Field(min_length=1, description="[start, end] phase intervals, 0-1; start > end wraps")

    @field_validator("phases")
    @classmethod
    def _phase_range(cls, value):
        for a, b in value:
            if not (0 <= a <= 1 and 0 <= b <= 1):
                raise ValueError("phases must lie between 0 and 1")
        return value


class Constraints(_Model):
    """When the observation may run."""

    min_altitude: float = Field(30.0, ge=0, le=89, description="degrees (the site horizon also applies)")
    max_airmass: float | None = Field(2.0, ge=1, le=10)
    moon_min_separation: float = Field(30.0, ge=0, le=180, description="degrees")
    moon_max_illumination: float | None = Field(None, ge=0, le=1, description="fraction 0-1")
    sun_max_altitude: float = Field(-12.0, ge=-90, le=0, description="degrees; -12 nautical, -18 astronomical")
    windows: list[TimeWindow] = Field(default_factory=list, description="if given, run only inside one of them")
    cadence: Cadence | None = None
    phase: PhaseWindow | None = None
    max_visits: int | None = Field(None, ge=1, description="stop after this many completed visits (default 1 without cadence)")
    max_seeing: float | None = Field(None, gt=0, description="arcsec")


class Reduction(_Model):
    """How the spectra are reduced."""

    recipe: str = "default"
    extraction: Literal["optimal", "boxcar"] | None = None
    normalise: bool = False
    telluric: bool = True
    heliocentric: bool = True
    options: dict[str, Any] = Field(default_factory=dict, description="recipe-specific options")


class Share(_Model):
    """Where results go."""

    bess: bool = False
    aras: bool = False
    servers: list[str] = Field(default_factory=list, description="share server URLs")
    public: bool = True


def _file_schema(schema: dict) -> None:
    _schema_extensions(schema)
    # ``sequence.split`` is a 1.2 key: a file using it says so (an older ROSACE then refuses it by its version)
    schema["if"] = {"required": ["sequence"], "properties": {"sequence": {"required": ["split"]}}}
    schema["then"] = {"properties": {"rosace": {"const": 1.2}}}


class ObservingFile(_Model):
    """A whole Observing File (format version 1)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_file_schema)

    # (PEP 586 has no float literals, pydantic does: the one place mypy is told to look away)
    rosace: Literal[1, 1.1, 1.2] = Field(description="format version: 1.2 (1 and 1.1 are read too; all refuse a bare-number ra; sequence.split needs 1.2)")  # type: ignore[valid-type]
    id: str = Field(pattern=ID_PATTERN, description="stable identifier, unique per observer")
    title: str | None = None
    observer: Observer
    programme: Programme | None = None
    target: Target
    instrument: InstrumentSetup
    acquisition: Acquisition = Acquisition()
    sequence: Sequence
    constraints: Constraints = Constraints()
    priority: int = Field(5, ge=1, le=10, description="1 lowest, 10 most urgent")
    reduction: Reduction = Reduction()
    share: Share = Share()

    @field_validator("target", mode="before")
    @classmethod
    def _target_type(cls, value):
        return _default_target_type(value)

    @field_validator("sequence")
    @classmethod
    def _split_needs_1_2(cls, value, info):
        if value.split is not None and info.data.get("rosace") in (1, 1.1):
            raise ValueError(f"'split' is new in format 1.2: write 'rosace: 1.2' at the top of the file (it says {info.data['rosace']})")
        return value

    def to_dict(self) -> dict:
        """Return the file as plain JSON-compatible data (round-trips through the loader)."""
        return self._with_extensions()

    def content_hash(self) -> str:
        """Return a SHA-256 of the canonical content (stable across YAML/JSON and key order)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def exposure_time(self) -> float:
        """Return the total science exposure time, seconds."""
        return self.sequence.science.count * self.sequence.science.exposure


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Problem:
    """One validation problem: where (line, column, field path) and what."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def to_dict(self) -> dict:
        return {"path": self.path, "message": self.message, "line": self.line, "column": self.column}


class ObservingFileError(RosaceError):
    """An Observing File is invalid. ``problems`` lists each error with its place."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = str(source)
        self.problems = problems
        super().__init__(self.report())

    def report(self) -> str:
        """Return one line per problem: ``file:line:col: field: message``."""
        lines = []
        for p in self.problems:
            where = self.source
            if p.line is not None:
                where += f":{p.line}"
                if p.column is not None:
                    where += f":{p.column}"
            field = f" {p.path}:" if p.path else ""
            lines.append(f"{where}:{field} {p.message}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"file": self.source, "errors": [p.to_dict() for p in self.problems]}


class _Positions:
    """Line/column of every key and value in a YAML (or JSON) document."""

    def __init__(self, text: str):
        self.map: dict[tuple, tuple[int, int]] = {}
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            node = None
        if node is not None:
            self.map[()] = (node.start_mark.line + 1, node.start_mark.column + 1)
            self._walk(node, ())

    def _walk(self, node, path):
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = path + (key.value,)
                self.map[sub] = (key.start_mark.line + 1, key.start_mark.column + 1)
                self._walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.map[path + (i,)] = (item.start_mark.line + 1, item.start_mark.column + 1)
                self._walk(item, path + (i,))

    def find(self, path: tuple) -> tuple[int | None, int | None]:
        for n in range(len(path), -1, -1):
            if path[:n] in self.map:
                return self.map[path[:n]]
        return (None, None)


def _real_path(data: Any, loc: tuple) -> tuple:
    """Drop the pydantic-only parts of an error location (union tags, validator names)."""
    out: list = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and part not in ("sidereal", "nonsidereal") and not str(part).startswith(("function-", "tagged-union")):
            out.append(part)  # a missing key: name it
            node = None
        else:
            continue
    return tuple(out)


def _format_path(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(err: Mapping[str, Any], path: tuple) -> str:
    kind = err.get("type", "")
    msg = err.get("msg", "invalid value")
    if kind == "missing" and path == ("rosace",):
        return "missing the format version: add 'rosace: 1' at the top of the file"
    if kind == "missing":
        return f"missing required field '{path[-1]}'" if path else "missing required field"
    if kind == "literal_error" and path == ("rosace",):
        return f"unsupported format version {err.get('input')!r}; this ROSACE reads versions 1, 1.1 and 1.2"
    if kind == "extra_forbidden":
        return f"unknown key '{str(path[-1]).strip()}' (check the spelling; extension keys must start with 'x-')"
    if kind == "union_tag_invalid":
        return "target 'type' must be 'sidereal' or 'nonsidereal'"
    if kind == "string_pattern_mismatch" and path and path[-1] == "id":
        return "id must be 1-80 letters, digits, '.', '_' or '-', starting with a letter or digit"
    msg = msg.removeprefix("Value error, ")
    return msg[0].lower() + msg[1:] if msg else msg


def _load_text(text: str, source: str, fmt: str | None) -> Any:
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ObservingFileError(source, [Problem("", f"invalid JSON: {exc.msg}", exc.lineno, exc.colno)]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        raise ObservingFileError(source, [Problem("", f"invalid YAML: {problem}", line, col)]) from None


def parse_observing_file(text: str, source: str = "<text>", fmt: str | None = None) -> ObservingFile:
    """Parse and validate an Observing File from text (YAML or JSON).

    Raises ObservingFileError listing every problem with its line, column and field.
    """
    data = _load_text(text, source, fmt)
    if not isinstance(data, dict):
        raise ObservingFileError(source, [Problem("", "the file must be a mapping of keys (it starts with 'rosace: 1')", 1, 1)])
    version = data.get("rosace")
    if isinstance(version, int) and not isinstance(version, bool):
        while version in UPGRADERS:
            data = UPGRADERS[version](data)
            version = data.get("rosace")
    try:
        return ObservingFile.model_validate(data)
    except ValidationError as exc:
        positions = _Positions(text)
        problems = []
        for err in exc.errors():
            path = _real_path(data, tuple(err["loc"]))
            line, col = positions.find(path)
            problems.append(Problem(_format_path(path), _message(err, path), line, col))
        raise ObservingFileError(source, problems) from None


def load_observing_file(path: Path | str) -> ObservingFile:
    """Load and validate an Observing File from disk (``.json`` is JSON, anything else YAML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ObservingFileError(str(path), [Problem("", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ObservingFileError(str(path), [Problem("", f"cannot read: {exc}")]) from None
    fmt = "json" if path.suffix.lower() == ".json" else None
    return parse_observing_file(text, str(path), fmt)


def from_stored(data: dict) -> ObservingFile:
    """Validate a file dict that ROSACE itself stored (``to_dict()``), old ones included.

    Before format 1.1, ``to_dict()`` wrote the right ascension as a bare number of degrees;
    such machine-written dicts (databases, journals) are unambiguous, so they are read with
    that number as ``ra_deg``. Files from people go through :func:`parse_observing_file`.
    """
    data = dict(data)
    for key in ("target",):
        part = data.get(key)
        if isinstance(part, dict) and isinstance(part.get("ra"), (int, float)) and not isinstance(part.get("ra"), bool) and "ra_deg" not in part:
            data[key] = {("ra_deg" if k == "ra" else k): v for k, v in part.items()}
    seq = data.get("sequence")
    ref = seq.get("reference_star") if isinstance(seq, dict) else None
    if (isinstance(seq, dict) and isinstance(ref, dict) and isinstance(ref.get("ra"), (int, float)) and not isinstance(ref.get("ra"), bool)
            and "ra_deg" not in ref):
        data["sequence"] = {**seq, "reference_star": {("ra_deg" if k == "ra" else k): v for k, v in ref.items()}}
    return ObservingFile.model_validate(data)


def dump_observing_file(of: ObservingFile, fmt: str = "yaml") -> str:
    """Return the file as YAML (default) or JSON text."""
    data = of.to_dict()
    if fmt == "json":
        return json.dumps(data, indent=2)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def json_schema() -> dict:
    """Return the published JSON Schema of format version 1."""
    schema = ObservingFile.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://rosace.example.org/schema/observing-file-v1.json"
    schema["title"] = "ROSACE Observing File, version 1"
    return schema
