"""Long blocks split where the Observing File allows it (format 1.2 ``sequence.split``): parts around a window, parts counted."""

import sqlite3

import pytest

from rosace_scheduler.scheduler import Scheduler
from rosace_scheduler.store import Store

from tests.rosace_scheduler.test_lookahead import NIGHT, _file, _submit, _u

NOVA_START, NOVA_END = "2026-11-21T02:00:00Z", "2026-11-21T03:00:00Z"


def _split_night(s, *, split=True):
    """The issue's case: a priority-1 6-h block asked at 21:00 and a priority-10 nova window 02:00-03:00."""
    block = _file("long-block", 30.0, 80.0, 1, count=70)  # 70 x (300 s + readout): about 6 h
    if split:
        block["rosace"] = 1.2
        block["sequence"]["split"] = {"allowed": True, "min_minutes": 30}
    _submit(s, block)
    _submit(s, _file("nova", 200.0, 80.0, 10, windows=[{"start": NOVA_START, "end": NOVA_END}]))


@pytest.fixture
def sched(config, tmp_path):
    s = Scheduler(config, database=tmp_path / "sched.sqlite", queue_folder=tmp_path / "none")
    yield s
    s.close()


def test_a_splittable_long_block_runs_in_parts_around_the_nova_window(sched):
    _split_night(sched)
    answer = sched.next("2026-11-20T21:00:00Z")
    obs = answer["observation"]
    assert obs is not None and obs["file_id"] == "long-block", answer["reason"]
    m = obs["science_frames"]
    assert 6 <= m < 70, "a part of at least 30 min of frames, not the whole block"
    assert _u(NOVA_START) - 3600 < _u(obs["end"]) < _u(NOVA_END), "the longest part that leaves the nova its window"
    assert obs["part"]["number"] == 1 and obs["part"]["frames_done"] == 0 and obs["part"]["frames_asked"] == 70
    assert obs["part"]["text"].startswith("part 1 of ~") and "0/70 frames" in obs["part"]["text"]
    assert "split" in answer["reason"]
    assert obs["duration"] == pytest.approx(obs["slew"] + sched.files["long-block"].request.part_duration(m))
    # the plan from 21:00 runs the block in parts around the nova, in its window
    plan = sched.plan(NIGHT, start="2026-11-20T21:00:00Z")
    sched_obs = [o for o in plan["observations"] if not o["running"]]
    assert [o["file_id"] for o in sched_obs] == ["nova", "long-block"], "part 1 is running: the nova, then the rest"
    nova, rest = sched_obs
    assert _u(obs["end"]) <= _u(nova["start"]) and _u(NOVA_START) <= _u(nova["start"]) and _u(nova["end"]) <= _u(NOVA_END)
    assert rest["science_frames"] == 70 - m and rest["part"]["number"] == 2 and rest["part"]["frames_done"] == m
    assert sched.validate_plan(plan) == []


def test_the_plan_before_dispatch_shows_every_part(sched):
    _split_night(sched)
    plan = sched.plan(NIGHT, start="2026-11-20T21:00:00Z")
    ids = [o["file_id"] for o in plan["observations"]]
    assert ids == ["long-block", "nova", "long-block"]
    first, _, second = plan["observations"]
    assert first["part"]["text"].startswith("part 1 of ~2") and second["part"]["text"].startswith("part 2 of ~2")
    assert first["science_frames"] + second["science_frames"] == 70
    assert sched.validate_plan(plan) == []
    explained = sched.explain("long-block", "2026-11-20T21:00:00Z")
    assert explained["planned"]["part"]["number"] == 1 and explained["split"]["frames_asked"] == 70


def test_without_split_the_same_file_keeps_the_hold_of_last_session(sched):
    _split_night(sched, split=False)
    answer = sched.next("2026-11-20T21:00:00Z")
    assert answer["observation"] is None and "holding the time for nova" in answer["reason"]
    ids = [o["file_id"] for o in sched.plan(NIGHT, start="2026-11-20T21:00:00Z")["observations"]]
    assert "long-block" not in ids and "nova" in ids


def test_parts_are_counted_across_a_completed_part_a_restart_and_the_last_part(sched, config, tmp_path):
    _split_night(sched)
    first = sched.next("2026-11-20T21:00:00Z")["observation"]
    m = first["science_frames"]
    sched.record_outcome(first["observation_id"], "long-block", "completed", started=first["start"], ended=first["end"])
    item = next(f for f in sched.queue(first["end"])["files"] if f["id"] == "long-block")
    assert item["split"]["frames_done"] == m and item["split"]["parts_done"] == 1 and item["visits"] == 0
    assert item["state"] != "completed", "a part is not the visit"
    # a restart reads the parts back from the database
    sched.close()
    again = Scheduler(config, database=tmp_path / "sched.sqlite", queue_folder=tmp_path / "none")
    try:
        assert again.explain("long-block", first["end"])["split"]["frames_done"] == m
        nova = again.next(first["end"])["observation"]
        assert nova["file_id"] == "nova"
        again.record_outcome(nova["observation_id"], "nova", "completed", started=nova["start"], ended=nova["end"])
        second = again.next(nova["end"])
        rest = second["observation"]
        assert rest["file_id"] == "long-block", second["reason"]
        assert rest["science_frames"] == 70 - m and rest["part"]["number"] == 2 and rest["part"]["frames_done"] == m
        assert f"{m}/70 frames" in rest["part"]["text"]
        assert rest["duration"] == pytest.approx(rest["slew"] + again.files["long-block"].request.part_duration(70 - m))
        # an interrupted part counts nothing: the same part comes back
        again.record_outcome(rest["observation_id"], "long-block", "interrupted", ended=rest["start"], message="unsafe: clouds")
        retry = again.next(rest["start"])["observation"]
        assert retry["file_id"] == "long-block" and retry["science_frames"] == 70 - m
        again.record_outcome(retry["observation_id"], "long-block", "completed", started=retry["start"], ended=retry["end"])
        done = again.explain("long-block", retry["end"])
        assert done["state"] == "completed" and done["visits"] == 1 and done["split"]["frames_done"] == 0
    finally:
        again.close()


def test_a_database_of_an_older_rosace_gets_the_part_columns(tmp_path):
    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as conn:  # the observations table as the first release wrote it
        conn.execute("CREATE TABLE observations (id VARCHAR(120) PRIMARY KEY, file_id VARCHAR(80) NOT NULL, target VARCHAR(80), dispatched FLOAT,"
                     " planned_start FLOAT, planned_end FLOAT, outcome VARCHAR(16), started FLOAT, ended FLOAT, reported FLOAT, frames TEXT, message TEXT)")
        conn.execute("INSERT INTO observations (id, file_id, dispatched, outcome) VALUES ('o1', 'f', 1.0, 'completed')")
    store = Store(db)
    try:
        (row,) = store.observations()
        assert row["outcome"] == "completed" and row["science_frames"] is None and row["science_total"] is None
        store.add_observation(id="o2", file_id="f", dispatched=2.0, science_frames=3, science_total=9)
        assert store.get_observation("o2")["science_frames"] == 3
    finally:
        store.close()
