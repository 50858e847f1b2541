"""The night's reference-star response across reduction jobs (a robotic night hands observations over one
at a time): a science observation reduced after the reference star uses its response; one reduced before
is reduced again with it, once, and uploaded again to the share module."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from astropy.io import fits
from astropy.time import Time
from flask import Flask, jsonify, request

from rosace_core.config import config_from_dict
from rosace_core.rest import BackgroundServer
from rosace_reduction import responses
from rosace_reduction.api import create_app
from rosace_reduction.batch import reduce_paths
from rosace_reduction.client import ReductionClient
from rosace_reduction.output import read_spectrum
from rosace_reduction.pipeline import Options


def _observation(src: Path, dest: Path, obsid: str, obj: str, start: str, airmass: float, ref: bool) -> list[str]:
    """Copy the synthetic observation (science, arc, flat, bias) as another observation of the night."""
    paths = []
    for p in sorted(src.rglob("*.fits")):
        out = dest / p.name.replace("obs-1", obsid)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, out)
        with fits.open(out, mode="update") as h:
            hdr = h[0].header
            hdr["ROSOBSID"], hdr["OBJECT"], hdr["DATE-OBS"], hdr["JD-OBS"] = obsid, obj, start, Time(start).jd
            hdr["AIRMASS"] = airmass
            hdr["ROSREF"] = ref and hdr["IMAGETYP"] == "LIGHT"
        paths.append(str(out))
    return paths


@pytest.fixture
def night(synthetic_night, tmp_path):
    """A reference star (Vega, in the built-in library) at 21:00 and a science star at 21:40, as separate frame sets."""
    folder, _ = synthetic_night
    raw = tmp_path / "raw" / "20261120"
    ref = _observation(folder, raw / "Vega", "ref-1", "Vega", "2026-11-20T21:00:00", 1.1, True)
    sci = _observation(folder, raw / "HD_1234", "sci-1", "HD 1234", "2026-11-20T21:40:00", 1.3, False)
    return tmp_path, ref, sci


def _only(report, oid):
    [o] = [o for o in report.outcomes if o.observation_id == oid]
    return o


def test_reference_in_an_earlier_job_gives_its_response(night):
    tmp, ref, sci = night
    options = Options(output_root=str(tmp / "out"))
    r1 = reduce_paths([Path(p) for p in ref], options)
    assert _only(r1, "ref-1").record["response"]["computed"]
    index = json.loads((tmp / "out" / "20261120" / "responses.json").read_text())
    assert [(e["observation_id"], e["instrument"], e["star"]) for e in index["responses"]] == [("ref-1", "alpy600", "hr7001")]
    r2 = reduce_paths([Path(p) for p in sci], options)
    rec = _only(r2, "sci-1").record
    assert rec["response"]["applied"] and rec["response"]["star"] == "hr7001"
    assert rec["calibrations"]["response"] == index["responses"][0]["file"]
    assert "no_response" not in rec["flags"]
    assert read_spectrum(rec["products"]["fits"]).flux.unit == "erg / (Angstrom s cm2)"
    assert not any(o.rereduced for o in r2.outcomes)


def test_science_reduced_first_is_reduced_again_once(night):
    tmp, ref, sci = night
    options = Options(output_root=str(tmp / "out"))
    first = _only(reduce_paths([Path(p) for p in sci], options), "sci-1").record
    assert "no_response" in first["flags"] and not first["response"]["applied"]
    report = reduce_paths([Path(p) for p in ref], options)
    again = _only(report, "sci-1")
    assert again.rereduced and again.status == "reduced", again
    assert again.record["response"]["applied"] and again.record["response"]["star"] == "hr7001"
    assert again.record["inputs_hash"] != first["inputs_hash"]
    # The products were replaced in place (same files), not duplicated.
    assert again.record["products"]["fits"] == first["products"]["fits"]
    assert read_spectrum(first["products"]["fits"]).flux.unit == "erg / (Angstrom s cm2)"
    assert responses.science_without_response(options.output_root, "20261120", "alpy600") == []
    # Idempotent: handing the reference (or the science) over again redoes nothing.
    report = reduce_paths([Path(p) for p in ref], options)
    assert report.counts == {"skipped": 1} and not any(o.rereduced for o in report.outcomes)
    assert reduce_paths([Path(p) for p in sci], options).counts == {"skipped": 1}


def test_response_nearest_in_time_and_airmass(tmp_path):
    out = tmp_path / "out"
    for oid, jd, x in (("early", 2461000.40, 1.05), ("late", 2461000.60, 1.9)):
        f = out / "20261120" / f"{oid}.npz"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
        rec = {"reference_star": True, "night": "20261120", "instrument": "alpy600", "observation_id": oid, "jd_mid": jd, "airmass": x,
               "response": {"file": str(f), "star": "hr7001"}, "products": {}}
        assert responses.register(out, rec)["observation_id"] == oid
    assert responses.nearest(out, "20261120", "alpy600", 2461000.45, 1.1)["observation_id"] == "early"
    assert responses.nearest(out, "20261120", "alpy600", 2461000.56, 1.8)["observation_id"] == "late"
    # Same time from both, airmass decides.
    assert responses.nearest(out, "20261120", "alpy600", 2461000.50, 1.8)["observation_id"] == "late"
    assert responses.nearest(out, "20261120", "lhires2400", 2461000.5, 1.2) is None
    assert responses.nearest(out, "20261121", "alpy600", 2461000.5, 1.2) is None


@pytest.fixture
def share_server():
    """A stand-in share server (real HTTP) recording the ROSOBSID of each spectrum uploaded."""
    app = Flask("share_stub")
    received = []

    @app.post("/api/v1/share/spectra")
    def spectra():
        received.append(fits.getheader(request.files["file"].stream)["ROSOBSID"])
        return jsonify({"id": str(len(received))}), 201

    with BackgroundServer(app) as srv:
        srv.received = received
        yield srv


def test_rest_science_then_reference_reuploads_the_science(night, share_server):
    tmp, ref, sci = night
    cfg = config_from_dict({"data": {"root": str(tmp)}, "reduction": {"share_url": share_server.url}})
    with BackgroundServer(create_app(cfg, token="tok")) as srv:
        client = ReductionClient(srv.url, token="tok")
        # As the sequencer does: each observation on its own, named.
        done = client.wait_job(client.reduce(sci, observation_id="sci-1")["id"], timeout=120)
        assert done["state"] == "succeeded", done
        [item] = done["result"]["spectra"]
        assert "no_response" in item["flags"] and item["rereduced"] is False
        done = client.wait_job(client.reduce(ref, observation_id="ref-1")["id"], timeout=120)
        assert done["state"] == "succeeded", done
        items = {i["observation_id"]: i for i in done["result"]["spectra"]}
        assert set(items) == {"ref-1", "sci-1"}
        assert items["sci-1"]["rereduced"] and items["sci-1"]["share"]["ok"]
        assert "no_response" not in items["sci-1"]["flags"]
        assert share_server.received == ["sci-1", "ref-1", "sci-1"]
        [rec] = client.results(observation_id="sci-1")
        assert rec["response"]["applied"] and rec["response"]["star"] == "hr7001"


def test_a_night_reduced_before_the_index_existed_still_serves_its_response(night):
    tmp, ref, sci = night
    options = Options(output_root=str(tmp / "out"))
    reduce_paths([Path(p) for p in ref], options)
    (tmp / "out" / "20261120" / "responses.json").unlink()
    rec = _only(reduce_paths([Path(p) for p in sci], options), "sci-1").record
    assert rec["response"]["applied"] and rec["response"]["star"] == "hr7001"
    # A damaged index is rebuilt from the night's reference records.
    index = tmp / "out" / "20261120" / "responses.json"
    index.write_text("{not json", encoding="utf-8")
    assert [e["observation_id"] for e in responses.load_index(tmp / "out", "20261120")] == ["ref-1"]
