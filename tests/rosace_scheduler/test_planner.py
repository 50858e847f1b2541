"""Night plans re-checked by the independent validator (astropy at 10 s), and the history honoured."""

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from rosace_scheduler.scheduler import Scheduler
from rosace_scheduler.validation import check_from_file, validate

NIGHT = "2026-11-20"
EVENING = "2026-11-20T19:00:00Z"


def _file(i, ra, dec, priority, *, count=2, exposure=300, spectrograph="alpy600", **constraints):
    return {
        "rosace": 1, "id": f"req-{i:03d}", "observer": {"name": "Test"},
        "target": {"name": f"Star {i}", "ra_deg": float(ra), "dec": float(dec)},
        "instrument": {"spectrograph": spectrograph},
        "sequence": {"science": {"count": count, "exposure": exposure}, "arcs": {"exposure": 10, "when": "bracket"}, "reference_star": {"mode": "none"}},
        "constraints": constraints, "priority": int(priority),
    }


def _submit(s, doc):
    return s.submit(json.dumps(doc), "json", f"{doc['id']}.json")


def _validate_plan(s, plan):
    checks = []
    for o in plan["observations"]:
        qf = s.files[o["file_id"]]
        checks.append(check_from_file(qf.of, s.site, o["start"], o["end"], expected_duration=qf.request.duration))
    return validate(checks, s.site, step=10.0)


@pytest.fixture
def horizon_config(tmp_path):
    from rosace_core.config import config_from_dict

    return config_from_dict({
        "data": {"root": str(tmp_path / "data")},
        "site": {"horizon": [[0, 15], [60, 32], [120, 20], [200, 38], [260, 18], [330, 25]], "min_altitude": 15},
        "scheduler": {"watch_interval": 0},
    })


def test_random_plan_has_zero_violations(horizon_config, tmp_path):
    s = Scheduler(horizon_config, database=":memory:", queue_folder=tmp_path / "none")
    rng = np.random.default_rng(7)
    night_start = datetime(2026, 11, 20, 17, tzinfo=timezone.utc).timestamp()
    for i in range(60):
        c = {"min_altitude": float(rng.choice([20, 30, 40])), "max_airmass": float(rng.choice([1.5, 2.0, 3.0])),
             "moon_min_separation": float(rng.choice([10, 30, 60])), "sun_max_altitude": float(rng.choice([-6, -12, -18]))}
        if i % 5 == 0:
            ws = night_start + rng.uniform(0, 8) * 3600
            c["windows"] = [{"start": datetime.fromtimestamp(ws, timezone.utc).isoformat(), "end": datetime.fromtimestamp(ws + 3 * 3600, timezone.utc).isoformat()}]
        if i % 7 == 0:
            c["phase"] = {"t0": 2460000.3, "period": float(rng.uniform(0.3, 3)), "phases": [[0.1, 0.45]]}
        if i % 11 == 0:
            c["moon_max_illumination"] = 0.3
        _submit(s, _file(i, rng.uniform(0, 360), np.degrees(np.arcsin(rng.uniform(-0.3, 1))), rng.integers(1, 11),
                         count=int(rng.integers(1, 5)), exposure=float(rng.uniform(60, 600)), **c))
    plan = s.plan(NIGHT, start=f"{NIGHT}T12:00:00Z")
    assert len(plan["observations"]) >= 15
    violations = _validate_plan(s, plan)
    assert violations == []
    # each observation lasts its whole duration (slew included on top)
    for o in plan["observations"]:
        assert o["duration"] >= s.files[o["file_id"]].request.duration
    # the windowed and phased ones that were planned are really inside their windows (validator above), and
    # the planner did use some of them
    assert any(s.files[o["file_id"]].of.constraints.windows for o in plan["observations"])


def test_validator_catches_a_violation(config, tmp_path):
    """The validator is not a rubber stamp: an observation placed in daylight is reported."""
    s = Scheduler(config, database=":memory:", queue_folder=tmp_path / "none")
    of = _submit(s, _file(1, 10.0, 60.0, 5))
    bad = check_from_file(of, s.site, "2026-11-20T12:00:00Z", "2026-11-20T12:20:00Z", expected_duration=1500)
    found = {v["constraint"] for v in validate([bad], s.site)}
    assert {"sun", "duration"} <= found


