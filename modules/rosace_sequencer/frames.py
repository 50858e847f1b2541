"""Raw frames on disk: folder layout, file names, headers, atomic writes.

The layout and keywords are the contract with the reduction module
(``docs/dev/contracts.md``): ``<data root>/raw/<night>/<target>/`` and
``<observation id>_<step nn>_<IMAGETYP>_<nnn>.fits``. A file appears under its
final name only once complete (temporary file in the same folder, then an
atomic rename), so a crash never leaves a half-written frame under a real name.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from rosace_core.errors import ConfigError, RosaceError
from rosace_core.instrument import InstrumentSetup, load_instrument
from rosace_core.state import atomic_write

log = logging.getLogger(__name__)

IMAGETYPES = ("LIGHT", "ARC", "FLAT", "BIAS", "DARK")
TMP_SUFFIX = ".fits.part"
_NAME = re.compile(r"^(?P<obs>.+)_(?P<step>\d{2})_(?P<type>LIGHT|ARC|FLAT|BIAS|DARK)_(?P<n>\d{3})\.fits$")


class StorageError(RosaceError):
    """Raw frames cannot be stored: too little free space, or a frame could not be written."""


def folder_size(folder: Path) -> int:
    """Return the bytes used by the files under ``folder`` (0 if it does not exist)."""
    total = 0
    stack = [Path(folder)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(Path(entry.path))
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:  # a file removed while we walk: not ours to count
                        pass
        except OSError:
            pass
    return total


def free_gb(folder: Path, quota_gb: float | None = None) -> float:
    """Return the space (GB) still available for frames under ``folder``.

    The disk's free space, or less when ``quota_gb`` caps what the folder may use
    (an observatory PC whose disk is shared with other work).
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    free = shutil.disk_usage(probe).free / 1e9
    if quota_gb is not None:
        free = min(free, quota_gb - folder_size(folder) / 1e9)
    return free


def check_free_space(folder: Path, min_free_gb: float, quota_gb: float | None = None) -> float:
    """Return the free space (GB) for frames under ``folder``; StorageError below ``min_free_gb``."""
    free = free_gb(folder, quota_gb)
    if free < min_free_gb:
        where = f"of the {quota_gb:g} GB allowed to {folder}" if quota_gb is not None else f"in {folder}"
        raise StorageError(f"disk full: only {max(free, 0.0):.2f} GB free {where}; frames need {min_free_gb:g} GB free")
    return free


def check_writable(folder: Path) -> None:
    """Create ``folder`` and write and remove a small file in it; StorageError if that fails."""
    try:
        probe = atomic_write(Path(folder) / ".rosace-write-probe", b"ok", fsync=False)
        probe.unlink()
    except OSError as exc:
        raise StorageError(f"frames cannot be written in {folder}: {exc}") from exc


def night_of(instant: datetime) -> str:
    """Return the night label YYYYMMDD: the UTC date of the evening (instant - 12 h)."""
    return (instant.astimezone(timezone.utc) - timedelta(hours=12)).strftime("%Y%m%d")


def safe_name(text: str) -> str:
    """Return ``text`` usable as a folder name (letters, digits, ``.+-``; others become ``_``)."""
    cleaned = re.sub(r"[^A-Za-z0-9.+-]+", "_", text.strip()).strip("_")
    return cleaned or "unnamed"


