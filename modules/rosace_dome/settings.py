"""Options of the dome module: the ``[dome]`` table of the observatory configuration.

Every duration is in seconds of observatory clock time (``rosace_core.clock``),
so that a demo night played at 100x keeps the same rules; only
``min_poll_wall`` is in wall seconds (it bounds the load a fast clock puts on
the devices).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rosace_core.config import module_options


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SensorLimit(_Strict):
    """Limits of one ObservingConditions quantity; outside them the roof must close."""

    max: float | None = Field(None, description="unsafe above this value")
    min: float | None = Field(None, description="unsafe below this value")
    max_age: float | None = Field(None, gt=0, description="seconds; a reading older than this is unsafe (default: max_reading_age)")
    unit: str = ""


def _default_limits() -> dict[str, SensorLimit]:
    return {
        "cloud_cover": SensorLimit(max=70.0, unit="%"),
        "rain_rate": SensorLimit(max=0.0, unit="mm/h"),
        "wind_speed": SensorLimit(max=12.0, unit="m/s"),
        "humidity": SensorLimit(max=90.0, unit="%"),
    }


class SlavingGeometry(_Strict):
    """Where the mount stands inside a rotating dome (metres) and how the slit follows it.

    The frame is centred on the dome's centre (the centre of its hemisphere, at the
    spring line): x east, y north, z up.
    """

    enabled: bool = True
    radius: float = Field(1.5, gt=0, description="dome radius, metres")
    mount_east: float = Field(0.0, description="axes intersection east of the dome centre, metres")
    mount_north: float = Field(0.0, description="axes intersection north of the dome centre, metres")
    pier_height: float = Field(0.0, description="axes intersection above the dome centre (spring line), metres")
    gem_offset: float = Field(0.0, ge=0, description="German mount: polar axis to optical axis along the declination axis, metres")
    tolerance: float = Field(3.0, gt=0, description="degrees of azimuth error before the dome moves")
    interval: float = Field(10.0, gt=0, description="seconds between slaving updates")


class GuardianSettings(_Strict):
    """The guardian (``rosace dome guardian``): the independent process that parks and closes
    when the dome module is silent or the sky is unsafe (see docs/operations.md).

    Heartbeat durations are wall seconds (a process is alive or not in real time); the
    weather grace is clock seconds, like every safety rule of the dome module.
    """

    enabled: bool = Field(True, description="`rosace dome serve` starts the guardian beside the dome module")
    period: float = Field(2.0, gt=0, description="wall seconds between two checks")
    heartbeat_timeout: float = Field(2.0, gt=0, description="wall seconds the dome module's status may take to answer")
    silence: float = Field(20.0, gt=0, description="wall seconds without progress of the dome module's safety loop before the guardian acts")
    unsafe_grace: float = Field(120.0, ge=0, description="clock seconds the dome module gets to close for bad weather before the guardian acts itself")
    orphan_exit: float = Field(300.0, gt=0, description="wall seconds after which a guardian whose dome module is gone leaves, once the roof is closed and the mount parked (or nothing answers)")


class DomeSettings(_Strict):
    """The validated ``[dome]`` table."""

    poll_period: float = Field(1.0, gt=0, description="seconds between safety evaluations")
    min_poll_wall: float = Field(0.2, gt=0, description="wall seconds: lower bound of the poll interval under a fast clock")
    limits: dict[str, SensorLimit] = Field(default_factory=_default_limits, description="ObservingConditions limits by ROSACE name")
    max_reading_age: float = Field(180.0, gt=0, description="seconds; older readings count as unsafe")
    require_safety_monitor: bool = Field(True, description="the SafetyMonitor's IsSafe is part of the verdict")
    sun_max_altitude: float = Field(-6.0, ge=-90, le=90, description="degrees; the roof opens only with the sun below")
    reopen_delay: float = Field(900.0, ge=0, description="seconds of continuous safe readings needed after an unsafe period")
    lease_max_duration: float = Field(1800.0, gt=0, description="longest lease a client may take or renew, seconds")
    shutter_timeout: float = Field(240.0, gt=0, description="seconds a shutter or roof move may take before it is reported stuck")
    park_timeout: float = Field(300.0, gt=0, description="seconds the mount may take to park")
    close_retry: float = Field(60.0, gt=0, description="seconds before an automatic close that failed is tried again")
    park_retry: float = Field(15.0, gt=0, description="seconds between park attempts while a close waits for a mount that will not confirm its park")
    gap_tolerance: float = Field(10.0, gt=0, description="wall seconds without any reading (frozen process, stalled loop) after which the conditions meanwhile count as unknown")
    close_if_mount_unparked: bool | None = Field(
        None, description="close even when the mount failed to park (default: false for a roll-off roof, true for a dome)"
    )
    slaving: SlavingGeometry = SlavingGeometry()
    guardian: GuardianSettings = GuardianSettings()
    alarm_command: list[str] | str | None = Field(None, description="program run on each alarm (ROSACE_ALARM_* in its environment)")
    alarm_url: str | None = Field(None, description="URL receiving a JSON POST on each alarm")
    state_file: Path | None = Field(None, description="where the module keeps its state (default <data>/state/dome.json)")

    @model_validator(mode="after")
    def _known_sensors(self):
        from rosace_core.alpaca import CONDITIONS

        unknown = sorted(set(self.limits) - set(CONDITIONS))
        if unknown:
            raise ValueError(f"unknown sensor(s) in limits: {', '.join(unknown)} (known: {', '.join(CONDITIONS)})")
        return self


def load_settings(config=None) -> tuple[DomeSettings, Literal["rolloff", "dome"], Path]:
    """Validate ``config.dome``; return (settings, shelter type, state file path).

    Raises ConfigError naming the key (``dome.<key>``) when the table is invalid.
    """
    settings = module_options(config, "dome", DomeSettings)
    shelter: Literal["rolloff", "dome"] = config.devices.shelter if config is not None else "rolloff"
    if settings.state_file is not None:
        state_file = Path(settings.state_file)
    elif config is not None:
        state_file = config.data.state / "dome.json"
    else:
        from rosace_core.config import DataFolders

        state_file = DataFolders().state / "dome.json"
    return settings, shelter, state_file