def test_example_files_plan_is_valid(config, queue_folder):
    s = Scheduler(config, database=":memory:", queue_folder=queue_folder)
    assert not s.rejected
    plan = s.plan(NIGHT, start=f"{NIGHT}T12:00:00Z")
    planned = [o["file_id"] for o in plan["observations"]]
    assert "too-nova-cas-2026" in planned and "be-gamcas-alpy" in planned
    assert "sb-betlyr-lhires" not in planned  # LHIRES is not mounted
    left = {u["file_id"]: u for u in plan["unscheduled"]}
    assert left["sb-betlyr-lhires"]["state"] == "wrong_instrument"
    assert _validate_plan(s, plan) == []
    # the nova (priority 10) goes first, as soon as its window and the twilight allow
    assert planned[0] == "too-nova-cas-2026"


def test_completed_observation_is_not_repeated_tonight(config, tmp_path):
    s = Scheduler(config, database=":memory:", queue_folder=tmp_path / "none")
    _submit(s, _file(1, 10.0, 60.0, 9))
    _submit(s, _file(2, 30.0, 50.0, 3))
    first = s.next(EVENING)
    obs = first["observation"]
    assert obs["file_id"] == "req-001"
    assert obs["file"]["target"]["name"] == "Star 1" and obs["file"]["rosace"] == 1
    s.record_outcome(obs["observation_id"], obs["file_id"], "completed", obs["start"], obs["end"])
    later = datetime.fromisoformat(obs["end"].replace("Z", "+00:00")) + timedelta(minutes=1)
    second = s.next(later)
    assert second["observation"]["file_id"] == "req-002"
    states = {f["id"]: f["state"] for f in s.queue(later)["files"]}
    assert states["req-001"] == "completed"
    plan = s.plan(NIGHT, start=later)
    assert "req-001" not in [o["file_id"] for o in plan["observations"]]


def test_cadence_due_not_yet_due_and_overdue(config, tmp_path):
    s = Scheduler(config, database=":memory:", queue_folder=tmp_path / "none")
    _submit(s, _file(1, 10.0, 60.0, 5, cadence={"period": 3, "tolerance": 1}))
    obs = s.next(EVENING)["observation"]
    s.record_outcome(obs["observation_id"], "req-001", "completed", obs["start"], obs["end"])
    done = datetime.fromisoformat(obs["end"].replace("Z", "+00:00"))
    # one night later: not yet due (due from the night 3 - 1 = 2 nights later, counted in nights)
    q = {f["id"]: f for f in s.queue(done + timedelta(days=1))["files"]}
    assert q["req-001"]["state"] == "not_due"
    assert f"due the night of {(done + timedelta(days=2)).date().isoformat()}" in q["req-001"]["reason"]
    assert s.next(done + timedelta(days=1))["observation"] is None
    # two nights and a bit later: due again, observable
    again = s.next(done + timedelta(days=2, minutes=5))["observation"]
    assert again is not None and again["file_id"] == "req-001" and again["rules"]["cadence"] == 0
    s.record_outcome(again["observation_id"], "req-001", "interrupted")
    # five days after the last visit: overdue, which raises its score
    late = s.next(done + timedelta(days=5))["observation"]
    assert late["file_id"] == "req-001" and late["rules"]["cadence"] > 0.5


def test_short_cadence_repeats_within_the_night(config, tmp_path):
    s = Scheduler(config, database=":memory:", queue_folder=tmp_path / "none")
    _submit(s, _file(1, 10.0, 60.0, 5, count=1, exposure=60, cadence={"period": 0.125, "tolerance": 0.02}))
    plan = s.plan(NIGHT, start=f"{NIGHT}T12:00:00Z")
    starts = [datetime.fromisoformat(o["start"].replace("Z", "+00:00")).timestamp() for o in plan["observations"]]
    assert len(starts) >= 3
    assert min(np.diff(starts)) >= (0.125 - 0.02) * 86400 - 1


