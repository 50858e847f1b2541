"""The bias/dark library: calibration frames reused across nights.

A bias or dark is reusable while the CCD temperature (within a tolerance),
exposure time and binning match and it is not too old. Observations note what
they need; whatever the library lacks is taken at the end of the night (or when
clouds stop the observing), with the shutter closed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from rosace_core.clock import now
from rosace_core.errors import DeviceError

from rosace_sequencer.frames import FrameInfo, StorageError, build_header, check_free_space, frame_folder, frame_name, night_of, write_frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Need:
    """One library entry an observation needs."""

    kind: str  # BIAS | DARK
    exptime: float
    temperature: float
    binning: tuple[int, int]

    @classmethod
    def from_dict(cls, d: dict) -> "Need":
        bx, by = d["binning"]
        return cls(d["kind"], float(d["exptime"]), float(d["temperature"]), (bx, by))


def matching(journal, need: Need, *, tolerance: float, max_age_days: float) -> list[str]:
    """Return the library frames that fit ``need`` (paths that still exist)."""
    oldest = now() - timedelta(days=max_age_days)
    out = []
    for row in journal.library_frames(need.kind):
        if (row["binx"], row["biny"]) != tuple(need.binning):
            continue
        if abs(row["temperature"] - need.temperature) > tolerance:
            continue
        if need.kind == "DARK" and abs(row["exptime"] - need.exptime) > max(0.01, 0.01 * need.exptime):
            continue
        if datetime.fromisoformat(row["created"]) < oldest or not Path(row["path"]).exists():
            continue
        out.append(row["path"])
    return sorted(out)


def missing(journal, needs: list[Need], *, tolerance: float, max_age_days: float) -> list[Need]:
    """Return the needs the library cannot serve, without duplicates."""
    seen: set[Need] = set()
    out = []
    for need in needs:
        key = Need(need.kind, round(need.exptime, 3) if need.kind == "DARK" else 0.0, round(need.temperature, 1), (need.binning[0], need.binning[1]))
        if key in seen:
            continue
        seen.add(key)
        if not matching(journal, need, tolerance=tolerance, max_age_days=max_age_days):
            out.append(need)
    return out


def take_missing(needs: list[Need], *, hw, journal, config, detector, options, control, raw_root: Path) -> list[str]:
    """Take the library frames for ``needs`` (shutter closed); return the paths written.

    Frames go to ``<raw>/<night>/library/`` named like any frame, with the
    observation id ``lib-<night>``. A device failure stops the session cleanly:
    what was taken is kept.
    """
    written: list[str] = []
    if not needs:
        return written
    night = night_of(now())
    obs_id = f"lib-{night}"
    folder = frame_folder(raw_root, night, "library")
    counters: dict[str, int] = {}
    try:
        hw.connect("camera")
        for i, need in enumerate(needs, 1):
            hw.camera.set_binning(*need.binning)
            hw.wait_cooled(need.temperature, tolerance=options.cooling_tolerance, timeout=options.cooling_timeout, control=control)
            for _ in range(options.library_count):
                control.check()
                n = counters.get(need.kind, 0) + 1
                path = folder / frame_name(obs_id, 1 if need.kind == "BIAS" else 2, need.kind, n)
                while path.exists():  # an earlier session the same night
                    n += 1
                    path = folder / frame_name(obs_id, 1 if need.kind == "BIAS" else 2, need.kind, n)
                counters[need.kind] = n
                check_free_space(raw_root, options.min_free_gb, options.disk_quota_gb)  # never expose what cannot be stored
                ccd = hw.camera.ccd_temperature
                exp = hw.expose(hw.camera, need.exptime, light=False, control=control, readout_timeout=options.readout_timeout, readout_min_wall=options.readout_min_wall)
                info = FrameInfo(imagetyp=need.kind, exptime=need.exptime, date_obs=exp.start, obj="library", lamp="none",
                                 observation_id=obs_id, step="library", step_index=1 if need.kind == "BIAS" else 2, number=n,
                                 binning=need.binning, ccd_temp=ccd, set_temp=need.temperature, sim_truth=hw.truth_id())
                write_frame(path, exp.image, build_header(info, config, detector, camera=hw.caps.get("camera")))
                journal.add_frame(path, obs_id, need.kind, step="library", number=n, exptime=need.exptime)
                journal.add_library_frame(path, need.kind, need.temperature, need.exptime, need.binning)
                written.append(str(path))
            log.info("library: %d %s frame(s) of %.3g s at %.1f C taken (%d/%d)", options.library_count, need.kind,
                     need.exptime, need.temperature, i, len(needs))
    except DeviceError as exc:
        log.warning("library session stopped by a device error: %s", exc)
    except StorageError as exc:
        log.warning("library session stopped: %s", exc)
    return written
