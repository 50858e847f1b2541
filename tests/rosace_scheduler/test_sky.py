"""The fast sky model agrees with astropy's AltAz."""

from datetime import date

import astropy.units as u
import numpy as np
from astropy.coordinates import AltAz, EarthLocation, SkyCoord, get_body
from astropy.time import Time

from rosace_core.config import Site
from rosace_scheduler.sky import HorizonProfile, NightSky, night_date_of


def test_altitudes_and_airmasses_agree_with_astropy():
    site = Site()
    sky = NightSky.build(date(2026, 11, 20), site)
    rng = np.random.default_rng(3)
    ra = rng.uniform(0, 360, 40)
    dec = np.degrees(np.arcsin(rng.uniform(-0.6, 1.0, 40)))
    alt, az, moon_sep = sky.altaz(sky.target_cirs(ra, dec))
    idx = np.arange(0, len(sky.times), 17)
    loc = EarthLocation(lat=site.latitude * u.deg, lon=site.longitude * u.deg, height=site.elevation * u.m)
    t = Time(sky.times[idx], format="unix")
    frame = AltAz(obstime=t[None, :], location=loc)
    ref = SkyCoord(ra[:, None] * u.deg, dec[:, None] * u.deg).transform_to(frame)
    assert np.abs(ref.alt.deg - alt[:, idx]).max() < 0.01
    up = ref.alt.deg > 10
    assert np.abs(ref.secz[up] - 1 / np.sin(np.radians(alt[:, idx][up]))).max() < 0.001
    daz = (ref.az.deg - az[:, idx] + 180) % 360 - 180
    assert np.abs(daz[ref.alt.deg < 80]).max() < 0.01
    moon = get_body("moon", t, loc).transform_to(AltAz(obstime=t, location=loc))
    sun = get_body("sun", t, loc).transform_to(AltAz(obstime=t, location=loc))
    assert np.abs(moon.alt.deg - sky.moon_alt[idx]).max() < 0.01
    assert np.abs(sun.alt.deg - sky.sun_alt[idx]).max() < 0.01
    assert np.abs(ref.separation(moon[None, :]).deg - moon_sep[:, idx]).max() < 0.01


def test_night_grid_covers_sunset_to_sunrise():
    sky = NightSky.build(date(2026, 6, 21), Site())
    assert sky.sunset is not None and sky.sunrise is not None
    assert sky.times[0] <= sky.sunset < sky.sunrise <= sky.times[-1]
    assert np.all(np.diff(sky.times) == 60)
    # midsummer at 43.75 N: about 8.6 h between sunset and sunrise
    assert 8.0 * 3600 < sky.sunrise - sky.sunset < 9.2 * 3600


def test_night_date_is_the_local_evening():
    from datetime import datetime, timezone

    assert night_date_of(datetime(2026, 11, 21, 3, 0, tzinfo=timezone.utc), 6.9).isoformat() == "2026-11-20"
    assert night_date_of(datetime(2026, 11, 20, 18, 0, tzinfo=timezone.utc), 6.9).isoformat() == "2026-11-20"


def test_horizon_profile_is_interpolated_and_widened():
    h = HorizonProfile([(0, 10), (90, 40), (180, 10), (270, 10)], margin_az=2.0)
    assert np.isclose(h.exact(45.0), 25.0)
    assert np.isclose(h.exact(315.0), 10.0)  # wraps through north
    assert h.limit(np.array([88.0]))[0] >= 40.0  # a peak 2 deg away counts
    assert h.limit(np.array([45.0]))[0] >= h.exact(45.0)


def test_interpolated_sun_moon_and_rotation_match_astropy_at_every_minute():
    """Sun, moon and the CIRS->AltAz rotation come from ERFA at 20-min nodes and are splined to
    the 1-min grid: at every grid instant of two nights (new and full moon) they stay within a
    few arcseconds of astropy, far inside the margins the masks keep (0.01 deg sun/moon, 0.02 deg altitude)."""
    from astroplan import moon_illumination

    from rosace_scheduler.constraints import MOON_MARGIN, SUN_MARGIN

    site = Site()
    loc = EarthLocation(lat=site.latitude * u.deg, lon=site.longitude * u.deg, height=site.elevation * u.m)
    for night in (date(2026, 11, 24), date(2026, 12, 9)):
        sky = NightSky.build(night, site)
        t = Time(sky.times, format="unix")
        frame = AltAz(obstime=t, location=loc)
        sun = get_body("sun", t, loc).transform_to(frame)
        moon = get_body("moon", t, loc).transform_to(frame)
        sun_err = np.abs(sun.alt.deg - sky.sun_alt).max()
        moon_alt_err = np.abs(moon.alt.deg - sky.moon_alt).max()
        mv = np.stack([np.cos(moon.alt.rad) * np.cos(moon.az.rad), np.cos(moon.alt.rad) * np.sin(moon.az.rad), np.sin(moon.alt.rad)], axis=1)
        moon_dir_err = np.degrees(np.arccos(np.clip(np.einsum("ti,ti->t", mv, sky.moon_vec), -1, 1))).max()
        assert sun_err < 2e-3 and sun_err < SUN_MARGIN / 5
        assert moon_alt_err < 2e-3 and moon_dir_err < 2e-3 and moon_dir_err < MOON_MARGIN / 5
        assert np.abs(moon_illumination(t) - sky.moon_illumination).max() < 2e-5
        # targets over the whole sky, every minute of the night
        ra = np.arange(0.0, 360.0, 45.0)
        dec = np.array([-30.0, 0.0, 20.0, 45.0, 60.0, 75.0, 85.0, 10.0])
        alt, az, _ = sky.altaz(sky.target_cirs(ra, dec))
        ref = SkyCoord(ra[:, None] * u.deg, dec[:, None] * u.deg).transform_to(AltAz(obstime=t[None, :], location=loc))
        assert np.abs(ref.alt.deg - alt).max() < 2e-3
