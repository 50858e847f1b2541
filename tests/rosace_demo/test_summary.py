"""The night summary's figures computed from the dome snapshots."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from rosace_demo.summary import failed_under_unsafe_sky, open_in_bad_weather, roof_closures, weather_loss

T0 = datetime(2026, 12, 15, 20, 0, tzinfo=timezone.utc)


def snap(minute: int, state: str, safe: bool, reasons=()):
    return {"time": (T0 + timedelta(minutes=minute)).isoformat(),
            "dome": {"shelter": {"state": state}, "safe": safe, "verdict": {"reasons": list(reasons)}}}


def test_weather_figures():
    snaps = [
        snap(0, "closed", False, ["sun altitude -3.0 above -6.0"]),   # daylight is not weather
        snap(10, "open", True),
        snap(20, "open", False, ["cloud_cover 90 % above limit 70"]),
        snap(25, "closing", False, ["cloud_cover 90 % above limit 70"]),
        snap(27, "closed", False, ["cloud_cover 90 % above limit 70"]),
        snap(60, "closed", True),
        snap(70, "open", True),
    ]
    assert weather_loss(snaps) == 40 * 60
    assert roof_closures(snaps) == 1
    assert open_in_bad_weather(snaps) == 5 * 60  # open at 20, closing at 25


def test_roof_left_open_in_rain_is_measured():
    snaps = [snap(m, "open", False, ["rain_rate 2.5 mm/h above limit 0"]) for m in range(0, 60, 10)]
    assert open_in_bad_weather(snaps) == 50 * 60
    assert roof_closures(snaps) == 0


def test_a_failure_as_the_clouds_came_is_a_weather_interruption_not_a_clear_sky_failure():
    snaps = [
        snap(0, "open", True),
        snap(10, "open", True),
        snap(12, "open", False, ["cloud_cover 90 % above limit 70"]),
        snap(14, "closing", False, ["cloud_cover 90 % above limit 70"]),
        snap(40, "closed", True),
        snap(60, "open", True),
    ]
    at = lambda minute: (T0 + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")  # noqa: E731
    history = [
        # started just before the dome parked the mount: "pulse guide: the mount is parked"
        {"observation_id": "a", "outcome": "failed", "started": at(9), "ended": at(11)},
        {"observation_id": "b", "outcome": "failed", "started": at(45), "ended": at(50)},  # a failure under a clear sky
        {"observation_id": "c", "outcome": "completed", "started": at(1), "ended": at(8)},
    ]
    assert [h["observation_id"] for h in failed_under_unsafe_sky(history, snaps)] == ["a"]
