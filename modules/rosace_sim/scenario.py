"""The simulator's scenario: site, clock, shelter, instrument, sky, weather and faults.

A scenario is a YAML file (documented in ``docs/simulator.md``; examples in
``resources/scenarios/``). Instants are absolute ISO UTC (``2025-01-15T22:00:00Z``)
or offsets from the scenario start (``+2h30m``, ``+90s``, ``+1.5h``, or a number of
seconds). :func:`load_scenario` validates it and raises
:class:`~rosace_core.errors.ConfigError` naming the file and the key.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rosace_core.errors import ConfigError
from rosace_core.resources import resource_path

FAULT_KINDS = ("disconnect", "timeout", "error", "slow", "stuck_shutter", "park_fail", "stale")
DEVICE_TYPES = ("dome", "telescope", "camera", "switch", "safetymonitor", "observingconditions", "focuser")

_OFFSET = re.compile(r"^\+?\s*((?:\d+(?:\.\d*)?\s*[dhms]\s*)+)$")
_PART = re.compile(r"(\d+(?:\.\d*)?)\s*([dhms])")
_UNIT = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_instant(value: Any, start: datetime | None) -> datetime:
    """Turn an instant (ISO text, datetime, ``+1h30m`` offset or seconds) into an aware UTC datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        if start is None:
            raise ValueError("an offset needs a scenario start instant")
        return start + timedelta(seconds=float(value))
    text = str(value).strip()
    match = _OFFSET.match(text)
    if match:
        if start is None:
            raise ValueError(f"offset {text!r} needs a scenario start instant (clock.start)")
        seconds = sum(float(n) * _UNIT[u] for n, u in _PART.findall(match.group(1)))
        return start + timedelta(seconds=seconds)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SiteModel(_Strict):
    """Where the simulated observatory stands."""

    name: str = "ROSACE simulated observatory"
    latitude: float = Field(43.75, ge=-90, le=90)
    longitude: float = Field(6.92, ge=-180, le=360)
    elevation: float = Field(1270.0, ge=-500, le=9000)
    min_altitude: float = Field(10.0, ge=-5, le=89, description="the mount refuses targets below this altitude, degrees")


class ClockModel(_Strict):
    """Start instant and rate of the simulated clock (used when ROSACE_CLOCK is not set)."""

    start: datetime | None = Field(None, description="simulated start instant (UTC); null: real clock")
    rate: float = Field(1.0, gt=0, description="simulated seconds per wall second")

    @field_validator("start")
    @classmethod
    def _utc(cls, value):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class ShelterModel(_Strict):
    """The roll-off roof or the rotating dome."""

    type: Literal["rolloff", "dome"] = "rolloff"
    shutter_time: float = Field(20.0, ge=0, description="seconds for a full open or close")
    stall_error_after: float = Field(90.0, gt=0, description="a stuck shutter reports an error after this many seconds")
    slew_rate: float = Field(5.0, gt=0, description="dome rotation, degrees per second")
    park_azimuth: float = Field(180.0, ge=0, lt=360)
    home_azimuth: float = Field(0.0, ge=0, lt=360)
    start_open: bool = False


class TrackingModel(_Strict):
    """How the mount drifts while it tracks, between guide corrections.

    The optical axis wanders from where the mount was left (after a slew, a sync
    or a pulse guide) by the worm's periodic error in right ascension,
    ``periodic_error * sin(2 pi t / worm_period + phase)``, plus a slow linear
    drift (polar misalignment, flexure) on both axes, counted from the end of
    the last slew. All zero: perfect tracking.
    """

    periodic_error: float = Field(2.5, ge=0, le=120, description="semi-amplitude of the periodic error in RA, arcsec on the sky")
    worm_period: float = Field(480.0, gt=0, description="worm period, seconds")
    drift_ra: float = Field(0.3, ge=-60, le=60, description="east-west drift, arcsec per minute (positive: the pointing moves east)")
    drift_dec: float = Field(0.4, ge=-60, le=60, description="north-south drift, arcsec per minute (positive: north)")


