"""Dispatch with look-ahead, the plan knows what is running, cadences per night, reasons for the time asked."""

import json
from datetime import datetime

import pytest

from rosace_core.observing_file import ObservingFileError
from rosace_scheduler.scheduler import Scheduler

NIGHT = "2026-11-20"


def _file(fid, ra, dec, priority, *, count=2, exposure=300, **constraints):
    return {
        "rosace": 1.1, "id": fid, "observer": {"name": "Test"},
        "target": {"name": fid, "ra_deg": float(ra), "dec": float(dec)},
        "instrument": {"spectrograph": "alpy600"},
        "sequence": {"science": {"count": count, "exposure": exposure}, "arcs": {"exposure": 10, "when": "bracket"}, "reference_star": {"mode": "none"}},
        "constraints": constraints, "priority": int(priority),
    }


def _submit(s, doc):
    return s.submit(json.dumps(doc), "json", f"{doc['id']}.json")


def _u(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def sched(config, tmp_path):
    s = Scheduler(config, database=":memory:", queue_folder=tmp_path / "none")
    yield s
    s.close()


def _nova_night(s):
    # dec 80 is circumpolar above 33 deg at 43.75 N: only the block lengths and the window matter
    _submit(s, _file("long-block", 30.0, 80.0, 1, count=70))  # 6 h
    _submit(s, _file("nova", 200.0, 80.0, 10, windows=[{"start": "2026-11-21T02:00:00Z", "end": "2026-11-21T03:00:00Z"}]))


def test_a_long_low_priority_block_does_not_eat_a_nova_window(sched):
    _nova_night(sched)
    answer = sched.next("2026-11-20T21:00:00Z")
    assert answer["observation"] is None, "the 6-h block would run past the nova's only window (02:00-03:00)"
    assert "holding the time for nova" in answer["reason"] and "long-block" in answer["reason"]
    assert _u(answer["retry_at"]) > _u("2026-11-20T21:00:00Z")
    plan = sched.plan(NIGHT, start="2026-11-20T21:00:00Z")
    ids = [o["file_id"] for o in plan["observations"]]
    assert "nova" in ids and "long-block" not in ids
    nova = next(o for o in plan["observations"] if o["file_id"] == "nova")
    assert _u("2026-11-21T02:00:00Z") <= _u(nova["start"]) and _u(nova["end"]) <= _u("2026-11-21T03:00:00Z")
    assert sched.validate_plan(plan) == []
    # at the nova's time, the nova is dispatched
    assert sched.next(nova["start"])["observation"]["file_id"] == "nova"


def test_a_long_block_still_runs_when_it_leaves_the_window_free(sched):
    _nova_night(sched)
    plan = sched.plan(NIGHT, start=f"{NIGHT}T12:00:00Z")  # from dusk: 6 h end well before 02:00
    ids = [o["file_id"] for o in plan["observations"]]
    assert ids == ["long-block", "nova"]
    assert sched.validate_plan(plan) == []


def test_a_long_block_does_not_take_a_binarys_only_phase_window(sched):
    start = _u("2026-11-20T23:00:00Z")
    t0 = start / 86400.0 + 2440587.5  # phase 0 at 23:00 UTC, period 10 d: phases 0-0.00625 are 23:00-00:30
    _submit(sched, _file("block", 30.0, 80.0, 4, count=58))  # about 5 h
    _submit(sched, _file("binary", 200.0, 80.0, 7, phase={"t0": t0, "period": 10.0, "phases": [[0.0, 0.00625]]}))
    first = sched.next("2026-11-20T20:00:00Z")
    assert first["observation"] is None and "holding the time for binary" in first["reason"]
    plan = sched.plan(NIGHT, start="2026-11-20T20:00:00Z")
    ids = [o["file_id"] for o in plan["observations"]]
    assert ids == ["binary", "block"], "the binary in its phase window, the block after it"
    assert sched.validate_plan(plan) == []


def test_the_plan_and_explain_know_what_is_running(sched):
    _submit(sched, _file("running-block", 30.0, 80.0, 5, count=23))  # about 2 h
    _submit(sched, _file("other", 200.0, 80.0, 3))
    obs = sched.next("2026-11-20T19:00:00Z")["observation"]
    assert obs["file_id"] == "running-block"
    plan = sched.plan(NIGHT, start="2026-11-20T19:30:00Z")
    first = plan["observations"][0]
    assert first["file_id"] == "running-block" and first["running"] is True and first["end"] == obs["end"]
    later = [o for o in plan["observations"][1:]]
    assert later and all(_u(o["start"]) >= _u(obs["end"]) for o in later)
    e = sched.explain("other", "2026-11-20T19:30:00Z")
    assert e["scheduled"] and _u(e["planned"]["start"]) >= _u(obs["end"])
    assert sched.explain("running-block", "2026-11-20T19:30:00Z")["state"] == "in_progress"
    # once its outcome is in, it no longer holds the plan
    sched.record_outcome(obs["observation_id"], "running-block", "interrupted")
    plan = sched.plan(NIGHT, start="2026-11-20T19:30:00Z")
    assert not any(o["running"] for o in plan["observations"])


def test_a_nightly_cadence_is_dispatched_once_a_night(sched):
    _submit(sched, _file("nightly", 30.0, 80.0, 5, cadence={"period": 1, "tolerance": 0.9}))
    obs = sched.next("2026-11-20T19:00:00Z")["observation"]
    assert obs["file_id"] == "nightly"
    sched.record_outcome(obs["observation_id"], "nightly", "completed", obs["start"], obs["end"])
    for later in ("2026-11-20T22:00:00Z", "2026-11-21T03:00:00Z"):  # 0.1 d after the visit it would be "due" by time
        assert sched.next(later)["observation"] is None
        state = {f["id"]: f for f in sched.queue(later)["files"]}["nightly"]
        assert state["state"] == "done_tonight", state
    assert sched.plan(NIGHT, start="2026-11-20T22:00:00Z")["observations"] == []
    again = sched.next("2026-11-21T19:00:00Z")["observation"]
    assert again is not None and again["file_id"] == "nightly"


def test_a_tolerance_not_below_the_period_is_refused(sched):
    with pytest.raises(ObservingFileError) as info:
        _submit(sched, _file("bad-cadence", 30.0, 80.0, 5, cadence={"period": 1, "tolerance": 1.5}))
    assert any(p.path == "constraints.cadence" and "below the period" in p.message for p in info.value.problems)


def test_a_bare_ra_is_refused_naming_the_field(sched):
    doc = _file("bare-ra", 30.0, 80.0, 5)
    doc["target"] = {"name": "x", "ra": 5.588, "dec": 20.0}
    with pytest.raises(ObservingFileError) as info:
        _submit(sched, doc)
    assert [p.path for p in info.value.problems] == ["target.ra"] and "ra_deg: 5.588" in info.value.problems[0].message


def test_reasons_are_for_the_time_asked(sched):
    # observable 18:00-02:00 by its window; needs about 2 h
    _submit(sched, _file("evening", 30.0, 80.0, 5, count=22, windows=[{"start": "2026-11-20T18:00:00Z", "end": "2026-11-21T02:00:00Z"}]))
    q = {f["id"]: f for f in sched.queue("2026-11-21T01:00:00Z")["files"]}["evening"]
    assert q["state"] == "not_tonight"
    reason = q["reason"]
    assert "from 2026-11-21T01:00:00Z to the end of the night" in reason, reason
    at_most = int(reason.split("at most ")[1].split(" min")[0])
    assert at_most <= 61, reason  # not the whole night's 480 min
    assert sched.explain("evening", "2026-11-21T01:00:00Z")["reason"] == reason
    # a constraint that no longer passes after the time asked is named as such
    _submit(sched, _file("window-again", 30.0, 80.0, 5, windows=[{"start": "2026-11-20T18:00:00Z", "end": "2026-11-21T00:00:00Z"},
                                                                {"start": "2026-11-21T18:00:00Z", "end": "2026-11-22T00:00:00Z"}]))
    late = {f["id"]: f for f in sched.queue("2026-11-21T03:00:00Z")["files"]}["window-again"]["reason"]
    assert late == "time window: none of its windows is open from 2026-11-21T03:00:00Z to the end of the night", late
    # asked in the evening, the same file is observable
    assert {f["id"]: f for f in sched.queue("2026-11-20T19:00:00Z")["files"]}["evening"]["state"] == "observable"


def test_tables_are_prepared_ahead_and_the_end_of_night_builds_nothing(sched):
    from datetime import date, timedelta

    for i in range(20):
        _submit(sched, _file(f"f{i:02d}", 18.0 * i, 80.0 - i, 5))
    night = date(2026, 11, 20)
    sched.prepare(night)
    prepared = sched._cache[night]
    assert prepared.arrays is not None
    assert sched.next("2026-11-20T19:00:00Z")["observation"] is not None
    assert sched._cache[night] is prepared, "the first next of the night used the prepared table"
    # a queue change is folded in incrementally (same rows reused), not rebuilt from scratch
    _submit(sched, _file("late-comer", 100.0, 70.0, 5))
    assert "late-comer" in sched.table(night).table.index
    # the end of the night: "nothing fits", with a retry time, and no table built for the next night
    answer = sched.next("2026-11-21T07:30:00Z")
    assert answer["observation"] is None and "the night is over" in answer["reason"]
    assert night + timedelta(days=1) not in sched._cache
    assert _u("2026-11-21T15:00:00Z") < _u(answer["retry_at"]) < _u("2026-11-21T19:00:00Z")
