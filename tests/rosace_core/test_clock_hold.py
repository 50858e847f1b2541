"""A simulated clock held at its start until the run's processes are all up."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from rosace_core.clock import Clock, release

START = datetime(2026, 12, 15, 16, 30, tzinfo=timezone.utc)


def test_a_held_clock_stands_still_until_released_then_runs_from_the_release(tmp_path):
    path = tmp_path / "run folder" / "clock.epoch"
    path.parent.mkdir()
    clock = Clock.held(START, 180.0, path)
    # another process builds the same clock from its ROSACE_CLOCK text
    other = Clock.parse(clock.spec())
    assert other.epoch_file == str(path) and other.rate == 180.0
    assert clock.now() == START and not clock.running
    time.sleep(0.06)
    assert clock.now() == START and other.now() == START
    epoch = release(path, wall_epoch=time.time() - 10.0)  # released 10 wall seconds ago
    time.sleep(0.06)  # the file is looked at every 50 ms at most
    assert clock.running and other.epoch() == epoch
    elapsed = (other.now() - START).total_seconds()
    assert 1800.0 <= elapsed < 1800.0 + 180.0 * 5  # 10 s at 180x, and a little more
    assert clock.at_wall(epoch + 2.0) == datetime(2026, 12, 15, 16, 36, tzinfo=timezone.utc)


def test_plain_simulated_clock_spec_still_parses():
    clock = Clock.simulated(START, 60.0, wall_epoch=1.7e9)
    again = Clock.parse(clock.spec())
    assert again == clock and again.epoch_file is None
    assert again.at_wall(1.7e9 + 1.0) == datetime(2026, 12, 15, 16, 31, tzinfo=timezone.utc)
