"""What keeps `next` fast with a long queue: the long-lived objects out of the garbage collector's reach, the server's watcher settling them."""

import gc
import json
import threading

import pytest

from rosace_core.config import config_from_dict
from rosace_scheduler import scheduler as scheduler_module
from rosace_scheduler.scheduler import Scheduler, settle_gc

from tests.rosace_scheduler.test_lookahead import _file


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()  # other tests run in this process: give the collector its objects back


def test_settle_gc_freezes_what_is_alive(unfrozen):
    keep = [{"k": [i]} for i in range(1000)]
    settle_gc()
    assert gc.get_freeze_count() >= len(keep)
    assert all(o is not keep[0] for o in gc.get_objects(generation=2)), "frozen objects are out of the collected generations"


def test_the_watcher_settles_once_after_preparing_the_tables(tmp_path, monkeypatch, unfrozen):
    calls, prepared = [], threading.Event()
    real_prepare = Scheduler.prepare

    def prepare(self, night=None):
        real_prepare(self, night)
        prepared.set()

    monkeypatch.setattr(Scheduler, "prepare", prepare)
    monkeypatch.setattr(scheduler_module, "settle_gc", lambda: calls.append(prepared.is_set()))
    config = config_from_dict({"data": {"root": str(tmp_path / "data")}, "scheduler": {"watch_interval": 0.05}})
    s = Scheduler(config, database=":memory:", queue_folder=tmp_path / "none")
    s.submit(json.dumps(_file("a", 30.0, 80.0, 5)), "json")
    try:
        s.start_watching()
        for _ in range(400):  # up to 20 s on a loaded machine: the first round builds two nights' tables
            if calls:
                break
            s._stop.wait(0.05)
        s._stop.wait(0.3)  # a few more rounds of the watcher
    finally:
        s.close()
    assert calls == [True], "settled once, after the first tables were prepared"
