"""Frames from other capture programs: the header mapping (docs/reduction.md, "Frames from other
capture programs") on headers as N.I.N.A., MaxIm DL, SharpCap and Prism write them, and a whole
folder of such frames reduced with ``rosace reduce --instrument alpy600``.

The fixture headers hold only keywords each program is documented (or shown in a published
header) to write; sources:

- N.I.N.A.: bitbucket.org/Isbeorn/nina issue 131 (OBJCTRA/OBJCTDEC '18 01 03' strings, RA/DEC in
  degrees added), N.I.N.A. FITS keywords (IMAGETYP 'LIGHT', EXPOSURE and EXPTIME, SITELAT/SITELONG/
  SITEELEV in degrees, SWCREATE 'N.I.N.A. ...', INSTRUME the camera).
- MaxIm DL: "FITS File Header Definitions" (diffractionlimited.com/help/maximdl): IMAGETYP 'Light
  Frame', 'Bias Frame', 'Dark Frame', 'Flat Frame'; EXPTIME; DATE-OBS ISO; OBJCTRA/OBJCTDEC
  'hh mm ss'; SITELAT/SITELONG 'dd mm ss' strings ('00 00 00' when unset); JD; SWCREATE.
- SharpCap: actionprojecteu/azotea-client FITS.md: SWCREATE, INSTRUME (camera), DATE-OBS, EXPTIME,
  no IMAGETYP by default; no site or coordinates without a mount.
- Prism: a Prism 10.4 header (pastebin.com/VgCixKmP): SWCREATE 'PRISM, Version 10.4...', SITELAT
  '-22:57:08:99' (seconds and hundredths as separate fields), DATE-OBS ISO + UT, EXPOSURE (no
  EXPTIME), INSTRUME the camera; no IMAGETYP, RA/DEC in the sample.
- Old convention (SBIG CCDOps and FITS before 1997): DATE-OBS 'yyyy-mm-dd' + TIME-OBS.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from rosace_core.cli import main
from rosace_reduction.frames import read_frame_info
from rosace_reduction.instrument import load_instrument

START = datetime(2026, 11, 20, 21, 0, 0, tzinfo=timezone.utc)
# gam Cas (00h56m42.5s +60d43m00s) from a site at 43d45m N, 6d55m12s E, 1270 m.
RA_DEG, DEC_DEG = 14.177083, 60.716667
LAT, LON, ELEV = 43.75, 6.92, 1270.0


def nina(kind: str, exposure: float, obj: str = "gam Cas") -> dict:
    imagetyp = {"science": "LIGHT", "arc": "LIGHT", "flat": "FLAT", "bias": "BIAS", "dark": "DARK"}[kind]
    return {"IMAGETYP": imagetyp, "EXPOSURE": exposure, "EXPTIME": exposure, "DATE-LOC": "2026-11-20T22:00:00.000",
            "DATE-OBS": START.isoformat()[:19] + ".000", "XBINNING": 1, "YBINNING": 1, "GAIN": 120, "OFFSET": 30,
            "INSTRUME": "ZWO ASI183MM Pro", "TELESCOP": "C11", "SITEELEV": ELEV, "SITELAT": LAT, "SITELONG": LON,
            "OBJECT": "NeAr" if kind == "arc" else obj, "RA": RA_DEG, "DEC": DEC_DEG,
            "OBJCTRA": "00 56 42", "OBJCTDEC": "+60 43 00", "CCD-TEMP": -10.0, "SWCREATE": "N.I.N.A. 3.1.2.9001 (x64)"}


def maxim(kind: str, exposure: float, obj: str = "gam Cas") -> dict:
    imagetyp = {"science": "Light Frame", "arc": "Light Frame", "flat": "Flat Frame", "bias": "Bias Frame", "dark": "Dark Frame"}[kind]
    from astropy.time import Time

    return {"IMAGETYP": imagetyp, "EXPTIME": exposure, "EXPOSURE": exposure, "DATE-OBS": START.isoformat()[:19],
            "JD": Time(START).jd, "SET-TEMP": -10.0, "CCD-TEMP": -10.02, "XBINNING": 1, "YBINNING": 1,
            "INSTRUME": "SBIG STF-8300M", "SWCREATE": "MaxIm DL Version 6.40 220930 2ZPW9", "OBJECT": "NeAr" if kind == "arc" else obj,
            "OBJCTRA": "00 56 42.50", "OBJCTDEC": "+60 43 00.0", "SITELAT": "43 45 00", "SITELONG": "6 55 12"}


def sharpcap(kind: str, exposure: float, obj: str = "gam Cas") -> dict:
    name = {"science": obj, "arc": "NeAr", "flat": "Flat", "bias": "Bias", "dark": "Dark"}[kind]
    return {"SWCREATE": "SharpCap v4.1.11000.0", "INSTRUME": "ZWO ASI183MM Pro", "DATE-OBS": START.isoformat()[:19] + ".1234567",
            "EXPTIME": exposure, "XPIXSZ": 2.4, "YPIXSZ": 2.4, "XBINNING": 1, "YBINNING": 1, "OBJECT": name}


def prism(kind: str, exposure: float, obj: str = "gam Cas") -> dict:
    name = {"science": obj, "arc": "NeAr", "flat": "Flat", "bias": "Bias", "dark": "Dark"}[kind]
    return {"SWCREATE": "PRISM, Version 10.4.20.930, 10/9/2021", "OBSERVER": "OPSPA", "SITELAT": "+43:45:00:00",
            "SITELONG": "+06:55:12:00", "DATE-OBS": START.isoformat()[:19] + ".232000", "UT": "21:00:00.00",
            "EXPOSURE": exposure, "INSTRUME": "ZWO ASI6200MM Pro", "OBJECT": name}


def old_convention(kind: str, exposure: float, obj: str = "gam Cas") -> dict:
    imagetyp = {"science": "Light Frame", "arc": "Light Frame", "flat": "Flat Field", "bias": "Bias Frame", "dark": "Dark Frame"}[kind]
    return {"IMAGETYP": imagetyp, "EXPTIME": exposure, "DATE-OBS": "2026-11-20", "TIME-OBS": "21:00:00",
            "INSTRUME": "SBIG ST-8XME", "OBJECT": "NeAr" if kind == "arc" else obj, "LAMP": "NeAr" if kind == "arc" else "",
            "OBJCTRA": "00 56 42.50", "OBJCTDEC": "+60 43 00.0", "LAT-OBS": LAT, "LONG-OBS": LON, "ALT-OBS": ELEV}


PROGRAMS = {"N.I.N.A.": nina, "MaxIm DL": maxim, "SharpCap": sharpcap, "Prism": prism, "": old_convention}


def _write(path: Path, data, header: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(data, header=fits.Header(header)).writeto(path)
    return path


# --------------------------------------------------------------------------- the mapping alone


@pytest.mark.parametrize("program", list(PROGRAMS))
def test_header_mapping(tmp_path, program):
    make = PROGRAMS[program]
    img = np.zeros((8, 8), np.uint16)
    kinds = {}
    for kind in ("science", "arc", "flat", "bias"):
        info = read_frame_info(_write(tmp_path / f"{kind}.fits", img, make(kind, 60.0)), instrument="alpy600")
        kinds[kind] = info.kind
        if kind == "science":
            sci = info
    assert kinds == {"science": "LIGHT", "arc": "ARC", "flat": "FLAT", "bias": "BIAS"}
    assert sci.instrument == "alpy600" and sci.header["INSTRUME"] != "alpy600"  # INSTRUME is the camera
    assert sci.program == program
    assert sci.exptime == 60.0
    from astropy.time import Time

    assert sci.jd == pytest.approx(Time(START).jd, abs=5e-6)  # 2026-11-20T21:00:00 UTC (fractions of a second in some)
    if program in ("SharpCap", "Prism"):
        assert (sci.ra, sci.dec) == (None, None) and "RA/DEC" in sci.missing
    else:
        assert sci.ra == pytest.approx(RA_DEG, abs=2e-4) and sci.dec == pytest.approx(DEC_DEG, abs=2e-4)
    if program == "SharpCap":
        assert sci.site is None and "SITE" in sci.missing
    else:
        assert sci.site[0] == pytest.approx(LAT, abs=1e-6) and sci.site[1] == pytest.approx(LON, abs=1e-6)
        assert "SITE" not in sci.missing
    assert "EXPTIME" not in sci.missing and "DATE-OBS" not in sci.missing


def test_missing_essentials_are_listed_and_sites_in_other_forms(tmp_path):
    img = np.zeros((8, 8), np.uint16)
    bare = read_frame_info(_write(tmp_path / "a.fits", img, {"IMAGETYP": "LIGHT", "DATE": "2026-11-20T21:05:00", "OBJECT": "X"}), instrument="alpy600")
    assert set(bare.missing) == {"EXPTIME", "DATE-OBS", "RA/DEC", "SITE"} and bare.exptime == 0.0
    # MaxIm DL writes '00 00 00' when no site is set: not a site at 0, 0.
    unset = read_frame_info(_write(tmp_path / "b.fits", img, {**maxim("science", 5.0), "SITELAT": "00 00 00", "SITELONG": "00 00 00"}))
    assert unset.site is None and "SITE" in unset.missing and unset.instrument == "SBIG STF-8300M"
    # OBSGEO-X/Y/Z (metres, geocentric).
    from astropy import units as u
    from astropy.coordinates import EarthLocation

    loc = EarthLocation.from_geodetic(LON * u.deg, LAT * u.deg, ELEV * u.m)
    geo = {"OBSGEO-X": loc.x.to_value(u.m), "OBSGEO-Y": loc.y.to_value(u.m), "OBSGEO-Z": loc.z.to_value(u.m)}
    info = read_frame_info(_write(tmp_path / "c.fits", img, {**sharpcap("science", 5.0), **geo}), instrument="alpy600")
    assert info.site == pytest.approx((LAT, LON, ELEV), abs=1e-3)
    # A date without a time: flagged.
    d = read_frame_info(_write(tmp_path / "d.fits", img, {**old_convention("science", 5.0), "TIME-OBS": ""}), instrument="alpy600")
    assert "TIME-OBS" in d.missing
    # A light frame whose lamp keyword names an arc lamp is an arc; 'none' is not.
    lamp = read_frame_info(_write(tmp_path / "e.fits", img, {**nina("science", 5.0), "LAMP": "HgAr"}), instrument="alpy600")
    assert lamp.kind == "ARC" and "LAMP" in lamp.kind_from
    assert read_frame_info(_write(tmp_path / "f.fits", img, {**nina("science", 5.0), "LAMP": "none"}), instrument="alpy600").kind == "LIGHT"


def test_instrument_file_is_read_again_when_it_changes(tmp_path):
    src = Path(load_instrument.__globals__["instrument_path"]("alpy600")).read_text(encoding="utf-8")
    path = tmp_path / "mine.toml"
    path.write_text(src, encoding="utf-8")
    first = load_instrument(str(path))
    assert load_instrument(str(path)) is first  # cached while unchanged
    assert "aperture_half_width = 12" in src
    edited = src.replace("aperture_half_width = 12", "aperture_half_width = 9", 1)
    path.write_text(edited, encoding="utf-8")
    st = path.stat()
    import os

    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))  # a later modification time, whatever the clock's resolution
    again = load_instrument(str(path))
    assert again.recipe.aperture_half_width == 9 and first.recipe.aperture_half_width != 9


# --------------------------------------------------------------------------- a folder reduced


@pytest.fixture(scope="module")
def renders():
    render = pytest.importorskip("rosace_sim.render")
    r = render.Renderer("alpy600")
    rng = np.random.default_rng(5)
    star = render.Star("gam Cas", RA_DEG, DEC_DEG, 2.39, "B0.5IVe", be_emission={"ew": -30})
    sci, truth = r.science(star, exposure=5.0, airmass=1.2, time=START, site=(LAT, LON, ELEV), rng=rng)
    return {"science": sci, "arc": r.arc(exposure=2.0, rng=rng)[0], "flat": r.flat(rng=rng)[0],
            "bias": [r.bias(rng=rng)[0] for _ in range(3)]}, truth


@pytest.mark.parametrize("program", ["N.I.N.A.", "MaxIm DL", "SharpCap", "Prism"])
def test_foreign_folder_reduces_with_instrument_option(tmp_path, renders, program, capsys):
    frames, truth = renders
    make = PROGRAMS[program]
    night = tmp_path / "night"
    _write(night / "gamCas_Light_001.fits", frames["science"], make("science", 5.0))
    _write(night / "NeAr_Light_001.fits", frames["arc"], make("arc", 2.0))
    _write(night / "Flat_001.fits", frames["flat"], make("flat", 5.0))
    for i, b in enumerate(frames["bias"]):
        _write(night / f"Bias_{i:03d}.fits", b, make("bias", 0.0))
    out = tmp_path / "out"
    # Without --instrument: INSTRUME is a camera; the observation fails with a message naming the option.
    code = main(["reduce", str(night), "--output", str(out), "--workers", "1", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and "--instrument" in json.dumps(report)
    code = main(["reduce", str(night), "--output", str(out), "--workers", "1", "--json", "--instrument", "alpy600"])
    capsys.readouterr()
    records = [json.loads(p.read_text()) for p in out.rglob("*.json") if "responses" not in p.name]
    assert code == 0 and len(records) == 1
    rec = records[0]
    assert rec["instrument"] == "alpy600" and rec["object"] == "gam Cas"
    assert [Path(a).name for a in rec["calibrations"]["arc"]] == ["NeAr_Light_001.fits"]  # the arc saved as a light frame
    assert rec["exptime"] == 5.0
    with fits.open(rec["products"]["fits"]) as hdul:
        h = hdul[0].header
    # Flux per second from EXPOSURE (Prism writes no EXPTIME): not x 1e6.
    assert h["BUNIT"] == "adu / (s Angstrom)" and h["EXPTIME"] == 5.0
    flags = rec["flags"]
    if program in ("N.I.N.A.", "MaxIm DL"):
        assert not [f for f in flags if f.startswith("missing")]
        assert rec["barycentric_kms"] == pytest.approx(truth["rv"]["barycentric_correction_kms"], abs=0.05)
        assert h["GEO_LAT"] == pytest.approx(LAT)
    else:
        # Missing coordinates (and site for SharpCap) are flags in the record and the FITS header, not defaults.
        assert "missing:RA/DEC" in flags and "no_barycentric_correction" in flags and rec["barycentric_kms"] == 0.0
        assert "missing:RA/DEC" in h["ROSFLAGS"] and h["ROSQUAL"] != "good"
        if program == "SharpCap":
            assert "missing:SITE" in flags and "missing:SITE" in h["ROSFLAGS"]
            assert "GEO_LAT" not in h and h["BSS_SITE"] == "unknown"
        else:
            assert h["GEO_LAT"] == pytest.approx(LAT)
