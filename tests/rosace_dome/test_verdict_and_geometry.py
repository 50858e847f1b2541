"""Safety verdict, leases and dome slaving geometry (pure logic, hand-worked cases)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from rosace_core.alpaca import Reading
from rosace_core.errors import ConfigError, DeviceNotConnected, NotFoundError
from rosace_dome.leases import LeaseBook, LeaseError
from rosace_dome.safety import SafetyInputs, evaluate, sun_altitude
from rosace_dome.settings import DomeSettings, SlavingGeometry, load_settings
from rosace_dome.slaving import PIER_EAST, PIER_WEST, azimuth_error, dome_azimuth, pointing_vector

T = datetime(2026, 1, 15, 22, 0, tzinfo=timezone.utc)


def good_inputs(**kw):
    readings = {n: Reading(n, v, 5.0) for n, v in {"cloud_cover": 10.0, "rain_rate": 0.0, "wind_speed": 3.0, "humidity": 60.0}.items()}
    base = dict(monitor=True, readings=readings, sun_altitude=-30.0)
    base.update(kw)
    return SafetyInputs(**base)


def test_all_good_is_safe():
    v = evaluate(good_inputs(), DomeSettings(), T)
    assert v.safe and v.reasons == []
    assert {s.name for s in v.sensors} == {"safety_monitor", "cloud_cover", "rain_rate", "wind_speed", "humidity", "sun_altitude"}
    assert all(s.ok for s in v.sensors)


def test_each_cause_is_reported_with_its_reason():
    inputs = good_inputs(monitor=False, sun_altitude=5.0, locked=True, lock_reason="mirror cleaning")
    inputs.readings["rain_rate"] = Reading("rain_rate", 2.5, 5.0)
    inputs.readings["humidity"] = Reading("humidity", 50.0, 999.0)
    inputs.readings["wind_speed"] = DeviceNotConnected("weather station", "wind: refused")
    v = evaluate(inputs, DomeSettings(), T)
    assert not v.safe
    text = " | ".join(v.reason_texts)
    assert "safety monitor reports unsafe" in text
    assert "rain_rate 2.5 mm/h above limit 0" in text
    assert "humidity reading is stale (999 s old, limit 180 s)" in text
    assert "wind_speed unreadable" in text and "refused" in text
    assert "sun at 5.0 deg" in text
    assert "maintenance lock: mirror cleaning" in text
    # Only weather causes start the re-open delay.
    assert not v.weather_safe
    only_sun = evaluate(good_inputs(sun_altitude=5.0), DomeSettings(), T)
    assert not only_sun.safe and only_sun.weather_safe


def test_missing_age_or_value_is_unsafe_and_min_limit_works():
    inputs = good_inputs()
    inputs.readings["cloud_cover"] = Reading("cloud_cover", 10.0, None)
    inputs.readings["humidity"] = Reading("humidity", None, None)
    settings = DomeSettings(limits={"cloud_cover": {"max": 50}, "humidity": {"max": 90}, "temperature": {"min": -20, "max_age": 60}})
    inputs.readings["temperature"] = Reading("temperature", -25.0, 10.0)
    v = evaluate(inputs, settings, T)
    texts = v.reason_texts
    assert any("cloud_cover: age of the reading unknown" in t for t in texts)
    assert any("humidity not provided" in t for t in texts)
    assert any("temperature -25 below limit -20" in t for t in texts)
    assert evaluate(inputs, settings, T).sensors[3].max_age == 60


def test_sun_altitude_day_and_night():
    noon = datetime(2026, 6, 21, 11, 30, tzinfo=timezone.utc)
    assert sun_altitude(noon, 43.75, 6.92, 1270) > 60
    assert sun_altitude(T, 43.75, 6.92, 1270) < -40


def test_settings_errors_name_the_key():
    class Cfg:
        dome = {"poll_period": -1, "limits": {"rain_rate": {"max": 0}}}
        source = "rosace.toml"

    with pytest.raises(ConfigError) as err:
        load_settings(Cfg())
    assert "dome.poll_period" in str(err.value)
    with pytest.raises(ConfigError) as err:
        Cfg.dome = {"limits": {"rainfall": {"max": 0}}}
        load_settings(Cfg())
    assert "rainfall" in str(err.value)


# ---------------------------------------------------------------- leases


def test_leases_expire_in_clock_time():
    book = LeaseBook(max_duration=600)
    a = book.acquire("sequencer", 60, T)
    b = book.acquire("desktop", 120, T)
    assert [lease.id for lease in book.active()] == [a.id, b.id]
    book.renew(a.id, 300, T + timedelta(seconds=30))
    assert book.expire(T + timedelta(seconds=200)) == [b]
    assert book.expire(T + timedelta(seconds=331)) == [a]
    assert book.active() == []
    with pytest.raises(NotFoundError):
        book.renew(a.id, 60, T)
    with pytest.raises(LeaseError):
        book.acquire("x", 601, T)
    with pytest.raises(LeaseError):
        book.acquire("x", 0, T)
    c = book.acquire("x", 10, T)
    with pytest.raises(NotFoundError):
        book.renew(c.id, 10, T + timedelta(seconds=11))  # already run out
    assert book.release(c.id) is c
    with pytest.raises(NotFoundError):
        book.release(c.id)


# ---------------------------------------------------------------- slaving geometry


def test_pointing_vector_cardinal_directions():
    # Dec 90 is the pole: north, altitude = latitude.
    v = pointing_vector(0.0, 90.0, 45.0)
    assert v == pytest.approx([0.0, math.cos(math.radians(45)), math.sin(math.radians(45))], abs=1e-12)
    # H = +6 h on the equator is due west on the horizon.
    assert pointing_vector(90.0, 0.0, 45.0) == pytest.approx([-1.0, 0.0, 0.0], abs=1e-12)
    # H = 0 on the equator: south, altitude 90 - latitude.
    assert pointing_vector(0.0, 0.0, 45.0) == pytest.approx([0.0, -math.sqrt(0.5), math.sqrt(0.5)], abs=1e-12)


def test_centred_mount_follows_the_telescope_azimuth():
    g = SlavingGeometry(radius=2.0)
    assert dome_azimuth(0.0, 0.0, 45.0, PIER_EAST, g) == pytest.approx(180.0)
    assert dome_azimuth(90.0, 0.0, 45.0, PIER_EAST, g) == pytest.approx(270.0)
    assert dome_azimuth(-90.0, 0.0, 45.0, PIER_WEST, g) == pytest.approx(90.0)


def test_off_centre_mount_hand_worked():
    # Mount 1 m east of the centre of a 2 m dome, looking at the north horizon:
    # the axis meets the dome at (1, sqrt(3)) -> azimuth atan(1/sqrt 3) = 30 deg.
    g = SlavingGeometry(radius=2.0, mount_east=1.0)
    # North horizon from latitude 0: the pole (Dec 90).
    assert dome_azimuth(0.0, 90.0, 0.0, PIER_EAST, g) == pytest.approx(30.0)


def test_german_mount_offset_hand_worked():
    g = SlavingGeometry(radius=2.0, gem_offset=0.5)
    # Zenith (H 0, Dec = latitude): the tube is 0.5 m east (pierEast) or west of the
    # polar axis, so the slit is due east or due west whatever the altitude.
    assert dome_azimuth(0.0, 45.0, 45.0, PIER_EAST, g) == pytest.approx(90.0)
    assert dome_azimuth(0.0, 45.0, 45.0, PIER_WEST, g) == pytest.approx(270.0)
    # Meridian, equator, latitude 45, pierEast: origin (0.5, 0, 0), direction
    # (0, -0.7071, 0.7071), t = sqrt(4 - 0.25) = 1.9365 -> point (0.5, -1.3693, 1.3693):
    # azimuth 180 - atan(0.5 / 1.3693) = 159.94 deg.
    assert dome_azimuth(0.0, 0.0, 45.0, PIER_EAST, g) == pytest.approx(180.0 - math.degrees(math.atan(0.5 / 1.36931)), abs=1e-3)
    assert dome_azimuth(0.0, 0.0, 45.0, PIER_EAST, g) == pytest.approx(159.94, abs=0.01)
    # Pier height: a centred mount raised 1 m looking at the south horizon still gives 180.
    assert dome_azimuth(0.0, -45.0, 45.0, PIER_EAST, SlavingGeometry(radius=2.0, pier_height=1.0)) == pytest.approx(180.0)


def test_mount_outside_the_dome_is_an_error():
    with pytest.raises(ValueError):
        dome_azimuth(0.0, 0.0, 45.0, PIER_EAST, SlavingGeometry(radius=1.0, mount_east=3.0))


def test_azimuth_error_wraps():
    assert azimuth_error(359.0, 1.0) == pytest.approx(2.0)
    assert azimuth_error(10.0, 190.0) == pytest.approx(180.0)
