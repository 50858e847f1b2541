"""Limits: Observing File size and queue size (413/422 naming the limit), and the dome's closing sun altitude."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
import yaml

from rosace_core.config import config_from_dict
from rosace_core.http import ApiError
from rosace_core.rest import BackgroundServer
from rosace_scheduler.api import create_app
from rosace_scheduler.client import SchedulerClient
from rosace_scheduler.scheduler import Scheduler

EVENING = "2026-11-20T19:00:00Z"


def polar_file(file_id: str, sun: float = -3.0, title: str | None = None) -> str:
    """A file whose target never sets (dec +85 at 43.75 N): only the sun limits it."""
    data = {"rosace": 1, "id": file_id, "observer": {"name": "Test"}, "target": {"name": f"star {file_id}", "ra_deg": 30.0, "dec": 85.0},
            "instrument": {"spectrograph": "alpy600"}, "sequence": {"science": {"count": 2, "exposure": 300}},
            "constraints": {"sun_max_altitude": sun, "max_airmass": 3.0}}
    if title:
        data["title"] = title
    return yaml.safe_dump(data)


@pytest.fixture
def served(tmp_path):
    cfg = config_from_dict({"data": {"root": str(tmp_path / "data")},
                            "scheduler": {"watch_interval": 0, "max_file_bytes": 4096, "max_queue_files": 3, "learn_dome_limit": False}})
    sched = Scheduler(cfg, database=":memory:", queue_folder=tmp_path / "queue")
    with BackgroundServer(create_app(cfg, token="secret", scheduler_instance=sched, watch=False)) as srv:
        client = SchedulerClient(srv.url, token="secret")
        yield srv, sched, client
        client.session.close()
    sched.close()


def test_a_file_over_the_size_limit_is_413_naming_the_limit(served):
    srv, sched, client = served
    big = polar_file("big") + "# padding\n" * 500  # valid YAML, 5 kB
    with pytest.raises(ApiError) as err:
        client.submit(big, "yaml", "big.yaml")
    assert err.value.status == 413
    doc = err.value.problem
    assert doc["title"] == "Observing File too large" and doc["limit"] == 4096
    assert "at most 4,096 bytes" in doc["detail"] and "max_file_bytes" in doc["detail"]
    assert client.validate(big, "yaml", "big.yaml")["valid"] is False
    # a body far over the limit is refused from its Content-Length, before it is read or parsed
    r = requests.post(f"{srv.url}/api/v1/scheduler/files", data=json.dumps({"content": "x" * 10_000_000}),
                      headers={"Authorization": "Bearer secret", "Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 413 and r.headers["Content-Type"].startswith("application/problem+json")
    assert "max_file_bytes" in r.json()["detail"] and r.json()["limit"] == 4096
    assert sched.files == {}


def test_a_full_queue_refuses_a_new_file_with_422_but_takes_a_new_version(served):
    _, _, client = served
    for i in range(3):
        client.submit(polar_file(f"f{i}"), "yaml", f"f{i}.yaml")
    with pytest.raises(ApiError) as err:
        client.submit(polar_file("f3"), "yaml", "f3.yaml")
    assert err.value.status == 422 and err.value.problem["title"] == "Queue full" and err.value.problem["limit"] == 3
    assert "max_queue_files" in err.value.problem["detail"] and "'f3'" in err.value.problem["detail"]
    assert client.submit(polar_file("f1", sun=-6.0), "yaml", "f1.yaml")["valid"] is True  # same id: replaces
    client.remove("f0")
    assert client.submit(polar_file("f3"), "yaml", "f3.yaml")["valid"] is True


def test_the_queue_folder_rejects_a_huge_file_without_reading_it_and_listings_stay_small(tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    (folder / "ok.yaml").write_text(polar_file("ok", title="T" * 2000), encoding="utf-8")
    with open(folder / "huge.yaml", "w", encoding="utf-8") as fh:
        fh.write(polar_file("huge"))
        fh.write("# " + "x" * 10_000_000 + "\n")
    cfg = config_from_dict({"data": {"root": str(tmp_path / "data")}, "scheduler": {"watch_interval": 0, "learn_dome_limit": False}})
    sched = Scheduler(cfg, database=":memory:", queue_folder=folder)
    q = sched.queue(EVENING)
    assert [f["id"] for f in q["files"]] == ["ok"]
    (rejected,) = q["rejected"]
    assert rejected["filename"] == "huge.yaml" and "at most 262,144 bytes" in rejected["errors"][0]["message"]
    assert len(json.dumps(q)) < 5000  # the 2000-character title is cut in listings
    assert len(sched.get_file("ok").of.title) == 2000
    sched.close()


# --------------------------------------------------------------------------- the dome's closing limit


def _dawn_start(sched: Scheduler, file_id: str, end_sun: float) -> datetime:
    """A start such that the file's observation ends with the sun at about ``end_sun`` (morning of 2026-11-21)."""
    from astropy import units as u
    from astropy.coordinates import AltAz, EarthLocation, get_body
    from astropy.time import Time

    duration = timedelta(seconds=sched.files[file_id].request.duration + sched.options.first_slew)
    site = sched.site
    loc = EarthLocation(lat=site.latitude * u.deg, lon=site.longitude * u.deg, height=site.elevation * u.m)
    ends = [datetime(2026, 11, 21, 4, 0, tzinfo=timezone.utc) + duration + timedelta(minutes=m) for m in range(240)]
    t = Time(ends)
    alt = get_body("sun", t, loc).transform_to(AltAz(obstime=t, location=loc)).alt.deg
    first = int(next(i for i, a in enumerate(alt) if a >= end_sun))
    return ends[first] - duration


