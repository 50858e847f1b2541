"""The observatory configuration: one TOML file describing site, devices, instrument,
module addresses and data folders.

``load_config(path)`` validates and returns a :class:`ObservatoryConfig`; errors
raise :class:`~rosace_core.errors.ConfigError` naming the file and the key.
``rosace config init`` writes the commented example shipped in
``resources/config/rosace.toml``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal, TypeVar

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rosace_core.errors import ConfigError
from rosace_core.resources import resource_path

MODULE_IDS = ("dome", "scheduler", "sequencer", "reduction", "share")
DEFAULT_PORTS = {"sim": 11111, "dome": 8701, "scheduler": 8702, "sequencer": 8703, "reduction": 8704, "share": 8705}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Site(_Strict):
    """Where the observatory is."""

    name: str = "ROSACE simulated observatory"
    latitude: float = Field(43.75, ge=-90, le=90, description="degrees, north positive")
    longitude: float = Field(6.92, ge=-180, le=360, description="degrees, east positive")
    elevation: float = Field(1270.0, ge=-500, le=9000, description="metres above sea level")
    horizon: list[tuple[float, float]] = Field(
        default_factory=list,
        description="local horizon as (azimuth deg, altitude deg) pairs; linear in between",
    )
    min_altitude: float = Field(20.0, ge=0, le=89, description="hard lower limit for pointing, degrees")

    @field_validator("horizon")
    @classmethod
    def _horizon_sorted(cls, value):
        for az, alt in value:
            if not (0 <= az <= 360 and -5 <= alt <= 90):
                raise ValueError(f"horizon point ({az}, {alt}) out of range (az 0-360, alt -5-90)")
        return sorted(value)


class Device(_Strict):
    """One Alpaca device: server address and device number."""

    url: str = "http://127.0.0.1:11111"
    device_number: int = Field(0, ge=0)
    timeout: float = Field(5.0, gt=0, description="seconds per call")
    retries: int = Field(3, ge=1)


def _default_lamps() -> dict[str, str | int]:
    return {"arc": "NeAr", "flat": "tungsten"}


class SwitchDevice(Device):
    """The Switch device carrying the calibration lamps, and which of its channels they are.

    ``lamps`` maps a lamp name (what Observing Files and instrument set-ups ask for:
    ``arc``, ``flat``, or the channel's own name such as ``NeAr``) to the Switch
    channel: its name on the device, or its channel id (0, 1...). ROSACE switches
    only these channels; any other channel of the box (a mount power outlet, a
    dew-heater dimmer) is never touched.
    """

    lamps: dict[str, str | int] = Field(default_factory=_default_lamps, description="lamp name -> Switch channel name or id")

    @field_validator("lamps")
    @classmethod
    def _lamps(cls, value):
        if not value:
            raise ValueError("at least one lamp is needed (e.g. lamps = {arc = \"NeAr\", flat = \"tungsten\"})")
        seen: dict[str, str] = {}
        for lamp, channel in value.items():
            if isinstance(channel, bool) or (isinstance(channel, int) and channel < 0) or (isinstance(channel, str) and not channel.strip()):
                raise ValueError(f"lamp {lamp!r}: a channel name or a channel id (0, 1...), not {channel!r}")
            key = str(channel).lower()
            if key in seen:
                raise ValueError(f"lamps {seen[key]!r} and {lamp!r} are the same channel {channel!r}")
            seen[key] = lamp
        return value


class ObservingConditionsDevice(Device):
    """The weather station, and the units of any quantity it does not give in ASCOM units."""

    units: dict[str, str] = Field(default_factory=dict, description="quantity -> unit (e.g. cloud_cover = \"fraction\"); default: auto")

    @field_validator("units")
    @classmethod
    def _units(cls, value):
        from rosace_core.weather import validate_units

        return validate_units(value)


#: the device roles ROSACE itself drives (the keys of [devices] that need no ``type``)
BUILTIN_ROLES = ("dome", "telescope", "spectro_camera", "guide_camera", "switch", "safety_monitor", "observing_conditions")


class ExtraDevice(Device):
    """Any other Alpaca device, under a name of the user's choice (``[devices.grating]``).

    ``type`` is its Alpaca device type (``focuser``, ``filterwheel``, ``rotator``,
    ``covercalibrator``, ``camera``, ``switch``... or a type an installed package adds
    to the ``device.role`` registry). ROSACE never moves it by itself: sequence steps
    reach it by name (``ctx.device("grating")``) and ``rosace devices check`` checks it.
    """

    type: str = Field(description="Alpaca device type: focuser, filterwheel, rotator, covercalibrator, camera, switch...")
    title: str = Field("", description="what it is, for the check and the logs (default: its name)")

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        from rosace_core.alpaca import device_classes

        known = device_classes()
        key = value.strip().lower()
        if key not in known:
            raise ValueError(f"unknown device type {value!r}; types: {', '.join(sorted(known))}")
        return key


class Devices(_Strict):
    """The observatory's Alpaca devices: the roles ROSACE drives, and any extra device by name.

    An extra device is a table with a ``type`` (``[devices.grating] type = "focuser"``);
    it is kept in :attr:`extra`. A table without ``type`` under an unknown name is refused
    (a misspelt role must not be silently ignored).
    """

    model_config = ConfigDict(extra="forbid")

    dome: Device = Device()
    telescope: Device = Device()
    spectro_camera: Device = Device(device_number=0)
    guide_camera: Device = Device(device_number=1)
    switch: SwitchDevice = SwitchDevice()
    safety_monitor: Device = Device()
    observing_conditions: ObservingConditionsDevice = ObservingConditionsDevice()
    shelter: Literal["rolloff", "dome"] = "rolloff"
    extra: dict[str, ExtraDevice] = Field(default_factory=dict, description="extra devices by name ([devices.NAME] with a type)")

    @model_validator(mode="before")
    @classmethod
    def _collect_extra(cls, data):
        """Move ``[devices.NAME]`` tables of unknown names into ``extra`` (they must have a ``type``)."""
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields)
        unknown = {k: v for k, v in data.items() if k not in known}
        if not unknown:
            return data
        extra = dict(data.get("extra") or {})
        for name, table in unknown.items():
            if not isinstance(table, dict) or "type" not in table:
                raise ValueError(f"[devices.{name}]: not a device role of ROSACE ({', '.join(BUILTIN_ROLES)}); "
                                 f"an extra device is a table with its Alpaca type, e.g. [devices.{name}] type = \"focuser\"")
            if name in extra:
                raise ValueError(f"[devices.{name}] and [devices.extra.{name}] name the same device")
            extra[name] = table
        return {**{k: v for k, v in data.items() if k in known}, "extra": extra}

    def role(self, name: str) -> Device:
        """The configuration of a device by role or extra name; KeyError naming the known ones."""
        if name in BUILTIN_ROLES:
            return getattr(self, name)
        if name in self.extra:
            return self.extra[name]
        raise KeyError(f"no device {name!r} in [devices]; roles: {', '.join(BUILTIN_ROLES)}; "
                       f"extra devices: {', '.join(sorted(self.extra)) or 'none'}")


class Instrument(_Strict):
    """What is mounted on the telescope tonight."""

    spectrograph: str = Field("alpy600", description="instrument set-up name: resources/instruments/<name>.toml or a path")
    telescope: str = "C11 280 mm f/10"
    aperture_mm: float = 280.0
    focal_length_mm: float = 2800.0
    camera_set_point: float = Field(-10.0, description="spectro camera cooling set point, deg C")
    slit_x: float = Field(320.0, description="slit position on the guide camera, px (x)")
    slit_y: float = Field(240.0, description="slit position on the guide camera, px (y)")
    guide_scale: float = Field(0.8, gt=0, description="guide camera plate scale, arcsec/px")


class ModuleEndpoint(_Strict):
    """Where a module's REST API is, and its token."""

    url: str
    token: str | None = None


def _default_modules() -> dict[str, ModuleEndpoint]:
    return {m: ModuleEndpoint(url=f"http://127.0.0.1:{DEFAULT_PORTS[m]}") for m in MODULE_IDS}


class DataFolders(_Strict):
    """Where frames, spectra and databases go."""

    root: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("rosace", appauthor=False)))

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def reduced(self) -> Path:
        return self.root / "reduced"

    @property
    def state(self) -> Path:
        return self.root / "state"


