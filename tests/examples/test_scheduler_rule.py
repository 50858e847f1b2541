"""examples/scheduler_rule: the meridian rule, applied through Observing File windows, is obeyed
by a real scheduler server: every planned observation starts and ends within the hour-angle limit."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import EarthLocation
from astropy.time import Time

from rosace_core.config import config_from_dict
from rosace_core.observing_file import dump_observing_file, load_observing_file
from rosace_core.rest import BackgroundServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "scheduler_rule"
LONGITUDE = 6.92
NIGHT = "2026-12-01"
MAX_HA = 1.0


@pytest.fixture
def meridian_rule(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import meridian_rule

    return meridian_rule


@pytest.fixture
def scheduler(tmp_path):
    """A scheduler server with its own queue and database, and a client holding its token."""
    from rosace_scheduler.api import create_app
    from rosace_scheduler.client import SchedulerClient

    config = config_from_dict({"site": {"longitude": LONGITUDE, "latitude": 43.75}, "data": {"root": str(tmp_path / "data")},
                               "scheduler": {"watch_interval": 0}})
    with BackgroundServer(create_app(config, token="sched")) as server:
        yield SchedulerClient(server.url, token="sched")


def apparent_hour_angle(ra_deg: float, when: str) -> float:
    """Hour angle in hours from astropy's apparent sidereal time (independent of the example)."""
    t = Time(datetime.fromisoformat(str(when).replace("Z", "+00:00")))
    lst = t.sidereal_time("apparent", longitude=EarthLocation.from_geodetic(LONGITUDE * u.deg, 43.75 * u.deg).lon)
    return float((lst.hour - ra_deg / 15.0 + 12.0) % 24.0 - 12.0)


def test_windows_follow_the_hour_angle(meridian_rule):
    start = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)
    windows = meridian_rule.meridian_windows(14.177, LONGITUDE, start, start.replace(day=3), MAX_HA)
    assert len(windows) == 2  # one transit per day
    for s, e in windows:
        assert (e - s).total_seconds() == pytest.approx(2 * MAX_HA * 3600 * 0.99727, abs=300)  # sidereal hours
        assert abs(apparent_hour_angle(14.177, s.isoformat())) <= MAX_HA + 0.01
        assert abs(apparent_hour_angle(14.177, e.isoformat())) <= MAX_HA + 0.01


def test_scheduler_obeys_the_rule(meridian_rule, scheduler, examples_dir):
    original = load_observing_file(examples_dir / "be_gamcas_halpha_alpy.yaml")
    ra = float(original.target.ra)

    # Without the rule the scheduler takes gamma Cas as soon as the night starts, far east of the meridian.
    scheduler.submit(dump_observing_file(original), "yaml", "gamcas.yaml")
    before = [o for o in scheduler.plan(NIGHT)["observations"] if o["file_id"] == original.id]
    assert before and apparent_hour_angle(ra, before[0]["start"]) < -MAX_HA
    scheduler.remove(original.id)

    ruled = meridian_rule.apply_meridian_rule(original, LONGITUDE, max_hour_angle=MAX_HA,
                                              start=datetime(2026, 11, 30, 12, tzinfo=timezone.utc), days=4)
    assert ruled.to_dict()["x-meridian-rule"]["max_hour_angle"] == MAX_HA
    answer = scheduler.submit(dump_observing_file(ruled), "yaml", "gamcas.yaml")
    assert answer["valid"] is True
    after = [o for o in scheduler.plan(NIGHT)["observations"] if o["file_id"] == original.id]
    assert after, "the ruled file should still be observed tonight"
    for obs in after:
        assert abs(apparent_hour_angle(ra, obs["start"])) <= MAX_HA + 0.01
        assert abs(apparent_hour_angle(ra, obs["end"])) <= MAX_HA + 0.01

    # Outside the written days the file is not observable: the rule has to be applied again.
    assert not [o for o in scheduler.plan("2026-12-10")["observations"] if o["file_id"] == original.id]


def test_command_line_prints_the_ruled_file(meridian_rule, examples_dir, capsys):
    assert meridian_rule.main([str(examples_dir / "be_gamcas_halpha_alpy.yaml"), "--max-hour-angle", "2", "--days", "3"]) == 0
    text = capsys.readouterr().out
    assert "x-meridian-rule" in text and text.count("start:") >= 3
