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


def test_the_night_report_is_readable_and_links_to_the_gallery():
    """Rounded figures (no raw floats), objects and spectra linked to their gallery pages."""
    from datetime import datetime, timezone

    from rosace_demo.summary import publish_report

    posted = {}

    class Share:
        def post(self, path, body):
            posted.update(body)
            return {"id": 3, "url": "/gallery/reports/3"}

    class Night:
        start_time = datetime(2026, 12, 15, 16, 30, tzinfo=timezone.utc)

        def client(self, name):
            return Share()

        def url(self, name):
            return "http://127.0.0.1:8705"

    verdict = {"figures": {"clear_sky_completion": 0.9999999, "spectra": 7, "peak_memory_mib": 1191.4837},
               "checks": [{"ok": True, "name": "roof closed at the end", "detail": "closed"}],
               "spectra": [{"object": "gam Cas", "date": "2026-12-15T18:03:12.5", "snr": 207.48391, "wavelength_rms": 0.0412345,
                            "resolving_power": 612.3, "bess_ok": True, "bess_missing": "", "id": 12}],
               "events": ["18:00 clouds"]}
    assert publish_report(Night(), verdict) == "http://127.0.0.1:8705/gallery/reports/3"
    body = posted["body_html"]
    assert "207.48391" not in body and "<td>207</td>" in body and "<td>0.041</td>" in body
    assert "1191.4837" not in body and ">1191<" in body
    assert '<a href="/gallery/objects/gam%20Cas">gam Cas</a>' in body and '<a href="/gallery/spectra/12">' in body
    assert "2026-12-15 18:03" in body


def test_an_observation_without_a_target_name_is_not_a_target():
    """A completed entry with neither target nor file id is not counted (sorting it with names crashed)."""
    from rosace_demo.summary import evaluate

    class Night:
        expectations = None
        snapshots = [snap(0, "open", True), snap(60, "closed", True)]
        drills = []
        procs = None
        frames_taken = 2
        events = []
        start_time = T0

        def client(self, name):
            class Share:  # the report's upload (its own test is above)
                def post(self, path, body):
                    return {"id": 1, "url": "/gallery/reports/1"}
            return Share()

        def url(self, name):
            return "http://127.0.0.1:8705"

    ended = (T0 + timedelta(minutes=30)).isoformat()
    summary = {"history": [{"outcome": "completed", "target": "gam Cas", "ended": ended},
                           {"outcome": "completed", "ended": ended}],
               "final_dome": {"shelter": {"state": "closed"}}}
    verdict = evaluate(Night(), summary)
    assert verdict["figures"]["observations_completed"] == 2
    assert verdict["figures"]["targets_observed"] == "gam Cas"
    targets = next(c for c in verdict["checks"] if c["name"] == "targets observed")
    assert targets["detail"].startswith("1 ")
