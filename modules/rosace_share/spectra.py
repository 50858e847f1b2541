"""Reduced 1D spectra in BeSS-convention FITS: reading, validation, metadata, export.

Reading is tolerant (a spectrum from another pipeline may lack ROSACE's extra
keys); export is strict: the BeSS mandatory keywords are checked and anything
missing is named.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.time import Time

from rosace_core.errors import RosaceError

#: Keywords BeSS requires in a submitted 1D spectrum (BeSS FITS format description).
BESS_MANDATORY = (
    "CRVAL1", "CDELT1", "CRPIX1", "CTYPE1", "CUNIT1",
    "OBJNAME", "DATE-OBS", "EXPTIME", "OBSERVER",
    "BSS_INST", "BSS_SITE", "BSS_VHEL", "BSS_COSM", "BSS_NORM", "BSS_TELL", "BSS_ITRP",
)
#: Keys a header may carry the provenance JSON in (ROSACE and tolerated variants).
PROVENANCE_KEYS = ("ROSPROV", "PROVENAN", "HISTPROV")


class SpectrumInvalid(RosaceError):
    """The file is not a usable 1D spectrum; ``problems`` says why, one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class BessIncomplete(RosaceError):
    """A spectrum cannot be exported to BeSS: ``missing`` lists the absent mandatory keywords."""

    def __init__(self, missing: list[str]):
        self.missing = missing
        super().__init__("missing BeSS mandatory keywords: " + ", ".join(missing))


@dataclass
class SpectrumData:
    """A 1D spectrum in memory: wavelength (Angstrom), flux, optional 1-sigma error, header."""

    wavelength: np.ndarray
    flux: np.ndarray
    error: np.ndarray | None
    header: fits.Header


@dataclass
class SpectrumMeta:
    """What the archive indexes about a spectrum (from its header and data)."""

    object: str
    date_obs: datetime
    jd: float
    exptime: float | None
    observer: str
    site: str
    instrument: str
    resolving_power: float | None
    measured_r: float | None
    wl_min: float
    wl_max: float
    n_pixels: int
    snr: float | None
    wl_rms: float | None
    normalised: bool
    quality: str
    flags: list[str] = field(default_factory=list)
    header: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    bess_missing: list[str] = field(default_factory=list)
    observation_id: str | None = None


def observation_id(header) -> str | None:
    """The ROSACE observation id (ROSOBSID) of a spectrum, or None (spectra from other software).

    A re-reduction of the same observation carries the same id: the archive
    replaces the earlier version instead of adding a second spectrum.
    """
    value = header.get("ROSOBSID")
    if value is None or isinstance(value, bool):
        return None
    return str(value).strip()[:120] or None


def content_hash(data: bytes) -> str:
    """SHA-256 of the file content (duplicate detection)."""
    return hashlib.sha256(data).hexdigest()


def object_key(name: str) -> str:
    """Normalised object name used for search ('gam Cas', 'GAM_CAS' -> 'GAMCAS')."""
    return re.sub(r"[\s_\-]+", "", name).upper()


def wavelength_axis(header, n: int) -> np.ndarray:
    """Linear wavelength axis (Angstrom) from CRVAL1/CDELT1/CRPIX1."""
    crpix = float(header.get("CRPIX1", 1.0))
    return float(header["CRVAL1"]) + float(header["CDELT1"]) * (np.arange(n) + 1.0 - crpix)


