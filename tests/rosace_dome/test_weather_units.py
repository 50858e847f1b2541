"""The dome judges the sky with readings in ASCOM units: a cloud cover given as a fraction by the
station is overcast, not 1 %; an impossible reading is unsafe with the key that fixes it. Real simulator
over HTTP, the dome's own device set-up from the configuration."""

from __future__ import annotations

import pytest

from rosace_core.config import config_from_dict
from rosace_dome.settings import DomeSettings
from rosace_dome.shelter import Shelter, ShelterDevices
from rosace_sim import devices_config
from rosace_sim.testing import SimObservatory

SCENARIO = {
    "clock": {"start": "2026-01-15T22:00:00Z", "rate": 1.0},
    "weather": {"timeline": [{"at": "+0s", "cloud_cover": 0.9, "rain_rate": 0, "wind_speed": 3, "humidity": 55, "safe": True}]},
}


@pytest.fixture(scope="module")
def sim():
    with SimObservatory(SCENARIO) as s:
        yield s


def verdict_with(sim, tmp_path, **station):
    devices = devices_config(sim.url, retries=1)
    devices["observing_conditions"].update(station)
    config = config_from_dict({"devices": devices})
    shelter = Shelter(ShelterDevices.from_config(config), DomeSettings(min_poll_wall=0.05), state_file=tmp_path / "dome.json")
    for dev in shelter.devices.all().values():
        dev.connect()
    return shelter.poll_once()


def test_a_cloud_cover_fraction_is_overcast_and_unsafe(sim, tmp_path):
    verdict = verdict_with(sim, tmp_path)
    assert not verdict.safe
    assert any("cloud_cover 90 % above limit 70" in text for text in verdict.reason_texts), verdict.reason_texts


def test_the_configured_unit_is_used(sim, tmp_path):
    verdict = verdict_with(sim, tmp_path, units={"cloud_cover": "percent"})
    assert not any("cloud_cover" in text for text in verdict.reason_texts), verdict.reason_texts


def test_an_impossible_reading_is_unsafe_and_names_the_key(sim, tmp_path):
    verdict = verdict_with(sim, tmp_path, units={"humidity": "fraction"})  # 55 as a fraction: 5500 %
    assert not verdict.safe
    assert any("humidity unreadable" in t and "humidity reads 55" in t and "units" in t for t in verdict.reason_texts), verdict.reason_texts
