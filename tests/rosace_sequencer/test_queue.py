"""The sequencer's view of the scheduler's queue, over real HTTP to a real scheduler module."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

from rosace_core.clock import Clock, get_clock, set_clock
from rosace_core.config import config_from_dict
from rosace_core.rest import BackgroundServer
from rosace_scheduler.api import create_app
from rosace_scheduler.client import SchedulerClient
from rosace_scheduler.scheduler import Scheduler
from rosace_sequencer.queue import SchedulerQueue


def test_a_suggested_reference_star_does_not_make_a_science_file_a_reference(tmp_path, examples_dir):
    """`next` names a reference star for a file with `reference_star: auto`; the science
    observation itself must not be marked as a reference (ROSREF = F on its frames)."""
    folder = tmp_path / "queue"
    folder.mkdir()
    shutil.copy(examples_dir / "be_zetatau_halpha_alpy.yaml", folder)
    config = config_from_dict({"data": {"root": str(tmp_path / "data")}, "scheduler": {"watch_interval": 0}})
    previous = get_clock()
    set_clock(Clock.simulated(datetime(2026, 11, 20, 21, 0, tzinfo=timezone.utc), rate=1.0))
    sched = Scheduler(config, queue_folder=folder)
    sched.prepare()  # tonight's table ready, as the served scheduler's watcher makes it: built by `next`, it took over the client's timeout on a loaded machine
    try:
        with BackgroundServer(create_app(config, token="t", scheduler_instance=sched, watch=False)) as srv:
            planned = SchedulerQueue(SchedulerClient(srv.url, token="t")).next(pointing={"ra": 80.0, "dec": 20.0})
    finally:
        sched.close()
        set_clock(previous)
    assert planned.file.id == "be-zetatau-alpy"
    assert planned.info.get("reference"), "the scheduler suggests a reference star for this file"
    assert planned.reference is False


def test_a_part_of_a_split_file_runs_the_frames_the_scheduler_asks(tmp_path):
    """The scheduler hands out a part (``science_frames``): the sequencer runs that many science frames, calibrations as written."""
    import json

    from rosace_sequencer.queue import run_frames
    from tests.rosace_scheduler.test_lookahead import _file

    config = config_from_dict({"data": {"root": str(tmp_path / "data")}, "scheduler": {"watch_interval": 0}})
    previous = get_clock()
    set_clock(Clock.simulated(datetime(2026, 11, 20, 21, 0, tzinfo=timezone.utc), rate=1.0))
    sched = Scheduler(config, database=":memory:", queue_folder=tmp_path / "none")
    block = _file("long-block", 30.0, 80.0, 1, count=70)
    block["rosace"], block["sequence"]["split"] = 1.2, {"min_minutes": 30}
    sched.submit(json.dumps(block), "json")
    sched.submit(json.dumps(_file("nova", 200.0, 80.0, 10, windows=[{"start": "2026-11-21T02:00:00Z", "end": "2026-11-21T03:00:00Z"}])), "json")
    try:
        with BackgroundServer(create_app(config, token="t", scheduler_instance=sched, watch=False)) as srv:
            planned = SchedulerQueue(SchedulerClient(srv.url, token="t")).next()
    finally:
        sched.close()
        set_clock(previous)
    asked = planned.info["science_frames"]
    assert planned.file.id == "long-block" and 0 < asked < 70
    assert planned.file.sequence.science.count == asked and planned.info["part"]["number"] == 1
    assert planned.file.sequence.arcs.when == "bracket", "each part is calibrated as the file says"
    # no number (an older scheduler), or nonsense: the whole file, as before
    whole = planned.file.model_copy(update={"sequence": planned.file.sequence.model_copy(update={"science": planned.file.sequence.science.model_copy(update={"count": 70})})})
    for frames in (None, 70, 0, 500, "3", True):
        assert run_frames(whole, frames).sequence.science.count == 70