class Server(_Strict):
    """How this machine's module servers listen."""

    host: str = "127.0.0.1"
    token: str | None = Field(None, description="bearer token required on every state-changing request")


class ObservatoryConfig(_Strict):
    """The whole observatory configuration."""

    site: Site = Site()
    devices: Devices = Devices()
    instrument: Instrument = Instrument()
    modules: dict[str, ModuleEndpoint] = Field(default_factory=_default_modules)
    data: DataFolders = DataFolders()
    server: Server = Server()
    dome: dict = Field(default_factory=dict, description="options of the dome module")
    scheduler: dict = Field(default_factory=dict, description="options of the scheduler module")
    sequencer: dict = Field(default_factory=dict, description="options of the sequencer module")
    reduction: dict = Field(default_factory=dict, description="options of the reduction module")
    share: dict = Field(default_factory=dict, description="options of the share module")

    source: Path | None = Field(None, exclude=True)
    module_options: dict[str, dict] = Field(default_factory=dict, exclude=True, description="option tables of user modules")

    def options(self, module: str) -> dict:
        """Return a module's option table (built-in or user module)."""
        if module in MODULE_IDS:
            return dict(getattr(self, module) or {})
        return dict(self.module_options.get(module, {}))

    def module_url(self, module: str) -> str:
        """Return the base URL of a module's REST server."""
        endpoint = self.modules.get(module)
        if endpoint is None:
            return f"http://127.0.0.1:{DEFAULT_PORTS.get(module, 8700)}"
        return endpoint.url.rstrip("/")

    def module_token(self, module: str) -> str | None:
        """Return the token to present to a module (its own, or the server-wide one)."""
        endpoint = self.modules.get(module)
        return (endpoint.token if endpoint and endpoint.token else None) or self.server.token


