"""The dome REST API over real HTTP (waitress on a free port), with in-memory devices."""

from __future__ import annotations

import pytest
import requests

from rosace_core.errors import ConflictError, NotFoundError
from rosace_core.http import ApiError
from rosace_core.rest import BackgroundServer
from rosace_dome.api import create_app
from rosace_dome.client import DomeClient
from rosace_dome.settings import DomeSettings
from rosace_dome.shelter import Shelter

TOKEN = "test-token"
FAST = dict(poll_period=1.0, min_poll_wall=0.01, reopen_delay=60.0, shutter_timeout=100.0, park_timeout=60.0)


@pytest.fixture
def served(fast_clock, fakes, tmp_path):
    shelter = Shelter(fakes, DomeSettings(**FAST), state_file=tmp_path / "dome.json")
    app = create_app(None, token=TOKEN, shelter=shelter)
    with BackgroundServer(app) as server:
        yield server, shelter, fakes
    shelter.stop()


@pytest.fixture
def client(served):
    server, shelter, _ = served
    c = DomeClient(server.url, token=TOKEN)
    c.wait_until_up()
    yield c
    c.session.close()  # a kept-alive connection would hold the server's shutdown


def test_status_has_the_contract_fields(client, served, waiter):
    _, shelter, _ = served
    assert waiter(lambda: shelter.verdict is not None and shelter.state == "closed", 30)
    st = client.status()
    for key in ("shelter", "safe", "verdict", "sensors", "mount", "leases", "alarms", "maintenance", "reopen_at"):
        assert key in st
    assert st["shelter"]["type"] == "rolloff" and st["shelter"]["state"] == "closed" and "azimuth" in st["shelter"]
    assert st["safe"] is True and st["verdict"] == {**st["verdict"], "safe": True, "reasons": []}
    assert st["verdict"]["since"]
    assert st["mount"]["at_park"] is True
    assert st["maintenance"] is False
    names = {s["name"]: s for s in st["sensors"]}
    assert names["rain_rate"]["limit"]["max"] == 0 and names["rain_rate"]["age"] == 5.0 and names["rain_rate"]["ok"]


def test_open_close_park_jobs_and_events(client, served, waiter):
    _, shelter, fakes = served
    assert waiter(lambda: shelter.verdict is not None, 30)
    job = client.open(source="pytest")
    assert job["kind"] == "open" and job["state"] in ("queued", "running", "succeeded")
    assert client.wait_job(job["id"], timeout=10)["state"] == "succeeded"
    assert client.status()["shelter"]["state"] == "open"
    fakes.telescope.unpark()
    job = client.close(reason="end of night", source="pytest")
    done = client.wait_job(job["id"], timeout=10)
    assert done["state"] == "succeeded", done
    assert client.status()["shelter"]["state"] == "closed"
    job = client.park()
    assert client.wait_job(job["id"], timeout=10)["state"] == "succeeded"
    events = client.events()
    messages = [e["message"] for e in events]
    assert any("open requested by pytest" in m for m in messages)
    assert any("close: end of night" in m for m in messages)
    assert any("closed -> opening" in m for m in messages) and any("open -> closing" in m for m in messages)
    assert all(e["time"] for e in events)
    later = client.events(since=events[-2]["seq"])
    assert [e["seq"] for e in later] == [events[-1]["seq"]]
    assert client.events(kind="command") and all(e["kind"] == "command" for e in client.events(kind="command"))


