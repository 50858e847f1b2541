"""The REST API over real HTTP (waitress on a free port) through SchedulerClient."""

import json
import subprocess
import sys
from datetime import datetime

import pytest

from rosace_core.errors import NotFoundError
from rosace_core.http import ApiError
from rosace_core.rest import BackgroundServer
from rosace_scheduler.api import create_app
from rosace_scheduler.client import SchedulerClient
from rosace_scheduler.scheduler import Scheduler

EVENING = "2026-11-20T19:00:00Z"
BAD = """rosace: 1
id: broken-file
observer: {name: X}
target: {name: Y, ra_deg: 400, dec: 10}
instrument: {spectrograph: alpy600}
sequence:
  science: {count: 1, exposure: 60}
priority: 12
"""


@pytest.fixture
def server(config, queue_folder):
    sched = Scheduler(config, queue_folder=queue_folder)
    # The test night's sky and table computed beforehand, as the served scheduler's watcher does for
    # tonight: built by the first request instead, they took over the client's 10 s on a loaded
    # machine (ReadTimeout; 36 s at load 15).
    sched.prepare(sched.night_of(datetime.fromisoformat(EVENING.replace("Z", "+00:00")).timestamp()))
    app = create_app(config, token="secret", scheduler_instance=sched, watch=False)
    with BackgroundServer(app) as srv:
        yield srv, sched
    sched.close()


def test_submit_validate_queue_next_outcome_history(server, examples_dir):
    srv, sched = server
    c = SchedulerClient(srv.url, token="secret")
    assert c.health()["status"] == "ok"
    # invalid: 422 with line, column, path
    with pytest.raises(ApiError) as err:
        c.submit(BAD, "yaml", "broken.yaml")
    assert err.value.status == 422
    errors = err.value.problem["errors"]
    assert {e["path"] for e in errors} == {"target.ra_deg", "priority"}
    assert all(e["line"] for e in errors)
    v = c.validate(BAD, "yaml", "broken.yaml")
    assert v["valid"] is False and len(v["errors"]) == 2
    good = (examples_dir / "be_zetatau_halpha_alpy.yaml").read_text().replace("be-zetatau-alpy", "be-zetatau-copy")
    assert c.submit(good, "yaml", "copy.yaml") == {"id": "be-zetatau-copy", "valid": True}
    assert c.validate(good)["valid"] is True
    q = c.queue(EVENING)
    states = {f["id"]: f["state"] for f in q["files"]}
    assert states["be-zetatau-copy"] == "observable" and states["sb-betlyr-lhires"] == "wrong_instrument"
    assert c.file("be-zetatau-copy")["file"]["target"]["name"] == "zet Tau"
    n = c.next(EVENING, pointing={"ra": 10.0, "dec": 50.0}, conditions={"safe": True})
    obs = n["observation"]
    assert obs["file_id"] == "too-nova-cas-2026" and obs["file"]["priority"] == 10
    assert set(obs["rules"]) >= {"priority", "urgency", "altitude", "slew"}
    assert n["runner_ups"] and n["retry_at"] is None
    assert obs["reference"] == [] or obs["reference"][0]["name"]
    assert c.record_outcome(obs["observation_id"], obs["file_id"], "completed", obs["start"], obs["end"], ["f1.fits"], "ok")["outcome"] == "completed"
    with pytest.raises(Exception):  # the same outcome twice is a conflict
        c.record_outcome(obs["observation_id"], obs["file_id"], "completed")
    h = c.history()
    assert h[0]["observation_id"] == obs["observation_id"] and h[0]["outcome"] == "completed"
    plan = c.plan("2026-11-20", curves=True)
    assert plan["night"] == "2026-11-20" and plan["observations"]
    assert set(plan["curves"]["altitude"]) == {o["file_id"] for o in plan["observations"]}
    e = c.explain("sb-betlyr-lhires", EVENING)
    assert e["state"] == "wrong_instrument" and "lhires2400" in e["reason"]
    ref = c.reference("alpy600", EVENING, 1.3)
    assert ref["best"]["airmass"] == pytest.approx(1.3, abs=0.3)
    assert c.remove("be-zetatau-copy")["removed"] is True
    with pytest.raises(NotFoundError):
        c.file("be-zetatau-copy")
    c.session.close()  # let the server stop at once