class TelescopeModel(_Strict):
    """The equatorial mount."""

    slew_rate: float = Field(4.0, gt=0, description="degrees per second on each axis")
    settle_time: float = Field(2.0, ge=0, description="seconds added to every slew")
    pointing_error: float = Field(6.0, ge=0, description="rms pointing error after a slew, arcsec per axis")
    guide_rate: float = Field(0.5, gt=0, le=2, description="pulse-guide rate as a fraction of sidereal")
    can_pulse_guide: bool = Field(True, description="false: a mount without pulse guiding (CanPulseGuide false)")
    can_park: bool = Field(True, description="false: a mount that cannot park (CanPark false, Park 0x400)")
    equatorial_system: int = Field(1, ge=0, le=4, description="EquatorialSystem reported (1 topocentric; 2 J2000, 3 J2050, 4 B1950)")
    park_ha: float = Field(0.0, ge=-12, le=12, description="park position: hour angle, hours")
    park_dec: float = Field(90.0, ge=-90, le=90, description="park position: declination, degrees")
    start_parked: bool = True
    aperture_mm: float = 280.0
    focal_length_mm: float = 2800.0
    tracking: TrackingModel = TrackingModel()


class CameraModel(_Strict):
    """A cooled camera (the spectrograph's); the sensor size comes from the instrument set-up."""

    set_point: float = -10.0
    cooled: bool = Field(True, description="false: a camera without cooling control (CanSetCCDTemperature false)")
    cooling_time_constant: float = Field(120.0, gt=0, description="seconds")
    max_delta: float = Field(40.0, gt=0, description="coldest reachable below ambient, degC")
    readout_time: float = Field(1.0, ge=0, description="seconds (simulated) to read the sensor")


class GuideCameraModel(_Strict):
    """The slit-jaw guide camera."""

    nx: int = Field(640, ge=16, le=8192)
    ny: int = Field(480, ge=16, le=8192)
    pixel_um: float = 5.6
    scale: float = Field(0.8, gt=0, description="arcsec per pixel")
    slit_x: float = 320.0
    slit_y: float = 240.0
    slit_length_arcsec: float = 180.0
    zero_point: float = Field(1.0e8, gt=0, description="e-/s for a V=0 star reaching the guide camera")
    readout_time: float = 0.2


class StarModel(BaseModel):
    """A star on the simulated sky (catalogue entry)."""

    model_config = ConfigDict(extra="allow")

    name: str
    ra: float = Field(ge=0, lt=360, description="ICRS, degrees")
    dec: float = Field(ge=-90, le=90, description="ICRS, degrees")
    vmag: float = 6.0
    spectral_type: str = "A0V"
    be_emission: dict | None = None
    rv_curve: dict | None = None


class GenericStarModel(_Strict):
    """What the spectrograph sees at a pointing with no catalogue star."""

    vmag: float = 7.0
    spectral_type: str = "A0V"
    match_radius: float = Field(120.0, gt=0, description="arcsec: a catalogue star closer than this to the pointing is the one on the slit")


class WeatherValues(_Strict):
    """Weather quantities; any may be left out (timeline entries and live overrides)."""

    cloud_cover: float | None = Field(None, ge=0, le=100)
    rain_rate: float | None = Field(None, ge=0)
    wind_speed: float | None = Field(None, ge=0)
    wind_gust: float | None = Field(None, ge=0)
    humidity: float | None = Field(None, ge=0, le=100)
    sky_brightness: float | None = Field(None, ge=0)
    sky_quality: float | None = None
    temperature: float | None = None
    pressure: float | None = None
    seeing: float | None = Field(None, gt=0)
    safe: bool | None = None


class WeatherPoint(WeatherValues):
    """One entry of the weather timeline: values hold from ``at`` until the next entry."""

    at: Any = "+0s"


class SafetyLimits(_Strict):
    """When the safety monitor says unsafe (unless a weather entry sets ``safe``)."""

    max_cloud_cover: float = 70.0
    max_rain_rate: float = 0.0
    max_wind_speed: float = 12.0
    max_humidity: float = 90.0


class WeatherModel(_Strict):
    """The weather timeline and how often the station measures."""

    update_interval: float = Field(30.0, gt=0, description="seconds between station measurements")
    limits: SafetyLimits = SafetyLimits()
    timeline: list[WeatherPoint] = Field(default_factory=lambda: [WeatherPoint()])


class FaultModel(_Strict):
    """A fault at a given time."""

    at: Any = "+0s"
    device: Literal["dome", "telescope", "camera", "switch", "safetymonitor", "observingconditions"]
    device_number: int = 0
    kind: Literal["disconnect", "timeout", "error", "slow", "stuck_shutter", "park_fail", "stale"]
    duration: float | None = Field(None, gt=0, description="simulated seconds; null: until cleared")