def _dispatched(sched: Scheduler, t: datetime) -> str | None:
    obs = sched.next(t)["observation"]
    return obs["file_id"] if obs else None


def test_the_dome_limit_from_the_config_wins_over_a_laxer_file(tmp_path):
    cfg = config_from_dict({"data": {"root": str(tmp_path / "data")}, "dome": {"sun_max_altitude": -6.0},
                            "scheduler": {"watch_interval": 0}})
    sched = Scheduler(cfg, database=":memory:", queue_folder=tmp_path / "queue")
    sched.submit(polar_file("dawn", sun=-3.0), "yaml", "dawn.yaml")
    assert sched.dome_limit.source == "[dome] sun_max_altitude" and sched.files["dawn"].request.sun_max_altitude == -6.0
    late = _dawn_start(sched, "dawn", -4.5)  # would end with the sun at -4.5: allowed by the file, not by the dome
    assert _dispatched(sched, late) is None
    assert _dispatched(sched, late - timedelta(minutes=40)) == "dawn"
    sched.close()
    lax = config_from_dict({"data": {"root": str(tmp_path / "data2")}, "scheduler": {"watch_interval": 0, "learn_dome_limit": False}})
    sched = Scheduler(lax, database=":memory:", queue_folder=tmp_path / "queue2")
    sched.submit(polar_file("dawn", sun=-3.0), "yaml", "dawn.yaml")
    assert _dispatched(sched, late) == "dawn"  # the test's start is one the file alone allows
    sched.close()


def test_the_scheduler_learns_the_dome_limit_from_its_rest_status(tmp_path):
    from rosace_dome.api import create_app as create_dome_app
    from rosace_sim import devices_config
    from rosace_sim.testing import SimObservatory

    scenario = {"name": "limits", "clock": {"start": "2026-11-20T22:00:00Z", "rate": 10.0},
                "shelter": {"type": "rolloff", "shutter_time": 20},
                "weather": {"update_interval": 30, "timeline": [{"at": "+0s", "cloud_cover": 0, "rain_rate": 0, "wind_speed": 3, "humidity": 55}]}}
    with SimObservatory(scenario) as sim:
        dome_cfg = config_from_dict({"devices": devices_config(sim.url, retries=1), "data": {"root": str(tmp_path / "dome")},
                                     "dome": {"sun_max_altitude": -7.5, "poll_period": 1.0, "min_poll_wall": 0.05}})
        dome_app = create_dome_app(dome_cfg, token="d")
        with BackgroundServer(dome_app) as dome:
            deadline = time.monotonic() + 30
            while not any(s["name"] == "sun_altitude" for s in requests.get(f"{dome.url}/api/v1/dome/status", timeout=30).json()["sensors"]):
                assert time.monotonic() < deadline, "the dome never polled"
                time.sleep(0.1)
            cfg = config_from_dict({"data": {"root": str(tmp_path / "data")}, "modules": {"dome": {"url": dome.url}},
                                    "scheduler": {"watch_interval": 0}})
            sched = Scheduler(cfg, database=":memory:", queue_folder=tmp_path / "queue")
            sched.submit(polar_file("dawn", sun=-3.0), "yaml", "dawn.yaml")
            late = _dawn_start(sched, "dawn", -5.0)
            assert _dispatched(sched, late) is None
            assert sched.dome_limit.source.startswith("dome status") and sched.files["dawn"].request.sun_max_altitude == -7.5
            sched.close()
        dome_app.extensions["rosace_dome"].stop()