def test_writes_need_the_token(server):
    srv, _ = server
    anonymous = SchedulerClient(srv.url, token=None)
    anonymous.queue()  # reads are open on localhost
    with pytest.raises(ApiError) as err:
        anonymous.next(EVENING)
    assert err.value.status == 401
    anonymous.session.close()


def test_invalid_file_in_folder_never_breaks_the_queue(config, queue_folder):
    shipped = len(list(queue_folder.iterdir()))
    (queue_folder / "broken.yaml").write_text(BAD, encoding="utf-8")
    (queue_folder / "not-yaml.yml").write_text("rosace: 1\nid: [unclosed\n", encoding="utf-8")
    sched = Scheduler(config, database=":memory:", queue_folder=queue_folder)
    q = sched.queue(EVENING)
    assert {r["filename"] for r in q["rejected"]} == {"broken.yaml", "not-yaml.yml"}
    assert len(q["files"]) == shipped
    assert sched.next(EVENING)["observation"] is not None
    # fixing the file takes it in; deleting a file takes it out
    (queue_folder / "broken.yaml").write_text(BAD.replace("ra_deg: 400", "ra_deg: 40").replace("priority: 12", "priority: 2"), encoding="utf-8")
    (queue_folder / "nova_too_window.yaml").unlink()
    changes = sched.scan_folder()
    assert changes["added"] == ["broken-file"] and changes["removed"] == ["too-nova-cas-2026"]
    assert {r["filename"] for r in sched.queue(EVENING)["rejected"]} == {"not-yaml.yml"}


def test_openapi_lists_the_contract_routes(config):
    app = create_app(config, token="t", scheduler_instance=Scheduler(config, database=":memory:"), watch=False)
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    for path in ("/files", "/validate", "/queue", "/files/{file_id}", "/next", "/outcomes", "/plan", "/explain/{file_id}", "/history", "/reference"):
        assert f"/api/v1/scheduler{path}" in doc["paths"]


def test_core_imports_neither_qt_nor_flask():
    code = ("import sys, rosace_scheduler.scheduler, rosace_scheduler.validation, rosace_scheduler.reference;"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'flask'))))")
    out = subprocess.run([sys.executable, "-c", "import json;" + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_queue_is_paginated_over_http(server):
    srv, sched = server
    c = SchedulerClient(srv.url, token="secret")
    whole = c.get("/queue", params={"time": EVENING, "limit": 10000})
    total = whole["total"]
    assert total == len(whole["files"]) >= 5 and whole["next_offset"] is None
    assert sum(whole["counts"].values()) == total
    pages, offset = [], 0
    while offset is not None:
        doc = c.get("/queue", params={"time": EVENING, "limit": 2, "offset": offset})
        assert len(doc["files"]) <= 2 and doc["total"] == total
        pages += doc["files"]
        offset = doc["next_offset"]
    assert pages == whole["files"]
    assert c.queue(EVENING)["files"] == whole["files"]  # the client fetches every page
    observable = c.get("/queue", params={"time": EVENING, "state": "observable"})
    assert observable["total"] == whole["counts"]["observable"] and {f["state"] for f in observable["files"]} == {"observable"}
    with pytest.raises(ApiError) as err:
        c.get("/queue", params={"limit": 0})
    assert err.value.status in (400, 422)
    # documented in the OpenAPI document
    import requests

    spec = requests.get(srv.url + "/api/v1/openapi.json", timeout=10).json()
    params = {p["name"] for p in spec["paths"]["/api/v1/scheduler/queue"]["get"]["parameters"]}
    assert {"limit", "offset", "state", "time"} <= params


@pytest.mark.parametrize("when", ["0001-01-01", "9999-12-31", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"])
def test_dates_out_of_the_sky_tables_are_a_400_not_a_500(server, when):
    srv, _ = server
    import requests

    for path, params in (("/queue", {"time": when}), ("/plan", {"night": when[:10]}), ("/explain/x", {"time": when})):
        r = requests.get(f"{srv.url}/api/v1/scheduler{path}", params=params, timeout=30)
        assert r.status_code == 400 and "between 1950 and 2150" in r.text, (path, r.status_code, r.text[:200])
    r = requests.post(f"{srv.url}/api/v1/scheduler/next", json={"time": when}, headers={"Authorization": "Bearer secret"}, timeout=30)
    assert r.status_code == 422 and "between 1950 and 2150" in r.text, r.text[:200]
