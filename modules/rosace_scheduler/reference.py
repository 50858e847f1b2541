"""Automatic reference stars for the instrument response, from the bundled list of bright A/B stars."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from rosace_core.resources import resource_path


@dataclass(frozen=True)
class ReferenceStar:
    """One star of ``resources/reference_stars.csv``."""

    name: str
    ra: float
    dec: float
    vmag: float
    sptype: str
    hr: int | None


@lru_cache(maxsize=4)
def load_reference_stars(path: Path | None = None) -> tuple[ReferenceStar, ...]:
    """Read the reference star list (comment lines start with '#')."""
    path = Path(path) if path else resource_path("reference_stars.csv")
    with path.open(encoding="utf-8") as fh:
        rows = csv.DictReader(line for line in fh if line.strip() and not line.lstrip().startswith("#"))
        return tuple(
            ReferenceStar(r["name"], float(r["ra"]), float(r["dec"]), float(r["vmag"]), r["sptype"], int(r["hr"]) if r.get("hr") else None)
            for r in rows
        )


def faintest_for(spectrograph: str | None) -> float:
    """Return the faintest V magnitude worth using with a set-up (high resolution needs brighter stars)."""
    name = (spectrograph or "").lower()
    return 3.0 if "lhires" in name or "echelle" in name else 4.0


def choose_reference(site, unix: float, airmass: float | None = None, *, spectrograph: str | None = None,
                     near: tuple[float, float] | None = None, min_altitude: float = 30.0, count: int = 3) -> list[dict]:
    """Return the best reference stars at ``unix`` (best first): close in airmass to ``airmass``.

    Stars below ``min_altitude`` or fainter than the set-up allows are left out.
    Ties are broken by sky distance to ``near`` (ra, dec in degrees) when given.
    """
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.time import Time

    from rosace_core.astro import configure_offline

    configure_offline()
    stars = [s for s in load_reference_stars() if s.vmag <= faintest_for(spectrograph)]
    loc = EarthLocation(lat=site.latitude * u.deg, lon=site.longitude * u.deg, height=site.elevation * u.m)
    coords = SkyCoord([s.ra for s in stars] * u.deg, [s.dec for s in stars] * u.deg)
    aa = coords.transform_to(AltAz(obstime=Time(unix, format="unix"), location=loc))
    alt = aa.alt.deg
    x = np.where(alt > 0, 1.0 / np.sin(np.radians(np.clip(alt, 0.1, 90))), np.inf)
    target_x = airmass if airmass is not None else 1.2
    cost = np.abs(x - target_x)
    if near is not None:
        sep = coords.separation(SkyCoord(near[0] * u.deg, near[1] * u.deg)).deg
        cost = cost + sep / 900.0  # 0.1 in airmass per 90 degrees: a tie-breaker only
    ok = alt >= min_altitude
    out = []
    for i in np.argsort(np.where(ok, cost, np.inf))[:count]:
        if not ok[i]:
            break
        s = stars[i]
        out.append({"name": s.name, "ra": s.ra, "dec": s.dec, "vmag": s.vmag, "sptype": s.sptype, "hr": s.hr,
                    "altitude": round(float(alt[i]), 2), "airmass": round(float(x[i]), 3),
                    "airmass_difference": None if airmass is None else round(float(x[i] - airmass), 3)})
    return out
