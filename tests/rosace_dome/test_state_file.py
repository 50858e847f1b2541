"""The dome's state file under load and when it cannot be written (real HTTP, in-memory devices)."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest

from rosace_core.rest import BackgroundServer
from rosace_dome.api import create_app
from rosace_dome.client import DomeClient
from rosace_dome.settings import DomeSettings
from rosace_dome.shelter import Shelter

TOKEN = "test-token"
FAST = dict(poll_period=1.0, min_poll_wall=0.01, reopen_delay=60.0, shutter_timeout=100.0, park_timeout=60.0)


@pytest.fixture
def served(fast_clock, fakes, tmp_path):
    shelter = Shelter(fakes, DomeSettings(**FAST), state_file=tmp_path / "state" / "dome.json")
    app = create_app(None, token=TOKEN, shelter=shelter)
    with BackgroundServer(app) as server:
        yield server, shelter
    shelter.stop()


def test_80_concurrent_leases_all_saved_without_errors(served, caplog):
    server, shelter = served
    DomeClient(server.url, token=TOKEN).wait_until_up()

    def take(i):
        c = DomeClient(server.url, token=TOKEN)
        try:
            return c.acquire_lease(f"holder-{i}", 300)["id"]
        finally:
            c.session.close()

    with caplog.at_level(logging.ERROR, logger="rosace_dome"), ThreadPoolExecutor(16) as pool:
        ids = set(pool.map(take, range(80)))
    assert len(ids) == 80
    assert not [r.getMessage() for r in caplog.records if "cannot save" in r.getMessage()]
    saved = json.loads(shelter.state_file.read_text(encoding="utf-8"))
    assert {lease["id"] for lease in saved["leases"]} == ids  # every lease answered 201 is on disk
    assert not list(shelter.state_file.parent.glob(".*"))  # no temporary file left behind
    assert "state_save" not in shelter.journal.active_codes()


def test_state_that_cannot_be_saved_raises_an_alarm_that_clears(served):
    server, shelter = served
    client = DomeClient(server.url, token=TOKEN)
    client.wait_until_up()
    folder = shelter.state_file.parent
    folder.mkdir(parents=True, exist_ok=True)
    # A folder where the state file should be: every write fails. The shelter's own poll loop
    # may save between the unlink and the mkdir (seen on a loaded CI machine), so try again.
    for _ in range(50):
        shelter.state_file.unlink(missing_ok=True)
        try:
            shelter.state_file.mkdir()
            break
        except FileExistsError:
            continue
    assert shelter.state_file.is_dir()
    client.acquire_lease("sequencer", 300)
    alarms = [a for a in client.status()["alarms"] if a["active"] and a["code"] == "state_save"]
    assert len(alarms) == 1 and "cannot save the dome state" in alarms[0]["message"] and "dome.json" in alarms[0]["message"]
    client.acquire_lease("other", 300)  # raised once, not once per failed save
    assert len([a for a in client.status()["alarms"] if a["code"] == "state_save"]) == 1
    shelter.state_file.rmdir()  # the fault clears
    lease = client.acquire_lease("third", 300)
    assert "state_save" not in {a["code"] for a in client.status()["alarms"] if a["active"]}
    saved = json.loads(shelter.state_file.read_text(encoding="utf-8"))
    assert lease["id"] in {item["id"] for item in saved["leases"]} and len(saved["leases"]) == 3
    assert any(a["code"] == "state_save" and not a["active"] for a in saved["alarms"])
    client.session.close()
