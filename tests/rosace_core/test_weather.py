"""Weather readings in ASCOM units and range-checked: rules, then the adapter on the simulator over HTTP."""

from __future__ import annotations

import pytest

from rosace_core import alpaca
from rosace_core.config import config_from_dict
from rosace_core.errors import ConfigError
from rosace_core.weather import ReadingChecker, WeatherReadingError
from rosace_sim.testing import SimObservatory


def test_a_cloud_cover_fraction_is_read_as_the_cautious_percentage_until_the_sensor_reads_above_one():
    c = ReadingChecker()
    assert c.check("cloud_cover", 0.9) == pytest.approx(90.0)  # overcast as a fraction: 90 %, not 0.9 %
    assert c.check("cloud_cover", 0.0) == 0.0
    assert c.check("cloud_cover", 35.0) == 35.0  # the sensor gives percent after all
    assert c.check("cloud_cover", 0.9) == pytest.approx(0.9)  # from now on 0.9 is 0.9 %


def test_units_are_detected_where_the_value_or_the_description_tells():
    c = ReadingChecker()
    assert c.check("temperature", 278.15) == pytest.approx(5.0)  # kelvin
    assert c.check("pressure", 87000.0) == pytest.approx(870.0)  # pascals
    assert c.check("wind_speed", 36.0, describe=lambda: "Anemometer, km/h") == pytest.approx(10.0)
    # a cloud sensor described as % but reading 0.5 is the mislabelled driver: still the cautious reading
    assert ReadingChecker().check("cloud_cover", 0.5, describe=lambda: "cloud sensor (%)") == pytest.approx(50.0)


def test_configured_units_win_and_impossible_values_name_the_key_that_fixes_them():
    c = ReadingChecker({"cloud_cover": "percent", "wind_speed": "knots", "temperature": "F"})
    assert c.check("cloud_cover", 0.9) == pytest.approx(0.9)
    assert c.check("wind_speed", 10.0) == pytest.approx(5.14444)
    assert c.check("temperature", 41.0) == pytest.approx(5.0)
    with pytest.raises(WeatherReadingError, match=r"humidity reads 150, outside the possible 0-100 %.*units = \{humidity"):
        c.check("humidity", 150.0)
    with pytest.raises(WeatherReadingError, match="rain_rate reads -1"):
        c.check("rain_rate", -1.0)
    with pytest.raises(WeatherReadingError, match="not a number"):
        c.check("sky_quality", float("nan"))


def test_a_bad_unit_in_the_configuration_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"devices\.observing_conditions\.units.*furlong.*cloud_cover"):
        config_from_dict({"devices": {"observing_conditions": {"units": {"cloud_cover": "furlong"}}}})
    with pytest.raises(ConfigError, match=r"unknown quantity 'clouds'"):
        config_from_dict({"devices": {"observing_conditions": {"units": {"clouds": "percent"}}}})


@pytest.fixture(scope="module")
def sim():
    with SimObservatory({"clock": {"start": "2025-01-15T21:00:00Z", "rate": 20.0}}) as s:
        yield s


def test_the_station_adapter_converts_and_rejects_readings_from_the_simulator(sim):
    try:
        sim.control.set_weather(cloud_cover=0.9, temperature=278.15, wind_speed=500.0)
        oc = alpaca.ObservingConditions(sim.url, 0, retries=1)
        oc.connect()
        assert oc.reading("cloud_cover").value == pytest.approx(90.0)
        assert oc.reading("temperature").value == pytest.approx(5.0)
        with pytest.raises(WeatherReadingError, match=r"observingconditions 0 at .*: wind_speed reads 500"):
            oc.reading("wind_speed")
        configured = alpaca.ObservingConditions(sim.url, 0, retries=1, units={"cloud_cover": "percent"})
        assert configured.reading("cloud_cover").value == pytest.approx(0.9)
    finally:
        sim.control.clear_weather()
