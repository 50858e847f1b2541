"""REST API on a real local server: submit a folder, poll the job, read results and the plot; share upload."""

import shutil

from astropy.io import fits

import pytest
from flask import Flask, jsonify, request

from rosace_core.config import config_from_dict
from rosace_core.http import ApiError
from rosace_core.rest import BackgroundServer
from rosace_reduction.api import create_app, upload_to_share
from rosace_reduction.client import ReductionClient


@pytest.fixture
def share_server():
    """A stand-in share server (real HTTP) that records the uploads it receives."""
    app = Flask("share_stub")
    received = []

    @app.post("/api/v1/share/spectra")
    def spectra():
        f = request.files["file"]
        received.append((f.filename, len(f.read()), request.headers.get("Authorization")))
        return jsonify({"id": str(len(received))}), 201

    with BackgroundServer(app) as srv:
        srv.received = received
        yield srv


def test_reduce_job_results_plot_and_share(synthetic_night, tmp_path, share_server):
    folder, _ = synthetic_night
    night = tmp_path / "raw" / "20261120"
    shutil.copytree(folder, night)
    cfg = config_from_dict({"data": {"root": str(tmp_path)}, "reduction": {"share_url": share_server.url, "share_token": "s3cret"}})
    with BackgroundServer(create_app(cfg, token="tok")) as srv:
        client = ReductionClient(srv.url, token="tok")
        job = client.reduce(folder=str(night))
        assert job["state"] in ("queued", "running")
        done = client.wait_job(job["id"], timeout=120)
        assert done["state"] == "succeeded", done
        spectra = done["result"]["spectra"]
        assert len(spectra) == 1 and spectra[0]["status"] == "reduced"
        assert spectra[0]["share"]["ok"] and spectra[0]["share"]["status"] == 201
        assert share_server.received[0][0].endswith(".fits") and share_server.received[0][2] == "Bearer s3cret"
        results = client.results()
        assert [r["id"] for r in results] == [spectra[0]["id"]]
        assert client.results(observation_id="nope") == []
        rec = client.result(spectra[0]["id"])
        assert rec["quality"]["arc_lines"] >= 8
        png = client.plot_png(spectra[0]["id"])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        data = client.spectrum(spectra[0]["id"])
        assert len(data["wavelength"]) == len(data["flux"]) > 2000


def test_writes_need_a_token_and_bad_requests_are_problems(tmp_path):
    cfg = config_from_dict({"data": {"root": str(tmp_path)}})
    app = create_app(cfg, token="tok")
    c = app.test_client()
    assert c.post("/api/v1/reduction/reduce", json={"folder": str(tmp_path)}).status_code == 401
    r = c.post("/api/v1/reduction/reduce", json={}, headers={"Authorization": "Bearer tok"})
    assert r.status_code == 422
    r = c.post("/api/v1/reduction/reduce", json={"folder": str(tmp_path / "missing")}, headers={"Authorization": "Bearer tok"})
    assert r.status_code == 422
    assert c.get("/api/v1/reduction/results/unknown").status_code == 404


def test_share_down_never_raises(tmp_path):
    f = tmp_path / "x.fits"
    f.write_bytes(b"SIMPLE")
    out = upload_to_share(str(f), "http://127.0.0.1:9", None, timeout=2)
    assert out["ok"] is False and out["status"] is None


def test_a_partial_observation_is_reduced_and_flagged(synthetic_night, tmp_path):
    folder, _ = synthetic_night
    frames = [str(p) for p in sorted((folder / "HD_1234").glob("*.fits"))]
    cfg = config_from_dict({"data": {"root": str(tmp_path)}, "reduction": {"data_roots": [str(folder)]}})
    with BackgroundServer(create_app(cfg, token="tok")) as srv:
        client = ReductionClient(srv.url, token="tok")
        partial = {"reason": "unsafe: conditions turned unsafe during the exposure", "science_frames": 1, "planned_frames": 4}
        job = client.post("/reduce", {"frames": frames, "observation_id": "obs-1", "partial": partial})
        done = client.wait_job(job["id"], timeout=120)
        assert done["state"] == "succeeded", done
        (spectrum,) = done["result"]["spectra"]
        assert spectrum["status"] == "reduced" and spectrum["partial"] is True and "partial" in spectrum["flags"]
        rec = client.result(spectrum["id"])
        assert rec["partial"] == {**partial, "science_frames": 1}
        header = fits.getheader(rec["products"]["fits"])
        assert header["PARTIAL"] is True and "1 of 4 science frames" in header.comments["PARTIAL"]
        with pytest.raises(ApiError) as err:  # a partial flag needs the observation it describes
            client.post("/reduce", {"frames": frames, "partial": partial})
        assert err.value.status == 422 and "observation_id" in str(err.value)


def test_reduce_refuses_paths_outside_its_data_folders_and_impossible_names(tmp_path):
    """Any server path was accepted (its error told whether a file existed); a 300-character name gave 500."""
    cfg = config_from_dict({"data": {"root": str(tmp_path)}})
    c = create_app(cfg, token="tok").test_client()
    auth = {"Authorization": "Bearer tok"}
    existing, absent = "/etc/hostname", "/etc/no-such-file-here"
    answers = [c.post("/api/v1/reduction/reduce", json={"frames": [p]}, headers=auth) for p in (existing, absent)]
    assert [a.status_code for a in answers] == [403, 403]
    assert answers[0].json["detail"] == answers[1].json["detail"]  # the same answer: existence is not revealed
    for bad in (str(tmp_path / ("a" * 300 + ".fits")), "/etc/" + "b" * 300, str(tmp_path / "x\x00y"), "../../etc/passwd"):
        r = c.post("/api/v1/reduction/reduce", json={"frames": [bad]}, headers=auth)
        assert r.status_code in (403, 422), (bad[:40], r.status_code, r.json)
