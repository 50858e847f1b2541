"""Fault drills: a short night on the simulated observatory, five modules as processes, one fault each.

Each test runs about two hours of a December night at 180x (roughly a minute of
wall time) and checks how the observatory handled the fault.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from rosace_core.resources import resource_path
from rosace_demo import drills
from rosace_demo.night import DemoNight

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

START = datetime(2026, 12, 15, 17, 45, tzinfo=timezone.utc)
FILES = ("be_gamcas_halpha_alpy.yaml", "be_phiper_alpy.yaml", "be_zetatau_halpha_alpy.yaml", "be_28tau_alpy.yaml", "nova_too_window.yaml", "be_betcmi_alpy.yaml")


def short_night(tmp_path: Path, drill, hours: float = 2.5) -> DemoNight:
    scenario = yaml.safe_load(resource_path("scenarios", "demo_night.yaml").read_text(encoding="utf-8"))
    scenario["clock"]["start"] = START.isoformat()
    scenario["weather"]["timeline"] = [
        {"at": "+0s", "cloud_cover": 5, "rain_rate": 0, "wind_speed": 3, "humidity": 60, "temperature": 2, "sky_brightness": 0.001, "seeing": 2.5}
    ]
    folder = tmp_path / "drill run"
    folder.mkdir()
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
    night = DemoNight(
        folder / "run",
        scenario=path,
        rate=180.0,
        files=FILES,
        drills=[drill],
        end=START + timedelta(hours=hours),
        max_wall=hours * 3600 / 180 + 60,
        expectations={"min_completed": 1, "min_targets": 1, "min_clear_completion": 0.0, "roof_closed_at_end": False},
    )
    night.run()
    assert drill.done, f"the drill '{drill.name}' never fired; events: {night.events}"
    return night


def outcomes(night, file_id=None):
    return [h for h in night.summary["history"] if file_id is None or h.get("file_id") == file_id]


def fired_at(drill) -> datetime:
    return datetime.fromisoformat(drill.fired_at)


def snaps_after(night, when: datetime):
    return [s for s in night.snapshots if datetime.fromisoformat(s["time"]) >= when]


def test_weather_unsafe_during_exposure_closes_and_the_observation_is_completed_later(tmp_path):
    drill = drills.weather_unsafe_during_exposure(clear_after=1800)
    night = short_night(tmp_path, drill, hours=3.0)
    file_id = drill.data["file_id"]
    states = [(s.get("dome") or {}).get("shelter", {}).get("state") for s in snaps_after(night, fired_at(drill))]
    parked = [(s.get("dome") or {}).get("mount", {}).get("at_park") for s in snaps_after(night, fired_at(drill))]
    assert "closed" in states, "the roof did not close in the rain"
    assert True in parked, "the mount was not parked"
    assert "open" in states[states.index("closed"):], "the roof never re-opened after the rain"
    results = [h["outcome"] for h in sorted(outcomes(night, file_id), key=lambda h: h["dispatched"])]
    assert "interrupted" in results and results[-1] == "completed", results


def test_camera_disconnect_fails_the_observation_cleanly_and_the_night_goes_on(tmp_path):
    drill = drills.camera_disconnect(duration=900)
    night = short_night(tmp_path, drill)
    failed = [h for h in outcomes(night) if h["observation_id"] == drill.data["observation_id"]]
    assert failed and failed[0]["outcome"] == "failed", failed
    later = [h for h in outcomes(night) if h["outcome"] == "completed" and h["dispatched"] > failed[0]["dispatched"]]
    assert later, "no observation completed after the camera came back"


def test_sequencer_killed_during_exposure_resumes_without_lost_or_duplicated_frames(tmp_path):
    drill = drills.kill_process("sequencer", restart_after=10.0)
    night = short_night(tmp_path, drill)
    obs_id = drill.data["observation_id"]
    # The restart took longer than the roof lease (600 s of clock time = 3.3 s here): the roof closed meanwhile.
    states = [(s.get("dome") or {}).get("shelter", {}).get("state") for s in snaps_after(night, fired_at(drill))[:60]]
    assert "closed" in states or "closing" in states, states
    assert any(h["outcome"] == "completed" for h in outcomes(night)), "nothing completed after the restart"
    raw = sorted((night.folder / "data" / "raw").rglob("*.fits"))
    names = [p.name for p in raw]
    assert len(names) == len(set(names))
    assert not list((night.folder / "data" / "raw").rglob("*.part"))
    frames = [p for p in raw if obs_id.replace("_", "-") in p.name]
    assert frames, "the interrupted observation's frames are missing"
    steps = [p.name.split("_")[1:] for p in frames]
    assert len(steps) == len({tuple(s) for s in steps}), "a frame was taken twice"


def test_dome_killed_stops_exposing_and_the_dome_reconciles_on_restart(tmp_path):
    drill = drills.kill_process("dome", restart_after=5.0)
    night = short_night(tmp_path, drill)
    hit = [h for h in outcomes(night) if h["observation_id"] == drill.data["observation_id"]]
    assert hit and hit[0]["outcome"] in ("interrupted", "failed"), hit
    events = night.summary["dome_events"]
    texts = " ".join(str(e) for e in events)
    assert "reconcile" in texts
    assert night.procs.children["dome"].restarts == 1


def test_malformed_file_is_rejected_and_the_night_is_unaffected(tmp_path):
    drill = drills.malformed_file()
    night = short_night(tmp_path, drill)
    queue = night.verdict and night.summary  # the night ran to its end
    assert queue
    completed_after = [h for h in outcomes(night) if h["outcome"] == "completed" and h.get("ended", "") > drill.fired_at.replace("+00:00", "Z")]
    assert completed_after, "no observation completed after the bad file arrived"
    rejected = night.summary.get("queue", {}).get("rejected", [])
    assert any("broken_dropped" in r.get("filename", "") and r.get("errors") for r in rejected), rejected


def test_scheduler_unreachable_sequencer_parks_waits_and_retries(tmp_path):
    drill = drills.scheduler_unreachable(outage_wall=15.0)
    night = short_night(tmp_path, drill)
    during = snaps_after(night, fired_at(drill))[:25]
    assert any((s.get("dome") or {}).get("mount", {}).get("at_park") for s in during), "the mount was not parked while the scheduler was down"
    after = [h for h in outcomes(night) if h["outcome"] == "completed" and h["dispatched"] > drill.fired_at.replace("+00:00", "Z")]
    assert after, "observing did not resume once the scheduler was back"
    assert night.procs.children["scheduler"].restarts == 1