def test_open_refused_with_reasons_when_unsafe(client, served, waiter):
    _, shelter, fakes = served
    fakes.conditions.values["rain_rate"] = 3.0
    assert waiter(lambda: shelter.verdict is not None and not shelter.verdict.safe, 30)
    with pytest.raises(ConflictError) as err:
        client.open()
    assert any("rain_rate 3 mm/h above limit 0" in r for r in err.value.reasons)
    raw = requests.post(f"{client.api}/open", json={}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert raw.status_code == 409 and raw.headers["Content-Type"].startswith("application/problem+json")
    assert raw.json()["reasons"] and raw.json()["status"] == 409


def test_leases_over_rest(client, served, waiter):
    lease = client.acquire_lease("sequencer", 300)
    assert lease["holder"] == "sequencer" and lease["id"] and lease["expires"]
    renewed = client.renew_lease(lease["id"], 600)
    assert renewed["expires"] > lease["expires"]
    assert [item["id"] for item in client.status()["leases"]] == [lease["id"]]
    client.release_lease(lease["id"])
    assert client.leases() == []
    with pytest.raises(NotFoundError):
        client.renew_lease(lease["id"], 60)
    with pytest.raises(NotFoundError):
        client.release_lease("nope")
    with pytest.raises(ApiError) as err:
        client.acquire_lease("sequencer", 10**6)
    assert err.value.status == 422 and "maximum" in str(err.value)


def test_maintenance_lock_over_rest(client, served, waiter):
    _, shelter, _ = served
    assert waiter(lambda: shelter.verdict is not None, 30)
    out = client.set_maintenance(True, "flat panel work")
    assert out["locked"] and out["reason"] == "flat panel work"
    assert client.status()["maintenance"] is True
    with pytest.raises(ConflictError) as err:
        client.open()
    assert any("flat panel work" in r for r in err.value.reasons)
    assert client.set_maintenance(False)["locked"] is False
    assert any(e["kind"] == "maintenance" for e in client.events())


BAD_REQUESTS = [
        ("POST", "/leases", {"holder": "x"}, 422),
        ("POST", "/leases", {"holder": "x", "duration": -5}, 422),
        ("POST", "/leases", {"holder": "", "duration": 5}, 422),
        ("PUT", "/leases/abc", {"duration": "soon"}, 422),
        ("PUT", "/maintenance", {"reason": "no flag"}, 422),
        ("PUT", "/maintenance", {"locked": True, "colour": "red"}, 422),
        ("POST", "/open", {"unknown": 1}, 422),
        ("GET", "/events?limit=0", None, 400),
        ("GET", "/events?since=abc", None, 400),
        ("GET", "/jobs/doesnotexist", None, 404),
        ("DELETE", "/leases/doesnotexist", None, 404),
        ("GET", "/nothing-here", None, 404),
]


def test_bad_requests_get_problem_documents(served):
    server, _, _ = served
    for method, path, body, status in BAD_REQUESTS:
        resp = requests.request(method, f"{server.url}/api/v1/dome{path}", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert resp.status_code == status, (method, path, resp.text)
        assert resp.headers["Content-Type"].startswith("application/problem+json")
        doc = resp.json()
        assert doc["status"] == status and doc["title"] and "type" in doc
        if status == 422:
            assert doc["errors"] and all("field" in e for e in doc["errors"]), (method, path)


def test_not_json_body_is_400(served):
    server, _, _ = served
    resp = requests.post(f"{server.url}/api/v1/dome/leases", data="{not json", headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}, timeout=30)
    assert resp.status_code == 400 and resp.json()["status"] == 400


WRITES = [("POST", "/open", {}), ("POST", "/close", {}), ("POST", "/park", {}), ("POST", "/leases", {"holder": "x", "duration": 5}), ("PUT", "/maintenance", {"locked": True}), ("POST", "/alarms/acknowledge", {})]


def test_writes_without_token_are_401(served):
    server, shelter, fakes = served
    for method, path, body in WRITES:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            resp = requests.request(method, f"{server.url}/api/v1/dome{path}", json=body, headers=headers, timeout=30)
            assert resp.status_code == 401, (method, path, resp.text)
            assert resp.json()["status"] == 401
    assert shelter.leases.active() == [] and not shelter.locked
    assert [w for _, w in fakes.dome.calls if w in ("open_shutter", "close_shutter")] == []
    # Reads stay open.
    assert requests.get(f"{server.url}/api/v1/dome/status", timeout=30).status_code == 200


def test_openapi_lists_the_dome_routes(served):
    server, _, _ = served
    doc = requests.get(f"{server.url}/api/v1/openapi.json", timeout=30).json()
    for path in ("/api/v1/dome/status", "/api/v1/dome/open", "/api/v1/dome/leases/{lease_id}", "/api/v1/dome/maintenance", "/api/v1/dome/events"):
        assert path in doc["paths"]
    assert "DomeStatus" in doc["components"]["schemas"]