def test_failed_retried_then_held_interrupted_requeued(config, tmp_path):
    s = Scheduler(config, database=":memory:", queue_folder=tmp_path / "none")
    _submit(s, _file(1, 10.0, 60.0, 5))
    t = datetime.fromisoformat(EVENING.replace("Z", "+00:00"))
    obs = s.next(t)["observation"]
    s.record_outcome(obs["observation_id"], "req-001", "interrupted")
    again = s.next(t)["observation"]
    assert again["file_id"] == "req-001" and again["observation_id"] != obs["observation_id"]
    ids = {again["observation_id"]}
    for n in range(s.options.max_retries + 1):
        s.record_outcome(again["observation_id"], "req-001", "failed", ended=t + timedelta(minutes=n))
        again = s.next(t + timedelta(minutes=n + 1))["observation"]
        if again is not None:
            assert again["observation_id"] not in ids
            ids.add(again["observation_id"])
    assert again is None
    assert {f["id"]: f["state"] for f in s.queue(t + timedelta(minutes=10))["files"]}["req-001"] == "held"


def test_dispatched_observation_is_not_handed_out_twice(config, tmp_path):
    s = Scheduler(config, database=":memory:", queue_folder=tmp_path / "none")
    _submit(s, _file(1, 10.0, 60.0, 5))
    assert s.next(EVENING)["observation"] is not None
    second = s.next(EVENING)
    assert second["observation"] is None and "in progress" in second["reason"]


def test_nothing_observable_gives_reason_and_retry_at(config, tmp_path):
    s = Scheduler(config, database=":memory:", queue_folder=tmp_path / "none")
    _submit(s, _file(1, 10.0, 60.0, 5, sun_max_altitude=-18))
    day = s.next("2026-11-20T13:00:00Z")
    assert day["observation"] is None
    assert "not started" in day["reason"]
    retry = datetime.fromisoformat(day["retry_at"].replace("Z", "+00:00"))
    assert datetime(2026, 11, 20, 17, 0, tzinfo=timezone.utc) < retry < datetime(2026, 11, 20, 19, 0, tzinfo=timezone.utc)
    # the retry time really works
    assert s.next(retry)["observation"] is not None
    unsafe = s.next(EVENING, conditions={"safe": False})
    assert unsafe["observation"] is None and unsafe["retry_at"]


def test_explain_names_the_constraint_and_when(config, tmp_path):
    s = Scheduler(config, database=":memory:", queue_folder=tmp_path / "none")
    _submit(s, _file(1, 10.0, -60.0, 5))  # never rises above 30 deg at 43.75 N
    future = "2026-12-10T00:00:00Z"
    _submit(s, _file(2, 10.0, 60.0, 5, windows=[{"start": future, "end": "2026-12-12T00:00:00Z"}]))
    e1 = s.explain("req-001", EVENING)
    assert e1["state"] == "not_tonight" and "altitude" in e1["reason"] and e1["next_observable"] is None
    assert not next(c for c in e1["constraints"] if c["name"] == "altitude")["passes_tonight"]
    e2 = s.explain("req-002", EVENING)
    assert e2["state"] == "not_tonight" and "time window" in e2["reason"]


def test_history_survives_a_restart(config, tmp_path):
    db = tmp_path / "sched.sqlite"
    s = Scheduler(config, database=db, queue_folder=tmp_path / "none")
    _submit(s, _file(1, 10.0, 60.0, 5))
    obs = s.next(EVENING)["observation"]
    s.record_outcome(obs["observation_id"], "req-001", "completed", obs["start"], obs["end"], frames=["a.fits"])
    s.close()
    s2 = Scheduler(config, database=db, queue_folder=tmp_path / "none")
    assert "req-001" in s2.files
    assert s2.history()[0]["outcome"] == "completed" and s2.history()[0]["frames"] == ["a.fits"]
    assert {f["id"]: f["state"] for f in s2.queue(EVENING)["files"]}["req-001"] == "completed"
    s2.close()
