"""Fixtures of the share tests: seeded synthetic BeSS spectra and archives on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import os
import uuid
from datetime import datetime, timedelta

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

HALPHA = 6562.85
C_KMS = 299792.458
ADMIN = "admin-token-for-tests"


def bess_bytes(
    object_name: str = "gam Cas",
    date_obs: datetime = datetime(2025, 9, 1, 22, 30),
    *,
    seed: int = 1,
    emission: float = 2.0,
    vr: float = 1.0,
    absorption: float = 0.3,
    normalised: bool = True,
    wl0: float = 6450.0,
    step: float = 0.4,
    n: int = 600,
    snr: float = 150.0,
    error: bool = True,
    observer: str = "A. Observer",
    drop: tuple[str, ...] = (),
    extra: dict | None = None,
) -> bytes:
    """A BeSS 1D FITS of a Be star: H-alpha double-peaked emission (peak ratio ``vr``) over a photospheric absorption."""
    rng = np.random.default_rng(seed)
    wl = wl0 + step * np.arange(n)
    v = C_KMS * (wl - HALPHA) / HALPHA
    sig = 150.0  # km/s per peak
    profile = emission * (vr / (1 + vr) * 2 * np.exp(-0.5 * ((v + 120) / sig) ** 2) + 1 / (1 + vr) * 2 * np.exp(-0.5 * ((v - 120) / sig) ** 2)) / 2
    flux = 1.0 + profile - absorption * np.exp(-0.5 * (v / 400.0) ** 2)
    if not normalised:
        flux = flux * (2000.0 + 0.8 * (wl - wl0))
    noise = np.abs(flux) / snr
    flux = flux + rng.normal(0, 1, n) * noise
    h = fits.Header()
    h["CRPIX1"] = 1.0
    h["CRVAL1"] = wl0
    h["CDELT1"] = step
    h["CTYPE1"] = "Wavelength"
    h["CUNIT1"] = "Angstrom"
    t = Time(date_obs, scale="utc")
    keys = {
        "OBJNAME": object_name, "OBJECT": object_name, "DATE-OBS": t.isot, "EXPTIME": 1200.0, "OBSERVER": observer,
        "BSS_INST": "C11 + LHIRES 2400", "BSS_SITE": "Test site", "BSS_VHEL": 0.0, "BSS_COSM": "none",
        "BSS_NORM": "continuum spline" if normalised else "none", "BSS_TELL": "none", "BSS_ITRP": 15000.0,
        "BSS_ESRP": 14200.0, "BSS_SRPW": 6560.0, "BSS_RA": 14.177, "BSS_DEC": 60.717, "JD-OBS": float(t.jd),
        "GEO_LONG": 6.92, "GEO_LAT": 43.75, "GEO_ELEV": 1270.0, "ROSSNR": snr, "ROSWRMS": 0.02,
        "ROSPROV": json.dumps({"raw_frames": ["a.fits", "b.fits"], "calibrations": {"arc": ["arc.fits"]}}),
    }
    keys.update(extra or {})
    for k, val in keys.items():
        h[k] = val
    for k in drop:
        h.remove(k, ignore_missing=True)
    hdus = [fits.PrimaryHDU(flux.astype(np.float32), header=h)]
    if error:
        hdus.append(fits.ImageHDU(noise.astype(np.float32), name="UNCERT"))
    buf = io.BytesIO()
    fits.HDUList(hdus).writeto(buf)
    return buf.getvalue()


def be_star_series(n: int = 30, object_name: str = "gam Cas", start: datetime = datetime(2025, 8, 1, 23, 0), seed: int = 7):
    """``n`` epochs of a Be star whose H-alpha emission and V/R vary: [(bytes, emission, date)]."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        date = start + timedelta(days=3 * i, minutes=int(rng.integers(0, 120)))
        emission = 1.5 + 1.0 * np.sin(2 * np.pi * i / 20)
        vr = 1.0 + 0.4 * np.sin(2 * np.pi * i / 12)
        out.append((bess_bytes(object_name, date, seed=seed * 100 + i, emission=emission, vr=vr), emission, date))
    return out


@pytest.fixture
def make_bess():
    """Factory of synthetic BeSS FITS bytes (see ``bess_bytes``)."""
    return bess_bytes


@pytest.fixture(scope="session")
def be_series():
    """30 epochs of a Be star with varying H-alpha emission."""
    return be_star_series()


def postgres_url() -> str | None:
    return os.environ.get("ROSACE_TEST_POSTGRES_URL") or None


@pytest.fixture
def pg_schema_url():
    """A PostgreSQL URL pointing at a fresh schema (dropped afterwards); skips without a server."""
    base = postgres_url()
    if not base:
        pytest.skip("PostgreSQL variant: set ROSACE_TEST_POSTGRES_URL (e.g. postgresql+psycopg://rosace:rosace@127.0.0.1:5432/rosace_test)")
    from sqlalchemy import create_engine, text

    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL at ROSACE_TEST_POSTGRES_URL unusable: {exc.__class__.__name__}: {str(exc)[:120]}")
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """The archive database URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{(tmp_path / 'archive.sqlite').as_posix()}"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture
def archive(db_url, tmp_path):
    """An empty, migrated archive."""
    from rosace_share.archive import Archive

    arc = Archive(db_url, tmp_path / "store", max_upload_bytes=2 * 2**20)
    yield arc
    arc.close()


def share_config(tmp_path, db_url, **share):
    from rosace_core.config import config_from_dict

    return config_from_dict({"data": {"root": str(tmp_path / "data")}, "share": {"database_url": db_url, **share}})


@pytest.fixture
def app(tmp_path, db_url):
    """The share app on each backend (server mode, admin token ADMIN, 2 MiB uploads)."""
    from rosace_share.api import create_app

    application = create_app(share_config(tmp_path, db_url, mode="server", max_upload_mb=2), token=ADMIN)
    yield application
    application.extensions["rosace_share"].archive.close()


@pytest.fixture
def web(app):
    """Flask test client of ``app``."""
    return app.test_client()