OptionsModel = TypeVar("OptionsModel", bound=BaseModel)


def module_options(config, module: str, model: type[OptionsModel]) -> OptionsModel:
    """Validate a module's option table with its pydantic model and return the options.

    ``module`` is the table's name: a built-in module (``[scheduler]``) or a user
    module (``[nightlog]``, kept in ``config.module_options``). ``config`` may be
    None (defaults). A bad value raises ConfigError naming the file and the key
    (``scheduler.max_retries``), never a traceback.
    """
    if config is None:
        data: dict = {}
    elif isinstance(config, ObservatoryConfig):
        data = config.options(module)
    else:  # a plain object with the table as an attribute (tests, scripts)
        data = dict(getattr(config, module, None) or {})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [(".".join([module, *(str(p) for p in err["loc"])]), err["msg"]) for err in exc.errors()]
        raise ConfigError(getattr(config, "source", None) or "<config>", problems) from None


def default_config_path() -> Path:
    """Return the default configuration file path (``ROSACE_CONFIG`` overrides it)."""
    env = os.environ.get("ROSACE_CONFIG")
    if env:
        return Path(env)
    return Path(platformdirs.user_config_dir("rosace", appauthor=False)) / "rosace.toml"


def example_config_text() -> str:
    """Return the commented example configuration shipped with ROSACE."""
    return resource_path("config", "rosace.toml").read_text(encoding="utf-8")


def _merge_modules(data: dict) -> dict:
    modules = {m: {"url": e.url, "token": e.token} for m, e in _default_modules().items()}
    for name, value in (data.get("modules") or {}).items():
        if isinstance(value, dict):
            modules[name] = {**modules.get(name, {}), **value}
        else:
            modules[name] = value
    return {**data, "modules": modules}


def _module_tables(data: dict) -> tuple[dict, dict]:
    """Split off the option tables of user modules (any registered module id)."""
    known = set(ObservatoryConfig.model_fields)
    extra = {k: v for k, v in data.items() if k not in known and isinstance(v, dict)}
    if not extra:
        return data, {}
    from rosace_core.plugins import discover_modules

    registered = {m.name for m in discover_modules()}
    user = {k: v for k, v in extra.items() if k in registered}
    return {k: v for k, v in data.items() if k not in user}, user


def _user_loc(loc: tuple) -> tuple:
    """An error's key as the user wrote it: ``devices.grating.type`` for an extra device."""
    if len(loc) >= 3 and loc[0] == "devices" and loc[1] == "extra":
        return ("devices", *loc[2:])
    return tuple(loc)


def config_from_dict(data: dict, source: Path | str = "<config>") -> ObservatoryConfig:
    """Validate a configuration given as a dict; raise ConfigError with key paths.

    A table named after a registered user module (``[nightlog]``) is that module's
    options, kept in ``config.module_options``; any other unknown key is an error.
    """
    data, user_tables = _module_tables(data)
    try:
        cfg = ObservatoryConfig.model_validate(_merge_modules(data))
    except ValidationError as exc:
        problems = [(".".join(str(p) for p in _user_loc(err["loc"])) or "(top)", err["msg"]) for err in exc.errors()]
        raise ConfigError(source, problems) from None
    cfg.source = Path(source) if not isinstance(source, Path) else source
    cfg.module_options = user_tables
    return cfg


def app_config(config=None):
    """What every module's ``create_app(config=None, *, token=None)`` does with ``config``.

    - None: the user's configuration, :func:`load_config` (``ROSACE_CONFIG`` or the
      default path; the built-in defaults when no file is there);
    - a path (str or Path): that file, :func:`load_config`;
    - a dict: validated as a configuration file's content (:func:`config_from_dict`);
    - an ObservatoryConfig, or any other object (a test's plain namespace): as it is.

    Errors are ConfigError naming the file and the key, as for ``load_config``.
    """
    if config is None or isinstance(config, (str, Path)):
        return load_config(config)
    if isinstance(config, dict):
        return config_from_dict(config)
    return config


def load_config(path: Path | str | None = None) -> ObservatoryConfig:
    """Load and validate the configuration file; defaults when no file exists at the default path.

    Raises ConfigError for a missing explicit file, bad TOML (with its line) or
    invalid values (with their key).
    """
    explicit = path is not None or "ROSACE_CONFIG" in os.environ
    path = Path(path) if path is not None else default_config_path()
    if not path.exists():
        if explicit:
            raise ConfigError(path, [("(file)", "no such file; run `rosace config init` to write one")])
        return ObservatoryConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [("(syntax)", str(exc))]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [("(encoding)", f"not UTF-8 text: {exc}")]) from None
    return config_from_dict(data, path)
