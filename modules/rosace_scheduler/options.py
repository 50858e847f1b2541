"""The scheduler's options: the ``[scheduler]`` table of the observatory configuration."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from rosace_core.config import module_options


class SchedulerOptions(BaseModel):
    """Options of the scheduler module (``[scheduler]`` in rosace.toml).

    Times are seconds, angles degrees.
    """

    model_config = ConfigDict(extra="forbid")

    queue_folder: Path | None = Field(None, description="folder of Observing Files watched for new/changed/removed files (default <data root>/observing_files)")
    database: Path | None = Field(None, description="SQLite file of the queue and history (default <data root>/state/scheduler.sqlite)")
    watch_interval: float = Field(5.0, ge=0, description="seconds (wall clock) between two scans of the queue folder; 0 disables the watcher thread")
    grid_step: float = Field(60.0, ge=10, le=600, description="time grid of the night, seconds")
    slew_rate: float = Field(2.0, gt=0, description="mount slew rate, degrees per second")
    slew_settle: float = Field(15.0, ge=0, description="settling time after each slew, seconds")
    first_slew: float = Field(60.0, ge=0, description="slew time assumed when the mount position is unknown (from park), seconds")
    readout: float = Field(8.0, ge=0, description="camera readout and download per frame, seconds")
    acquisition: float = Field(60.0, ge=0, description="slit acquisition overhead on top of the guide exposures, seconds")
    reference_overhead: float = Field(300.0, ge=0, description="time added for a reference star (slew, acquisition, exposures), seconds")
    max_retries: int = Field(2, ge=0, description="failed attempts of a file per night before it is held until the next night")
    dispatch_grace: float = Field(1800.0, ge=0, description="a dispatched observation with no outcome returns to the queue this long after its planned end, seconds")
    altitude_margin: float = Field(0.02, ge=0, description="safety margin on altitude limits, degrees")
    reference_min_altitude: float = Field(30.0, ge=0, le=89, description="lowest altitude of an automatic reference star, degrees")
    closing_sun_altitude: float | None = Field(None, ge=-90, le=90, description="sun altitude at which the dome closes the roof, degrees: nothing is planned to run past it (the stricter of this and a file's own sun limit wins); null: the [dome] table's sun_max_altitude, else learnt from the dome module's status")
    learn_dome_limit: bool = Field(True, description="ask the dome module's REST status for its closing sun altitude when neither closing_sun_altitude nor [dome] sun_max_altitude says it")
    dome_status_interval: float = Field(300.0, gt=0, description="wall seconds between two questions to the dome module about its limits")
    max_file_bytes: int = Field(262144, ge=1024, description="largest Observing File accepted (REST and queue folder), bytes; larger: 413")
    max_queue_files: int = Field(500, ge=1, description="most Observing Files in the queue; one more is refused (422) until one is removed")
    rule_files: list[Path] = Field(default_factory=list, description="Python files of user rules (constraints, scoring rules), all used; relative to the configuration file")
    rules: dict[str, dict] = Field(default_factory=dict, description="[scheduler.rules.NAME] options of each user rule (also turns on a rule installed through the rosace.scheduler_rules entry points)")


def scheduler_options(config) -> SchedulerOptions:
    """Validate ``config.scheduler``; raise ConfigError naming the bad key."""
    return module_options(config, "scheduler", SchedulerOptions)