def open_spectrum(data: bytes) -> SpectrumData:
    """Parse FITS bytes into a SpectrumData; raise SpectrumInvalid with every problem found."""
    if len(data) < 2880 or not data.startswith(b"SIMPLE  ="):
        raise SpectrumInvalid(["not a FITS file (a FITS file starts with a 2880-byte header beginning 'SIMPLE  =')"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(io.BytesIO(data), memmap=False) as hdul:
                header = hdul[0].header.copy()
                raw = hdul[0].data
                err = None
                for hdu in hdul[1:]:
                    if hdu.name in ("STD", "UNCERT", "ERROR", "ERR", "SIGMA") and hdu.data is not None:
                        err = np.asarray(hdu.data, dtype=float).ravel()
                flux = None if raw is None else np.asarray(raw, dtype=float)
    except Exception as exc:  # astropy raises many kinds on corrupt files
        raise SpectrumInvalid([f"unreadable FITS: {exc.__class__.__name__}: {str(exc)[:200]}"]) from None
    problems = []
    if flux is None:
        problems.append("the primary HDU holds no data (a BeSS spectrum is a 1D array in the primary HDU)")
    elif flux.ndim != 1:
        if flux.ndim == 2 and 1 in flux.shape:
            flux = flux.ravel()
        else:
            problems.append(f"the primary data is {flux.ndim}-dimensional {flux.shape}; a 1D spectrum is expected")
    for key in ("CRVAL1", "CDELT1"):
        if key not in header:
            problems.append(f"{key} missing: the linear wavelength axis is undefined")
        elif not isinstance(header[key], (int, float)) or isinstance(header[key], bool):
            problems.append(f"{key} is not a number")
    if "CDELT1" in header and isinstance(header["CDELT1"], (int, float)) and header["CDELT1"] <= 0:
        problems.append("CDELT1 must be positive (wavelength increasing)")
    if not str(header.get("OBJNAME") or header.get("OBJECT") or "").strip():
        problems.append("OBJNAME (or OBJECT) missing: the object is unknown")
    if not header.get("DATE-OBS") and not header.get("JD-OBS") and not header.get("JD-MID"):
        problems.append("DATE-OBS missing: the date of observation is unknown")
    if flux is not None and flux.ndim == 1 and flux.size < 2:
        problems.append("the spectrum has fewer than 2 pixels")
    if problems or flux is None:
        raise SpectrumInvalid(problems)
    if err is not None and err.shape != flux.shape:
        err = None
    return SpectrumData(wavelength_axis(header, flux.size), flux, err, header)


def _float(header, key) -> float | None:
    value = header.get(key)
    if isinstance(value, bool) or value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _date(header) -> tuple[datetime, float]:
    text = str(header.get("DATE-OBS") or "").strip()
    try:
        if text:
            t = Time(text.replace(" ", "T"), format="isot" if "T" in text or " " in text else None, scale="utc")
        else:
            t = Time(_float(header, "JD-OBS") or _float(header, "JD-MID"), format="jd", scale="utc")
    except (ValueError, TypeError):
        raise SpectrumInvalid([f"DATE-OBS {text!r} is not an ISO date"]) from None
    jd = _float(header, "JD-MID") or float(t.jd)
    if _float(header, "JD-MID") is None and (exp := _float(header, "EXPTIME")):
        jd += exp / 2 / 86400.0
    return t.to_datetime(timezone.utc).replace(tzinfo=None), jd


def _provenance(header) -> dict:
    for key in PROVENANCE_KEYS:
        if key in header:
            try:
                value = json.loads(str(header[key]))
                return value if isinstance(value, dict) else {"value": value}
            except ValueError:
                return {"text": str(header[key])}
    prov = {k.lower(): header[k] for k in ("ROSOBSID", "ROSPIPE", "ROSOFID") if k in header}
    return {str(k): (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in prov.items()}


def estimate_snr(flux: np.ndarray, error: np.ndarray | None) -> float | None:
    """Median S/N: from the uncertainties when given, else from pixel-to-pixel noise (DER_SNR)."""
    f = flux[np.isfinite(flux)]
    if f.size < 5:
        return None
    if error is not None:
        ratio = flux / error
        ratio = ratio[np.isfinite(ratio)]
        if ratio.size:
            return float(np.median(ratio))
    # DER_SNR (Stoehr et al. 2008): robust noise from second differences.
    noise = 1.482602 / np.sqrt(6.0) * np.median(np.abs(2.0 * f[2:-2] - f[:-4] - f[4:]))
    return float(np.median(f) / noise) if noise > 0 else None


def header_dict(header) -> dict:
    """JSON-safe copy of a header's cards (no COMMENT/HISTORY blobs, no binary values)."""
    out: dict[str, Any] = {}
    for card in header.cards:
        key = card.keyword
        if not key or key in ("COMMENT", "HISTORY", ""):
            continue
        value = card.value
        if isinstance(value, (bool, int, str)) or value is None:
            out[key] = value
        elif isinstance(value, float):
            out[key] = value if np.isfinite(value) else str(value)
        else:
            out[key] = str(value)
    return out


def describe(spec: SpectrumData) -> SpectrumMeta:
    """Extract the archive metadata of a parsed spectrum (tolerant of absent keys)."""
    h = spec.header
    date_obs, jd = _date(h)
    snr = _float(h, "ROSSNR") or _float(h, "SNR") or estimate_snr(spec.flux, spec.error)
    wl_rms = _float(h, "ROSWRMS")
    norm = str(h.get("BSS_NORM", "")).strip().lower()
    finite = spec.flux[np.isfinite(spec.flux)]
    normalised = bool(norm and norm not in ("none", "no", "f", "false")) or (finite.size > 0 and 0.7 < np.median(finite) < 1.3)
    flags = []
    if snr is None or snr < 30:
        flags.append("low_snr")
    if spec.error is None:
        flags.append("no_uncertainty")
    if wl_rms is not None and wl_rms > 0.5:
        flags.append("poor_wavelength_solution")
    missing = [k for k in BESS_MANDATORY if k not in h and not (k == "OBJNAME" and "OBJECT" in h)]
    if missing:
        flags.append("bess_incomplete")
    if snr is not None and snr >= 100 and "poor_wavelength_solution" not in flags:
        quality = "good"
    elif snr is not None and snr >= 30:
        quality = "fair"
    else:
        quality = "poor"
    # The reduction's own grade (ROSQUAL: its checks for spikes, holes, masked light, missing
    # header keywords) can only lower the archive's: a spectrum it calls poor is never good.
    reduction_grade = str(h.get("ROSQUAL", "")).strip().lower()
    ranks = {"good": 0, "fair": 1, "poor": 2}
    if reduction_grade in ranks:
        if ranks[reduction_grade] > ranks[quality]:
            quality = reduction_grade
        if reduction_grade != "good":
            flags.append(f"reduction_{reduction_grade}")
    return SpectrumMeta(
        object=str(h.get("OBJNAME") or h.get("OBJECT")).strip()[:120],
        date_obs=date_obs,
        jd=jd,
        exptime=_float(h, "EXPTIME"),
        observer=str(h.get("OBSERVER", "")).strip()[:120],
        site=str(h.get("BSS_SITE") or h.get("SITENAME") or "").strip()[:120],
        instrument=str(h.get("BSS_INST") or h.get("INSTRUME") or "").strip()[:120],
        resolving_power=_float(h, "BSS_ITRP"),
        measured_r=_float(h, "BSS_ESRP"),
        wl_min=float(np.min(spec.wavelength)),
        wl_max=float(np.max(spec.wavelength)),
        n_pixels=int(spec.flux.size),
        snr=round(snr, 2) if snr is not None else None,
        wl_rms=wl_rms,
        normalised=normalised,
        quality=quality,
        flags=flags,
        header=header_dict(h),
        provenance=_provenance(h),
        bess_missing=missing,
        observation_id=observation_id(h),
    )


def read_spectrum_file(path) -> SpectrumData:
    """Read a stored FITS file."""
    with open(path, "rb") as fh:
        return open_spectrum(fh.read())


# --------------------------------------------------------------------------- export


def bess_fits(spec: SpectrumData) -> bytes:
    """Return a BeSS-convention FITS of ``spec``; raise BessIncomplete naming missing keywords.

    The data become float32 on a linear axis with CRPIX1 = 1; OBJNAME falls back
    on OBJECT; a textual EQUINOX becomes a float (BeSS rejects the text form).
    """
    h = spec.header.copy()
    for key in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "EXTEND", "BZERO", "BSCALE"):
        h.remove(key, ignore_missing=True, remove_all=True)
    h["CRVAL1"] = float(spec.wavelength[0])
    h["CDELT1"] = float(spec.wavelength[1] - spec.wavelength[0])
    h["CRPIX1"] = 1.0
    h["CTYPE1"] = "Wavelength"
    h["CUNIT1"] = "Angstrom"
    if "OBJNAME" not in h and "OBJECT" in h:
        h["OBJNAME"] = str(h["OBJECT"])
    if "EQUINOX" in h:
        try:
            h["EQUINOX"] = float(str(h["EQUINOX"]).lstrip("JB"))
        except ValueError:
            h.remove("EQUINOX")
    missing = [k for k in BESS_MANDATORY if k not in h or h[k] is None or str(h[k]).strip() == ""]
    if missing:
        raise BessIncomplete(missing)
    out = io.BytesIO()
    fits.PrimaryHDU(np.asarray(spec.flux, dtype=np.float32), header=h).writeto(out)
    return out.getvalue()


def aras_name(object_name: str, date_obs: datetime, observer: str | None = None) -> str:
    """ARAS-style file name: ``asdb_<obj>_<YYYYMMDD>_<ddd>.fit`` or, with an observer, ``_<obj>_<date>_<ddd>_<observer>.fit``."""
    obj = re.sub(r"[^a-z0-9]+", "", object_name.lower()) or "unknown"
    frac = (date_obs.hour * 3600 + date_obs.minute * 60 + date_obs.second) / 86400.0
    ddd = min(int(frac * 1000), 999)
    stamp = f"{date_obs:%Y%m%d}_{ddd:03d}"
    if observer:
        who = re.sub(r"[^A-Za-z0-9]+", "", observer.split(",")[0]) or "observer"
        return f"_{obj}_{stamp}_{who}.fit"
    return f"asdb_{obj}_{stamp}.fit"


def csv_text(spec: SpectrumData) -> str:
    """CSV with a header row: wavelength (Angstrom), flux, error (empty when unknown)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["wavelength_angstrom", "flux", "error"])
    err = spec.error if spec.error is not None else [None] * len(spec.flux)
    for w, f, e in zip(spec.wavelength, spec.flux, err):
        writer.writerow([f"{w:.4f}", f"{f:.6g}", "" if e is None else f"{e:.6g}"])
    return buf.getvalue()
