"""The ``[sequencer]`` table of the observatory configuration, validated."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from rosace_core.config import module_options


class SequencerOptions(BaseModel):
    """Options of the sequencer module (``[sequencer]`` in ``rosace.toml``).

    Durations are simulated-clock seconds unless they say "wall".
    """

    model_config = ConfigDict(extra="forbid")

    require_dome: bool = Field(False, description="observe only under a roof lease from the dome module; false: roof assumed open, safety from the SafetyMonitor alone")
    use_scheduler: bool = Field(True, description="robotic night: ask the scheduler module for the next observation")
    hand_to_reduction: bool = Field(True, description="after each observation, POST its frames to the reduction module")
    handoff_backoff: float = Field(2.0, gt=0, description="wall seconds before a failed hand-off to the reduction is sent again; doubles each time")
    handoff_max_backoff: float = Field(30.0, gt=0, description="longest wait between two tries of a hand-off to the reduction, wall seconds")
    lease_duration: float = Field(600.0, gt=30, description="roof lease duration, seconds; renewed at half-life")
    cooling_timeout: float = Field(600.0, gt=0, description="seconds to reach the camera set point")
    cooling_tolerance: float = Field(1.0, gt=0, description="deg C around the set point")
    slew_timeout: float = Field(240.0, gt=0, description="seconds")
    settle_time: float = Field(2.0, ge=0, description="seconds after a slew before the first guide image")
    readout_timeout: float = Field(60.0, gt=0, description="seconds allowed beyond the exposure time for the image to be ready")
    readout_min_wall: float = Field(20.0, gt=0, description="wall seconds always allowed for readout and download (an accelerated clock does not speed up the camera's computer)")
    retries: int = Field(3, ge=1, le=10, description="attempts of a failing device action before the observation fails")
    backoff: float = Field(2.0, ge=0, description="first back-off between attempts, seconds; doubles each time")
    safety_poll: float = Field(5.0, gt=0, description="seconds between safety checks during an exposure")
    min_free_gb: float = Field(2.0, ge=0, description="minimum free space for raw frames, GB, checked before every exposure: below it the night stops observing (roof released, alarm) and resumes by itself once space is freed")
    disk_quota_gb: float | None = Field(None, gt=0, description="most space the raw data folder may use, GB; the free space is then the smaller of the disk's and what the quota leaves (null: the whole disk)")
    storage_retry: float = Field(300.0, gt=0, description="seconds between checks of the disk while it is full or frames cannot be written")
    sun_dawn_altitude: float = Field(-12.0, ge=-18, le=0, description="the night ends when the Sun rises above this altitude, degrees")
    idle_wait: float = Field(300.0, gt=0, description="seconds to wait when the scheduler has nothing to observe now")
    unsafe_wait: float = Field(600.0, gt=0, description="seconds to wait after an unsafe verdict before asking again")
    failure_pause: float = Field(300.0, ge=0, description="seconds to wait after a failed observation before the next one (devices may recover)")
    resume_after_crash: bool = Field(True, description="on restart, resume an observation interrupted by a crash (else hand it back to the scheduler)")
    resume_max_age: float = Field(3600.0, gt=0, description="seconds: an interrupted observation older than this is re-queued, not resumed")
    guide_rate: float = Field(7.52, gt=0, description="pulse-guide speed, arcsec per second (0.5 x sidereal)")
    mount_worm_period: float | None = Field(None, gt=0, description="the mount's worm period, seconds (its periodic error repeats with it): slit acquisition follows the periodic error when a move takes a good part of it (an accelerated clock); null: a drift rate only")
    guide_x_sign: int = Field(1, description="+1 if the guide camera x axis grows to the East (first guess; refined while centring)")
    guide_y_sign: int = Field(1, description="+1 if the guide camera y axis grows to the North (first guess; refined while centring)")
    guide_detect_sigma: float = Field(6.0, gt=0, description="star detection threshold, sigma above the background")
    guiding: bool = Field(False, description="correct the slit position between science exposures from a slit-jaw image")
    guide_during_exposure: bool = Field(True, description="guide on the slit while the science camera exposes (exposures longer than guide_min_exposure)")
    guide_min_exposure: float = Field(30.0, ge=0, description="science exposures longer than this many seconds are guided while they integrate")
    guide_exposure: float | None = Field(None, gt=0, le=60, description="guide camera exposure while guiding, seconds; null: the Observing File's acquisition exposure")
    guide_interval: float = Field(2.0, ge=0, description="seconds between the end of a guide correction and the next guide exposure")
    guide_min_wall_interval: float = Field(0.25, ge=0, description="wall seconds between guide cycles at least (an accelerated clock must not make a busy loop)")
    guide_aggressiveness: float = Field(0.7, gt=0, le=1, description="fraction of the measured offset corrected at each guide cycle")
    guide_min_move: float = Field(0.15, ge=0, description="offsets below this many arcsec (per axis) are not corrected")
    guide_max_move: float = Field(3.0, gt=0, description="largest correction per axis and guide cycle, arcsec")
    guide_slit_width: float | None = Field(None, gt=0, description="slit width on the sky, arcsec; null: from the instrument set-up")
    step_files: list[Path] = Field(default_factory=list, description="Python files defining extra sequence steps")
    library_temperature_tolerance: float = Field(2.0, gt=0, description="deg C: a bias/dark of the library matches within this")
    library_max_age_days: float = Field(60.0, gt=0, description="library frames older than this are retaken")
    library_count: int = Field(5, ge=1, le=50, description="frames per bias/dark library entry")
    bias_time: float = Field(0.001, gt=0, description="exposure time used for a bias, seconds")


def sequencer_options(config) -> SequencerOptions:
    """Validate ``config.sequencer``; raise ConfigError naming the key."""
    return module_options(config, "sequencer", SequencerOptions)