class SwitchChannelModel(_Strict):
    """One channel of the simulated switch box: a relay (max 1) or a value channel such as a dimmer."""

    name: str
    description: str = ""
    lamp: Literal["NeAr", "tungsten"] | None = Field(None, description="light this channel sends into the spectrograph when on")
    max: float = Field(1.0, ge=1, description="1: an on/off relay; more: a value channel (0..max, step 1)")
    value: float = Field(0.0, ge=0, description="value at start (0: off)")


def _default_channels() -> list[SwitchChannelModel]:
    return [
        SwitchChannelModel(name="NeAr", description="Neon-argon arc lamp of the calibration module", lamp="NeAr"),
        SwitchChannelModel(name="tungsten", description="Tungsten (halogen) flat-field lamp of the calibration module", lamp="tungsten"),
    ]


class SwitchModel(_Strict):
    """The switch box: the calibration lamps, and any other channel it carries (power outlets, dimmers)."""

    channels: list[SwitchChannelModel] = Field(default_factory=_default_channels, min_length=1)


class FocuserModel(_Strict):
    """The focuser (or a spectrograph's grating-angle stepper driven as a focuser)."""

    max_step: int = Field(100000, gt=0, description="highest position, steps")
    position: int = Field(50000, ge=0, description="position at the start")
    speed: float = Field(2000.0, gt=0, description="steps per second (observatory clock)")
    step_size: float = Field(1.0, gt=0, description="microns per step")

    @model_validator(mode="after")
    def _inside(self):
        if self.position > self.max_step:
            raise ValueError(f"position {self.position} is beyond max_step {self.max_step}")
        return self


DEFAULT_WEATHER = {
    "cloud_cover": 0.0, "rain_rate": 0.0, "wind_speed": 3.0, "wind_gust": 5.0, "humidity": 60.0,
    "sky_brightness": 0.01, "sky_quality": 21.0, "temperature": 5.0, "pressure": 870.0, "seeing": 2.5,
}


class Scenario(_Strict):
    """A whole simulated night (see docs/simulator.md)."""

    name: str = "clear"
    description: str = ""
    site: SiteModel = SiteModel()
    clock: ClockModel = ClockModel()
    shelter: ShelterModel = ShelterModel()
    telescope: TelescopeModel = TelescopeModel()
    instrument: str = Field("alpy600", description="instrument set-up: resources/instruments/<name>.toml or a path")
    spectro_camera: CameraModel = CameraModel()
    guide_camera: GuideCameraModel = GuideCameraModel()
    switch: SwitchModel = SwitchModel()
    focuser: FocuserModel = FocuserModel()
    stars: list[StarModel] = Field(default_factory=list)
    generic_star: GenericStarModel = GenericStarModel()
    weather: WeatherModel = WeatherModel()
    faults: list[FaultModel] = Field(default_factory=list)
    truth_dir: Path | None = None
    seed: int = 1

    def instant(self, value: Any) -> datetime:
        """Resolve an instant of this scenario (absolute or offset from the start)."""
        return parse_instant(value, self.clock.start)


def scenario_path(name: str) -> Path:
    """Return the path of a shipped scenario by name (``clear``, ``demo_night``) or the path given."""
    path = Path(name)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.exists():
        return path
    return resource_path("scenarios", f"{name}.yaml")


def load_scenario(source: "Scenario | dict | str | Path | None" = None) -> Scenario:
    """Load and validate a scenario from a path, a shipped name, a dict, or None (``clear``)."""
    if isinstance(source, Scenario):
        return source
    where = "scenario"
    if source is None:
        source = "clear"
    if isinstance(source, (str, Path)):
        path = scenario_path(str(source))
        where = str(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(where, [("file", "scenario file not found")]) from None
        except yaml.YAMLError as exc:
            raise ConfigError(where, [("file", f"not valid YAML: {exc}")]) from None
    else:
        data = dict(source)
    try:
        scenario = Scenario.model_validate(data)
        for point in scenario.weather.timeline:
            scenario.instant(point.at)
        for fault in scenario.faults:
            scenario.instant(fault.at)
    except ValidationError as exc:
        raise ConfigError(where, [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]) from None
    except ValueError as exc:
        raise ConfigError(where, [("at", str(exc))]) from None
    return scenario
