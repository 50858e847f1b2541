"""Raw frames: read their headers (docs/dev/contracts.md), sort them by kind
and observation, and load image data.

A file that is not a FITS image, or a FITS file that does not follow the
contract (a foreign camera's frame), raises :class:`FrameError` with a message
for the observer; a batch reports and skips it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time

from rosace_core.errors import RosaceError

KINDS = ("LIGHT", "ARC", "FLAT", "BIAS", "DARK")
_ALIASES = {
    "OBJECT": "LIGHT", "SCIENCE": "LIGHT", "LIGHT FRAME": "LIGHT",
    "COMP": "ARC", "LAMP": "ARC", "CALIB": "ARC",
    "FLAT FIELD": "FLAT", "FLAT FRAME": "FLAT",
    "ZERO": "BIAS", "BIAS FRAME": "BIAS", "OFFSET": "BIAS",
    "DARK FRAME": "DARK",
}


class FrameError(RosaceError):
    """A file cannot be used as a raw frame (unreadable, not an image, missing keywords)."""


@dataclass
class FrameInfo:
    """What the reduction needs to know about one raw frame, from its header."""

    path: Path
    kind: str
    instrument: str
    object: str
    observation_id: str
    date_obs: str
    jd: float
    exptime: float
    ccd_temp: float | None
    airmass: float | None
    lamp: str
    reference: bool
    shape: tuple[int, int]
    header: dict = field(default_factory=dict, repr=False)
    #: On-chip binning (XBINNING, YBINNING); 1 x 1 when the header does not say.
    binning: tuple[int, int] = (1, 1)
    #: Subframe origin in binned pixels (XORGSUBF, YORGSUBF: ASCOM StartX/StartY), None when not written.
    origin: tuple[int | None, int | None] = (None, None)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "kind": self.kind, "instrument": self.instrument, "object": self.object,
                "observation_id": self.observation_id, "date_obs": self.date_obs, "exptime": self.exptime}


def _float(header, key, default=None):
    value = header.get(key, default)
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def read_frame_info(path: Path | str) -> FrameInfo:
    """Read one raw frame's header; raise FrameError if it is not a usable ROSACE frame."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
                hdu = hdul[0]
                header = hdu.header
                naxis = header.get("NAXIS", 0)
                if naxis != 2:
                    raise FrameError(f"{path.name}: not a 2D image (NAXIS={naxis})")
                shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
                header = fits.Header(header)  # detached copy
    except FrameError:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise FrameError(f"{path.name}: not a readable FITS file ({exc.__class__.__name__}: {exc})") from None
    raw_kind = str(header.get("IMAGETYP", "")).strip().upper()
    kind = _ALIASES.get(raw_kind, raw_kind)
    if kind not in KINDS:
        raise FrameError(f"{path.name}: IMAGETYP {raw_kind!r} is not one of {', '.join(KINDS)}")
    instrument = str(header.get("INSTRUME", "")).strip()
    if not instrument:
        raise FrameError(f"{path.name}: no INSTRUME keyword (the instrument set-up name)")
    date_obs = str(header.get("DATE-OBS", "")).strip()
    try:
        jd = float(header["JD-OBS"]) if "JD-OBS" in header else Time(date_obs, scale="utc").jd
    except (ValueError, TypeError):
        raise FrameError(f"{path.name}: DATE-OBS {date_obs!r} is not an ISO date") from None
    binning = (_positive_int(path, header, "XBINNING"), _positive_int(path, header, "YBINNING"))
    origin = (_origin(path, header, "XORGSUBF"), _origin(path, header, "YORGSUBF"))
    return FrameInfo(
        path=path,
        kind=kind,
        instrument=instrument,
        object=str(header.get("OBJECT", "")).strip() or "unknown",
        observation_id=str(header.get("ROSOBSID", "")).strip(),
        date_obs=date_obs,
        jd=jd,
        exptime=_float(header, "EXPTIME", 0.0) or 0.0,
        ccd_temp=_float(header, "CCD-TEMP"),
        airmass=_float(header, "AIRMASS"),
        lamp=str(header.get("LAMP", "none")).strip(),
        reference=str(header.get("ROSREF", "F")).strip().upper() in ("T", "TRUE", "1") or header.get("ROSREF") is True,
        shape=shape,
        header=dict(header.items()),
        binning=binning,
        origin=origin,
    )


def _positive_int(path: Path, header, key: str) -> int:
    """A binning factor (1 when absent); FrameError naming the keyword when it is not a whole number 1-64."""
    value = header.get(key)
    if value is None or value == "":
        return 1
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FrameError(f"{path.name}: {key} {value!r} is not a whole number") from None
    if number != int(number) or not 1 <= number <= 64:
        raise FrameError(f"{path.name}: {key} {value!r} is not a binning factor (1-64)")
    return int(number)


def _origin(path: Path, header, key: str) -> int | None:
    """A subframe origin in binned pixels (None when absent); FrameError when it is not a whole number >= 0."""
    value = header.get(key)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FrameError(f"{path.name}: {key} {value!r} is not a whole number") from None
    if number != int(number) or number < 0:
        raise FrameError(f"{path.name}: {key} {value!r} is not a subframe origin (a whole number of pixels >= 0)")
    return int(number)


def load_image(path: Path | str, rows: slice | None = None) -> np.ndarray:
    """Return a frame's pixels as float32 (optionally only some rows).

    The file is memory-mapped and only the requested rows are read and scaled
    (BZERO/BSCALE applied here, as astropy cannot memory-map scaled data): a
    band of 150 rows of a 3000 x 2000 frame costs a tenth of the whole frame.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=True, do_not_scale_image_data=True) as hdul:
                hdu = hdul[0]
                if hdu.header.get("NAXIS", 0) != 2 or hdu.data is None:
                    raise FrameError(f"{Path(path).name}: no 2D image data")
                raw = hdu.data[rows] if rows is not None else hdu.data
                out = np.array(raw, dtype=np.float32)  # copy: the map is closed on exit
                bscale = float(hdu.header.get("BSCALE", 1.0))
                bzero = float(hdu.header.get("BZERO", 0.0))
                if bscale != 1.0:
                    out *= np.float32(bscale)
                if bzero != 0.0:
                    out += np.float32(bzero)
                return out
    except FrameError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise FrameError(f"{Path(path).name}: cannot read pixels ({exc})") from None


def scan_folder(folder: Path | str) -> tuple[list[FrameInfo], list[tuple[Path, str]]]:
    """Read every FITS file under ``folder``; return (frames, problems) where problems are (path, reason)."""
    folder = Path(folder)
    frames, problems = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".fits", ".fit", ".fts")):
        try:
            frames.append(read_frame_info(path))
        except FrameError as exc:
            problems.append((path, str(exc)))
    return frames, problems