def safe_obs_id(obs_id: str) -> str:
    """Return an observation id usable as a file-name prefix (no ``_``, which separates fields)."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", obs_id.strip()).strip("-") or "obs"


def frame_folder(raw_root: Path, night: str, target: str) -> Path:
    """Return ``<raw root>/<night>/<target>/``."""
    return Path(raw_root) / night / safe_name(target)


def frame_name(obs_id: str, step_index: int, imagetyp: str, number: int) -> str:
    """Return ``<observation id>_<step nn>_<IMAGETYP>_<nnn>.fits`` (``number`` counts from 1)."""
    if imagetyp not in IMAGETYPES:
        raise ValueError(f"IMAGETYP must be one of {IMAGETYPES}, not {imagetyp!r}")
    return f"{safe_obs_id(obs_id)}_{step_index:02d}_{imagetyp}_{number:03d}.fits"


def parse_frame_name(name: str) -> dict | None:
    """Split a frame file name into its fields; None if it is not a frame name."""
    m = _NAME.match(name)
    if not m:
        return None
    return {"obs": m["obs"], "step": int(m["step"]), "imagetyp": m["type"], "number": int(m["n"])}


@dataclass(frozen=True)
class Detector:
    """What the headers need from the instrument set-up file (rosace_core.instrument).

    ``gain`` and ``read_noise`` are None when the set-up file does not give them
    (or cannot be read): the headers then leave GAIN and RDNOISE out rather than
    write an invented value.
    """

    name: str = "unknown"
    gain: float | None = None
    read_noise: float | None = None
    nx: int = 0
    ny: int = 0
    slit_width: float | None = None  # arcsec on the sky
    setup: InstrumentSetup | None = None
    extra: dict = field(default_factory=dict)


def load_setup(name_or_path: str, search: tuple[str, ...] = ()) -> Detector:
    """The detector of an instrument set-up (``resources/instruments/<name>.toml`` or a path).

    A set-up that cannot be found or read is logged (naming the file and key)
    and gives a Detector that knows only the name: frames are still taken, their
    headers say nothing of the gain and read noise.
    """
    try:
        setup = load_instrument(name_or_path, tuple(search))
    except ConfigError as exc:
        log.error("instrument set-up %s: %s; raw frames will carry no GAIN or RDNOISE", name_or_path, exc)
        return Detector(name=Path(str(name_or_path)).stem if str(name_or_path).lower().endswith(".toml") else str(name_or_path))
    det = setup.detector
    missing = [k for k in ("gain", "read_noise") if det.declared(k) is None]
    if missing:
        log.warning("instrument set-up %s gives no detector %s: raw frames will not carry %s", setup.name, " or ".join(missing),
                    " or ".join({"gain": "GAIN", "read_noise": "RDNOISE"}[k] for k in missing))
    return Detector(
        name=setup.name,
        gain=det.declared("gain"),
        read_noise=det.declared("read_noise"),
        nx=det.nx,
        ny=det.ny,
        slit_width=float(setup.geometry.slit_width),
        setup=setup,
        extra=setup.model_dump(),
    )


def _sexagesimal(ra_deg: float, dec_deg: float) -> tuple[str, str]:
    ra_h = (ra_deg % 360.0) / 15.0
    h = int(ra_h)
    m = int((ra_h - h) * 60)
    s = ((ra_h - h) * 60 - m) * 60
    sign = "-" if dec_deg < 0 else "+"
    d_abs = abs(dec_deg)
    d = int(d_abs)
    dm = int((d_abs - d) * 60)
    ds = ((d_abs - d) * 60 - dm) * 60
    return f"{h:02d}:{m:02d}:{s:05.2f}", f"{sign}{d:02d}:{dm:02d}:{ds:04.1f}"


def airmass_at(ra: float, dec: float, when: datetime, site) -> float | None:
    """Return the airmass (sec z, Pickering-free plain secant) of (ra, dec) at ``when``; None below the horizon."""
    from astropy import units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.time import Time

    loc = EarthLocation(lat=site.latitude * u.deg, lon=site.longitude * u.deg, height=site.elevation * u.m)
    altaz = SkyCoord(ra * u.deg, dec * u.deg).transform_to(AltAz(obstime=Time(when), location=loc))
    alt = float(altaz.alt.deg)
    if alt <= 1.0:
        return None
    return float(1.0 / np.sin(np.radians(alt)))


@dataclass
class FrameInfo:
    """Everything a raw frame header says, gathered by the sequence step that takes it."""

    imagetyp: str
    exptime: float
    date_obs: datetime
    obj: str
    ra: float | None = None
    dec: float | None = None
    lamp: str = "none"
    observation_id: str = ""
    file_id: str = ""
    file_hash: str = ""
    step: str = ""
    step_index: int = 0
    number: int = 1
    binning: tuple[int, int] = (1, 1)
    ccd_temp: float | None = None
    set_temp: float | None = None
    observer: str = ""
    reference: bool = False
    sim_truth: str | None = None
    campaign: str = ""  # the Observing File's programme.campaign, carried to the reduction and share
    extra: dict[str, Any] = field(default_factory=dict)


def _positive(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if v > 0 and np.isfinite(v) else None


def build_header(info: FrameInfo, config, detector: Detector, camera: dict | None = None):
    """Return the astropy Header of a raw frame (keywords of docs/dev/contracts.md).

    ``camera``: the spectrograph camera's capabilities (``Hardware.caps["camera"]``);
    its ElectronsPerADU gives GAIN when the set-up file does not.
    """
    from astropy.io import fits
    from astropy.time import Time

    hdr = fits.Header()
    hdr["IMAGETYP"] = (info.imagetyp, "LIGHT, ARC, FLAT, BIAS or DARK")
    hdr["OBJECT"] = (info.obj, "target (or the target of the calibration)")
    start = info.date_obs.astimezone(timezone.utc)
    hdr["DATE-OBS"] = (start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3], "exposure start, UTC")
    hdr["EXPTIME"] = (float(info.exptime), "exposure time, s")
    hdr["JD-OBS"] = (float(Time(start).jd), "Julian date of the exposure start, UTC")
    if info.ra is not None and info.dec is not None:
        hdr["RA"] = (float(info.ra), "pointing right ascension, deg (ICRS)")
        hdr["DEC"] = (float(info.dec), "pointing declination, deg (ICRS)")
        ra_s, dec_s = _sexagesimal(info.ra, info.dec)
        hdr["OBJCTRA"] = (ra_s, "pointing RA, h:m:s")
        hdr["OBJCTDEC"] = (dec_s, "pointing Dec, d:m:s")
        mid = start + timedelta(seconds=info.exptime / 2.0)
        try:
            am = airmass_at(info.ra, info.dec, mid, config.site)
        except Exception:  # astropy failure must never lose a frame
            am = None
        if am is not None:
            hdr["AIRMASS"] = (round(am, 4), "airmass at mid-exposure")
    site = config.site
    hdr["SITENAME"] = (site.name, "observatory")
    hdr["SITELAT"] = (float(site.latitude), "deg, north positive")
    hdr["SITELONG"] = (float(site.longitude), "deg, east positive")
    hdr["SITEELEV"] = (float(site.elevation), "m")
    hdr["TELESCOP"] = (config.instrument.telescope, "telescope")
    hdr["INSTRUME"] = (detector.name, "instrument set-up")
    hdr["OBSERVER"] = (info.observer or "", "observer")
    if info.ccd_temp is not None:
        hdr["CCD-TEMP"] = (round(float(info.ccd_temp), 2), "CCD temperature at start, deg C")
    if info.set_temp is not None:
        hdr["SET-TEMP"] = (float(info.set_temp), "cooling set point, deg C")
    hdr["XBINNING"] = (int(info.binning[0]), "binning along columns")
    hdr["YBINNING"] = (int(info.binning[1]), "binning along rows")
    # Only values the set-up file gives (docs/adapting/new-spectrograph.md), else the camera's own
    # ElectronsPerADU: an unknown one is left out, never invented (ASCOM has no read noise to ask).
    camera_gain = _positive((camera or {}).get("electrons_per_adu"))
    if detector.gain is not None:
        hdr["GAIN"] = (float(detector.gain), "e-/ADU")
    elif camera_gain is not None:
        hdr["GAIN"] = (camera_gain, "e-/ADU, from the camera (ElectronsPerADU)")
    if detector.read_noise is not None:
        hdr["RDNOISE"] = (float(detector.read_noise), "read noise, e-")
    hdr["LAMP"] = (info.lamp or "none", "lamp lit during the frame")
    hdr["ROSOBSID"] = (info.observation_id, "ROSACE observation id")
    hdr["ROSOFID"] = (info.file_id, "Observing File id")
    hdr["ROSOFHSH"] = info.file_hash  # 64 hex digits: no room left for a comment
    hdr["ROSSTEP"] = (info.step, "sequence step")
    hdr["ROSSTEPN"] = (int(info.step_index), "sequence step index")
    hdr["ROSREF"] = (bool(info.reference), "reference star for the instrument response")
    if info.campaign:
        hdr["ROSCAMP"] = (str(info.campaign), "campaign id (share server)")
    if info.sim_truth:
        hdr["SIMTRUTH"] = str(info.sim_truth)  # simulator truth record id (long: no comment)
    for key, value in info.extra.items():
        hdr[key] = value
    return hdr


def to_fits_data(image: np.ndarray) -> np.ndarray:
    """Return the image as uint16 (integer cameras) or float32, rows x columns."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"a raw frame must be 2D, got shape {image.shape}")
    if np.issubdtype(image.dtype, np.integer):
        if image.dtype == np.uint16:
            return image
        return np.clip(image, 0, 65535).astype(np.uint16)
    return image.astype(np.float32, copy=False)


def write_frame(path: Path, image: np.ndarray, header) -> Path:
    """Write a FITS frame atomically: temporary file in the same folder, fsync, rename.

    An existing file of the same name is never overwritten (FileExistsError):
    frame names are unique by construction, so a clash means a duplicate.
    Raises StorageError when the frame cannot be written (disk full, a folder
    that cannot be created or written).
    """
    from astropy.io import fits

    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists")
    hdu = fits.PrimaryHDU(data=to_fits_data(image), header=header)
    try:
        atomic_write(path, lambda tmp: hdu.writeto(tmp, overwrite=True), suffix=TMP_SUFFIX)
    except OSError as exc:
        raise StorageError(f"frame {path.name} could not be written: {exc}") from exc
    return path


def clean_partial(folder: Path) -> list[Path]:
    """Delete temporary frame files left by a crash under ``folder``; return them."""
    removed: list[Path] = []
    if not Path(folder).exists():
        return removed
    for tmp in Path(folder).rglob(f"*{TMP_SUFFIX}"):
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed
