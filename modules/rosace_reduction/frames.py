"""Raw frames: read their headers (docs/dev/contracts.md), sort them by kind
and observation, and load image data.

Frames from other capture programs (N.I.N.A., MaxIm DL, SharpCap, Prism and
the like) are read through one header mapping (docs/reduction.md, "Frames from
other capture programs"): EXPOSURE for EXPTIME, OBJCTRA/OBJCTDEC in
sexagesimal, IMAGETYP spellings, DATE-OBS + TIME-OBS, SITELAT/SITELONG or
OBSGEO-B/L/H, an arc saved as a light frame (object 'NeAr', a lamp keyword).
An essential value the header does not give (exposure, date, coordinates,
site) is listed in :attr:`FrameInfo.missing`; the reduction flags it.

A file that is not a FITS image, or whose header cannot be read as a frame
(no image type, no date at all), raises :class:`FrameError` with a message for
the observer; a batch reports and skips it.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time

from rosace_core.errors import RosaceError

KINDS = ("LIGHT", "ARC", "FLAT", "BIAS", "DARK")
_ALIASES = {
    "OBJECT": "LIGHT", "SCIENCE": "LIGHT", "LIGHT FRAME": "LIGHT", "LIGHTFRAME": "LIGHT", "TRICOLOR IMAGE": "LIGHT",
    "COMP": "ARC", "LAMP": "ARC", "CALIB": "ARC", "COMPARISON": "ARC", "ARC FRAME": "ARC", "WAVECAL": "ARC",
    "FLAT FIELD": "FLAT", "FLAT FRAME": "FLAT", "FLATFIELD": "FLAT", "SKYFLAT": "FLAT", "DOMEFLAT": "FLAT",
    "ZERO": "BIAS", "BIAS FRAME": "BIAS", "OFFSET": "BIAS", "OFFSET FRAME": "BIAS",
    "DARK FRAME": "DARK", "DARKFLAT": "DARK",
}
#: Object names and lamp keywords that make a frame saved as a light frame an arc (or a flat):
#: capture programs have no arc type, so users name the object after the lamp.
_ARC_WORDS = re.compile(r"^(?:(?:ne|ar|he|hg|kr|xe|cu|fe|th|cd|zn|na)+(?:[-_ ]?(?:ne|ar|he|hg|kr|xe|cu|fe|th|cd|zn|na))*|"
                        r"thar|neon|argon|helium|mercury|krypton|xenon|arc|arcs|lamp|calib|calibration|comp|comparison|wavecal)$", re.I)
_FLAT_WORDS = re.compile(r"^(?:flat|flats|tungsten|halogen|led|flat[-_ ]?field|qth)$", re.I)
_LAMP_KEYS = ("LAMP", "CALLAMP", "LAMPNAME", "ARCLAMP", "CALSRC")
#: Capture programs told apart by the keyword naming them (provenance only: the mapping is the same).
PROGRAMS = (("N.I.N.A.", re.compile(r"n\.?i\.?n\.?a", re.I)), ("MaxIm DL", re.compile(r"maxim", re.I)),
            ("SharpCap", re.compile(r"sharpcap", re.I)), ("Prism", re.compile(r"prism", re.I)),
            ("ROSACE", re.compile(r"rosace", re.I)))


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
    #: Target position, degrees (RA/DEC, else OBJCTRA/OBJCTDEC sexagesimal), None when the header has none.
    ra: float | None = None
    dec: float | None = None
    #: Site (latitude deg, east longitude deg, elevation m) from SITELAT/SITELONG/SITEELEV or OBSGEO-B/L/H.
    site: tuple[float, float, float] | None = None
    #: Essential values the header does not give ('EXPTIME', 'DATE-OBS', 'RA/DEC', 'SITE', 'TIME-OBS').
    missing: tuple[str, ...] = ()
    #: The capture program that wrote the frame (SWCREATE, CREATOR, PROGRAM), '' when unknown.
    program: str = ""
    #: How the image type was decided, when not from IMAGETYP alone (e.g. "object 'NeAr'").
    kind_from: str = ""

    def to_dict(self) -> dict:
        return {"path": str(self.path), "kind": self.kind, "instrument": self.instrument, "object": self.object,
                "observation_id": self.observation_id, "date_obs": self.date_obs, "exptime": self.exptime}


def _float(header, key, default=None):
    value = header.get(key, default)
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def read_frame_info(path: Path | str, instrument: str | None = None) -> FrameInfo:
    """Read one raw frame's header; raise FrameError if it is not a usable frame.

    ``instrument`` names the set-up when the header's INSTRUME does not (a capture
    program writes the camera there): ``rosace reduce --instrument alpy600``.
    """
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
    program = _program(header)
    kind, kind_from = _kind(path, header)
    instrument = instrument or str(header.get("INSTRUME", "")).strip()
    if not instrument:
        raise FrameError(f"{path.name}: no INSTRUME keyword (the instrument set-up name; "
                         "for frames of another capture program name the set-up with --instrument)")
    missing: list[str] = []
    date_obs, jd = _date(path, header, missing)
    exptime = _first_float(header, ("EXPTIME", "EXPOSURE", "EXP_TIME", "EXPOSURE_TIME", "ITIME"))
    if exptime is None:
        missing.append("EXPTIME")
        exptime = 0.0
    ra, dec = _coordinates(path, header)
    if ra is None or dec is None:
        missing.append("RA/DEC")
    site = _site(path, header)
    if site is None:
        missing.append("SITE")
    binning = (_positive_int(path, header, "XBINNING"), _positive_int(path, header, "YBINNING"))
    origin = (_origin(path, header, "XORGSUBF"), _origin(path, header, "YORGSUBF"))
    lamp = next((str(header[k]).strip() for k in _LAMP_KEYS if str(header.get(k, "") or "").strip()), "none")
    return FrameInfo(
        path=path,
        kind=kind,
        instrument=instrument,
        object=str(header.get("OBJECT", "")).strip() or "unknown",
        observation_id=str(header.get("ROSOBSID", "")).strip(),
        date_obs=date_obs,
        jd=jd,
        exptime=exptime,
        ccd_temp=_first_float(header, ("CCD-TEMP", "CCD_TEMP", "CCDTEMP", "TEMPERAT")),
        airmass=_float(header, "AIRMASS"),
        lamp=lamp,
        reference=str(header.get("ROSREF", "F")).strip().upper() in ("T", "TRUE", "1") or header.get("ROSREF") is True,
        shape=shape,
        header=dict(header.items()),
        binning=binning,
        origin=origin,
        ra=ra,
        dec=dec,
        site=site,
        missing=tuple(missing),
        program=program,
        kind_from=kind_from,
    )


def _program(header) -> str:
    text = " ".join(str(header.get(k, "")) for k in ("SWCREATE", "CREATOR", "PROGRAM", "SOFTWARE", "ORIGIN"))
    return next((name for name, pattern in PROGRAMS if pattern.search(text)), "")


def _kind(path: Path, header) -> tuple[str, str]:
    """Frame kind from IMAGETYP (any capture program's spelling), an arc or flat saved as a light frame."""
    raw_kind = " ".join(str(header.get("IMAGETYP", header.get("FRAMETYP", header.get("FRAME", "")))).split()).upper()
    kind = _ALIASES.get(raw_kind, raw_kind)
    obj = str(header.get("OBJECT", "")).strip()
    lamp = next((str(header[k]).strip() for k in _LAMP_KEYS if str(header.get(k, "") or "").strip()), "")
    if kind in ("LIGHT", ""):
        # An arc or a flat taken as a light frame: named after its lamp (object, or a lamp keyword).
        if obj and _ARC_WORDS.match(obj):
            return "ARC", f"object {obj!r}"
        if lamp and _ARC_WORDS.match(lamp) and lamp.lower() not in ("none", "off"):
            return "ARC", f"{next(k for k in _LAMP_KEYS if k in header)} {lamp!r}"
        if obj and _FLAT_WORDS.match(obj):
            return "FLAT", f"object {obj!r}"
    if kind == "":
        # No image type (SharpCap writes none by default): the object name tells calibrations apart.
        named = {"dark": "DARK", "darks": "DARK", "bias": "BIAS", "offset": "BIAS", "zero": "BIAS"}.get(obj.lower())
        return (named, f"object {obj!r}") if named else ("LIGHT", "no IMAGETYP: taken as a light frame")
    if kind not in KINDS:
        raise FrameError(f"{path.name}: IMAGETYP {raw_kind!r} is not one of {', '.join(KINDS)} (or a capture program's spelling of them)")
    return kind, ""


def _first_float(header, keys) -> float | None:
    for key in keys:
        value = _float(header, key)
        if value is not None:
            return value
    return None


def _date(path: Path, header, missing: list[str]) -> tuple[str, float]:
    """ISO start time (UTC) and its JD: DATE-OBS, DATE-OBS + TIME-OBS (or UT), JD-OBS/JD; else DATE (flagged)."""
    date_obs = str(header.get("DATE-OBS", "") or "").strip()
    clock = str(header.get("TIME-OBS", header.get("UT", header.get("UTSTART", ""))) or "").strip()
    if date_obs and "T" not in date_obs and ":" not in date_obs:
        # The old convention: the date in DATE-OBS (yyyy-mm-dd or dd/mm/yy), the time in TIME-OBS.
        if "/" in date_obs:
            d, m, y = date_obs.split("/")
            date_obs = f"{(1900 + int(y)) if len(y) == 2 else int(y):04d}-{int(m):02d}-{int(d):02d}"
        if clock:
            date_obs = f"{date_obs}T{clock}"
        else:
            missing.append("TIME-OBS")
    if not date_obs:
        for key in ("JD-OBS", "JD", "MJD-OBS"):
            value = _float(header, key)
            if value:
                t = Time(value, format="mjd" if key == "MJD-OBS" else "jd", scale="utc")
                return t.isot, float(t.jd)
        fallback = str(header.get("DATE", "") or "").strip()
        if not fallback:
            raise FrameError(f"{path.name}: no DATE-OBS (nor TIME-OBS, JD or DATE): the start of the exposure is unknown")
        missing.append("DATE-OBS")  # the file's writing time, not the exposure's start
        date_obs = fallback
    try:
        jd = float(header["JD-OBS"]) if "JD-OBS" in header else Time(date_obs, scale="utc").jd
    except (ValueError, TypeError):
        raise FrameError(f"{path.name}: DATE-OBS {date_obs!r} is not an ISO date") from None
    return date_obs, jd


def _angle(path: Path, key: str, value, *, hours: bool) -> float | None:
    """Degrees from a number or a sexagesimal text ('05 35 17.3', '-05:23:28', '+43d45m00s'; hours when ``hours``)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    # Prism writes seconds and hundredths as separate fields ('-22:57:08:99'): astropy's Angle
    # (which parses every other form here) does not know that one.
    prism = re.fullmatch(r"([+-]?\d+):(\d+):(\d+):(\d+)", text)
    if prism:
        text = f"{prism.group(1)}:{prism.group(2)}:{prism.group(3)}.{prism.group(4)}"
    from astropy import units as u
    from astropy.coordinates import Angle

    try:
        return float(Angle(text, unit=u.hourangle if hours else u.deg).deg)
    except (ValueError, TypeError, u.UnitsError):
        raise FrameError(f"{path.name}: {key} {value!r} is not an angle ({'hours' if hours else 'degrees'}, decimal or sexagesimal)") from None


def _coordinates(path: Path, header) -> tuple[float | None, float | None]:
    """RA and Dec in degrees: RA/DEC (degrees, or sexagesimal text: hours for RA), else OBJCTRA/OBJCTDEC."""
    for ra_key, dec_key in (("RA", "DEC"), ("OBJCTRA", "OBJCTDEC"), ("OBJRA", "OBJDEC"), ("RA_OBJ", "DEC_OBJ")):
        ra_v, dec_v = header.get(ra_key), header.get(dec_key)
        if ra_v is None or dec_v is None or str(ra_v).strip() == "" or str(dec_v).strip() == "":
            continue
        ra = _angle(path, ra_key, ra_v, hours=isinstance(ra_v, str) and not _is_number(ra_v))
        return ra, _angle(path, dec_key, dec_v, hours=False)
    return None, None


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _site(path: Path, header) -> tuple[float, float, float] | None:
    """Observatory site from SITELAT/SITELONG(/SITEELEV), LAT-OBS/LONG-OBS, or OBSGEO-B/L/H; None when absent."""
    for lat_key, lon_key, elev_keys in (("SITELAT", "SITELONG", ("SITEELEV", "ALT-OBS", "OBSGEO-H")),
                                        ("OBSGEO-B", "OBSGEO-L", ("OBSGEO-H", "SITEELEV")),
                                        ("LAT-OBS", "LONG-OBS", ("ALT-OBS", "SITEELEV"))):
        lat = _angle(path, lat_key, header.get(lat_key), hours=False)
        lon = _angle(path, lon_key, header.get(lon_key), hours=False)
        if lat is None or lon is None:
            continue
        if lat == 0.0 and lon == 0.0:
            continue  # MaxIm DL writes '00 00 00' when the site is not set
        elev = _first_float(header, elev_keys)
        return lat, lon, elev if elev is not None else 0.0
    x, y, z = (_float(header, k) for k in ("OBSGEO-X", "OBSGEO-Y", "OBSGEO-Z"))
    if None not in (x, y, z):
        from astropy import units as u
        from astropy.coordinates import EarthLocation

        loc = EarthLocation.from_geocentric(x, y, z, unit=u.m)
        return float(loc.lat.deg), float(loc.lon.deg), float(loc.height.to_value(u.m))
    return None


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


def scan_folder(folder: Path | str, instrument: str | None = None) -> tuple[list[FrameInfo], list[tuple[Path, str]]]:
    """Read every FITS file under ``folder`` (``instrument``: the set-up of them all); return (frames, problems)
    where problems are (path, reason)."""
    folder = Path(folder)
    frames, problems = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".fits", ".fit", ".fts")):
        try:
            frames.append(read_frame_info(path, instrument))
        except FrameError as exc:
            problems.append((path, str(exc)))
    return frames, problems
