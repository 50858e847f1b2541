"""The sequencer against the simulated observatory over real HTTP (accelerated clock).

A complete observation and its headers, slit acquisition from the simulator's
pointing error, the faults (unsafe during an exposure, device errors and
timeouts), a process killed during an exposure and restarted, and a night of
several targets.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from astropy.io import fits

from rosace_core.config import config_from_dict
from rosace_core.observing_file import ObservingFile, load_observing_file
from rosace_core.resources import resource_path
from rosace_core.rest import BackgroundServer

from rosace_sequencer.api import create_app
from rosace_sequencer.client import SequencerClient
from rosace_sequencer.frames import TMP_SUFFIX
from rosace_sim import devices_config
from rosace_sim.testing import SimObservatory

TOKEN = "seq-test-token"


def scenario(rate: float = 100.0) -> dict:
    data = yaml.safe_load(resource_path("scenarios", "clear.yaml").read_text())
    data["clock"]["rate"] = rate
    data["shelter"]["start_open"] = True  # no dome module in these tests: the roof is simply open
    return data


def config_dict(sim_url: str, root: Path, **options) -> dict:
    opts = {"use_scheduler": False, "hand_to_reduction": False, "backoff": 1.0, "retries": 2, "library_count": 1}
    opts.update(options)
    return {"devices": devices_config(sim_url, retries=1),
            "data": {"root": str(root)}, "sequencer": opts}


def small_file(name="be_gamcas_halpha_alpy.yaml", **sequence) -> dict:
    data = load_observing_file(resource_path("observing_files", name)).to_dict()
    data["instrument"]["binning"] = [2, 2]  # quarter-size frames keep the tests quick
    data["sequence"].update({"science": {"count": 2, "exposure": 60}, "bias_dark": "none"})
    data["sequence"].pop("flats", None)
    data["sequence"].update(sequence)
    return ObservingFile.model_validate(data).to_dict()


@pytest.fixture
def sim():
    with SimObservatory(scenario()) as s:
        yield s


@pytest.fixture
def seq_server(sim, tmp_path):
    app = create_app(config_from_dict(config_dict(sim.url, tmp_path)), token=TOKEN)
    with BackgroundServer(app) as server:
        yield SequencerClient(server.url, token=TOKEN), app.extensions["rosace_sequencer"]
        app.extensions["rosace_sequencer"].close()


def run_and_wait(client, file: dict, timeout: float = 120.0) -> dict:
    job = client.run(file)
    done = client.wait_job(job["id"], timeout=timeout, poll=0.2)
    assert done["state"] == "succeeded", done
    return done["result"]


def wait_for(predicate, timeout=60.0, poll=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError("condition not reached in time")


def test_complete_observation_yields_the_expected_frames_and_headers(seq_server, sim):
    client, _ = seq_server
    file = small_file(flats={"lamp": "tungsten", "count": 1, "exposure": 5})
    result = run_and_wait(client, file)
    assert result["outcome"] == "completed", result["message"]
    names = sorted(Path(p).name for p in result["frames"])
    oid = result["observation_id"]
    # default order: 1 preconditions, 2 slew, 3 acquire, 4 arcs_before, 5 science, 6 arcs_after, 7 flats
    assert names == sorted([f"{oid}_04_ARC_001.fits", f"{oid}_05_LIGHT_001.fits", f"{oid}_05_LIGHT_002.fits",
                            f"{oid}_06_ARC_001.fits", f"{oid}_07_FLAT_001.fits"])
    folder = Path(result["frames"][0]).parent
    assert folder.name == "gam_Cas" and folder.parent.name == "20250115"
    assert not list(folder.glob(f"*{TMP_SUFFIX}"))
    acq = result["info"]["acquisition"]
    assert acq["converged"] and acq["error_arcsec"] <= 0.7 and acq["iterations"] >= 1  # the sim's pointing error was corrected
    by_type = {}
    for path in result["frames"]:
        with fits.open(path) as hdul:
            h = hdul[0].header
            assert hdul[0].data.shape == (1000, 1500)
        by_type.setdefault(h["IMAGETYP"], []).append(h)
        assert h["OBJECT"] == "gam Cas" and h["ROSOBSID"] == oid and h["ROSOFID"] == "be-gamcas-alpy"
        assert len(h["ROSOFHSH"]) == 64 and h["INSTRUME"] == "alpy600"
        assert h["ROSCAMP"] == "aras-be-2026"  # the file's programme.campaign, for the reduction's share upload
        assert h["XBINNING"] == 2 and h["YBINNING"] == 2 and abs(h["CCD-TEMP"] - h["SET-TEMP"]) <= 1.0
        assert 1.0 < h["AIRMASS"] < 2.0 and h["DATE-OBS"].startswith("2025-01-15T")
        assert abs(h["RA"] - 14.18) < 0.1 and abs(h["DEC"] - 60.72) < 0.1
        truth = sim.control.truth(h["SIMTRUTH"])  # the frame's truth record exists in the simulator
        assert truth
    assert [h["LAMP"] for h in by_type["ARC"]] == ["NeAr", "NeAr"]
    assert by_type["FLAT"][0]["LAMP"] == "tungsten" and by_type["LIGHT"][0]["LAMP"] == "none"
    assert {h["ROSSTEP"] for h in by_type["LIGHT"]} == {"science"} and by_type["LIGHT"][0]["EXPTIME"] == 60
    history = client.history()
    assert history[0]["observation_id"] == oid and history[0]["state"] == "completed" and len(history[0]["frames"]) == 5
    preview = client.last_frame(max_size=200)
    assert preview["shape"] == [1000, 1500] and len(preview["profile"]) == 1500
    assert any("completed" in line["message"] for line in client.log())


def test_unsafe_during_the_exposure_aborts_it_and_interrupts(seq_server, sim):
    client, seq = seq_server
    seq.options.safety_poll = 5.0
    job = client.run(small_file(science={"count": 1, "exposure": 1200}, arcs={"exposure": 5, "when": "after"}))
    wait_for(lambda: ((client.status().get("observation") or {}).get("frame") or "").startswith("LIGHT"), timeout=60)
    time.sleep(0.3)
    sim.control.set_weather(safe=False, rain_rate=2.0)
    done = client.wait_job(job["id"], timeout=60)
    result = done["result"]
    assert result["outcome"] == "interrupted" and "unsafe" in result["message"]
    # the exposure was aborted, not waited out: no science frame (checked so, not with a wall-time bound a loaded machine can break)
    assert not [p for p in result["frames"] if "_LIGHT_" in p], result["frames"]
    assert sim.control.state()["devices"] if "devices" in sim.control.state() else True
    assert sim.observatory.spectro_camera._state() in (0, "idle") or not sim.observatory.spectro_camera._image_ready


def test_device_error_retries_then_fails_cleanly_and_the_next_observation_runs(seq_server, sim):
    client, _ = seq_server
    sim.control.inject_fault("camera", "error", device_number=0)
    result = run_and_wait(client, small_file(science={"count": 1, "exposure": 10}))
    assert result["outcome"] == "failed" and "2 attempt" in result["message"]
    assert any("retrying" in line["message"] for line in client.log())
    sim.control.clear_faults()
    result = run_and_wait(client, small_file(science={"count": 1, "exposure": 10}))
    assert result["outcome"] == "completed", result["message"]


@pytest.mark.slow
def test_a_device_that_stops_answering_times_out_instead_of_hanging(seq_server, sim):
    client, _ = seq_server
    sim.control.inject_fault("telescope", "timeout", device_number=0)
    t0 = time.monotonic()
    result = run_and_wait(client, small_file(science={"count": 1, "exposure": 10}), timeout=120)
    assert result["outcome"] == "failed"
    assert time.monotonic() - t0 < 100


@pytest.mark.slow
def test_a_night_of_several_targets_then_the_missing_darks(sim, tmp_path):
    app = create_app(config_from_dict(config_dict(sim.url, tmp_path)), token=TOKEN)
    seq = app.extensions["rosace_sequencer"]
    files = [small_file(bias_dark="library", science={"count": 1, "exposure": 30}),
             small_file("reference_hr1544_alpy.json", bias_dark="library", science={"count": 1, "exposure": 30})]
    with BackgroundServer(app) as server:
        client = SequencerClient(server.url, token=TOKEN)
        job = client.start_night(files)
        done = client.wait_job(job["id"], timeout=240, poll=0.3)
        assert done["state"] == "succeeded", done
        night = done["result"]
        assert night["completed"] == 2 and night["observations"] == 2
        history = client.history()
        assert sorted(h["target"] for h in history if h["state"] == "completed") == ["gam Cas", "pi2 Ori"]
        # library: one bias and one dark per distinct exposure time (30 s and the 2 s arcs), taken once the night ended
        lib = seq.journal.library_frames()
        assert sorted((r["kind"], r["exptime"]) for r in lib) == [("BIAS", 0.001), ("DARK", 2.0), ("DARK", 30.0)]
        for row in lib:
            assert fits.getheader(row["path"])["IMAGETYP"] in ("BIAS", "DARK")
        assert sim.observatory.telescope.get_atpark()
        assert client.status()["mode"] == "idle"
    seq.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(config_path: Path, port: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, ROSACE_TOKEN=TOKEN)
    return subprocess.Popen([sys.executable, "-m", "rosace_core.cli", "--config", str(config_path), "sequencer", "serve",
                             "--port", str(port)], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_killed_during_an_exposure_then_restarted_resumes_without_duplicates(sim, tmp_path):
    import tomli_w

    cfg = config_dict(sim.url, tmp_path / "data")
    # Resumed, not re-queued, however long the restart: at 100x the default hour is 36 s of wall time, and on a
    # loaded machine the observation (slew, acquisition) and the restart took longer (re-queued: failed 2 of 4 runs at load 15).
    cfg["sequencer"]["resume_max_age"] = 86400.0
    config_path = tmp_path / "rosace.toml"
    config_path.write_text(tomli_w.dumps(cfg))
    port = _free_port()
    client = SequencerClient(f"http://127.0.0.1:{port}", token=TOKEN)
    log = tmp_path / "sequencer.log"
    proc = _serve(config_path, port, log)
    try:
        client.wait_until_up(60)
        file = small_file(science={"count": 3, "exposure": 120}, arcs={"exposure": 5, "when": "bracket"})
        client.run(file)
        wait_for(lambda: (client.status().get("observation") or {}).get("frame") == "LIGHT 2/3", timeout=90)
        time.sleep(0.4)  # in the middle of the second 120 s exposure (1.2 s wall)
        proc.kill()
        proc.wait(10)
        before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "data" / "raw").rglob("*.fits")}
        assert any("_LIGHT_001" in n for n in before) and not any("_LIGHT_002" in n for n in before)
        proc = _serve(config_path, port, log)
        client.wait_until_up(60)
        history = wait_for(lambda: [h for h in client.history() if h["state"] != "running"] or None, timeout=120, poll=0.3)
        obs = history[0]
        assert obs["state"] == "completed" and obs["attempts"] == 2, obs
        names = sorted(Path(p).name for p in obs["frames"])
        oid = obs["observation_id"]
        assert names == sorted([f"{oid}_04_ARC_001.fits", f"{oid}_05_LIGHT_001.fits", f"{oid}_05_LIGHT_002.fits",
                                f"{oid}_05_LIGHT_003.fits", f"{oid}_06_ARC_001.fits"])
        on_disk = sorted(p.name for p in (tmp_path / "data" / "raw").rglob("*.fits*"))
        assert on_disk == names  # nothing duplicated, nothing half-written left
        after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "data" / "raw").rglob("*.fits")}
        assert all(after[n] == t for n, t in before.items())  # frames from before the crash kept as they were
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.slow
def test_the_worked_example_step_runs_on_the_simulator(sim, tmp_path, repo):
    example = repo / "examples" / "custom_step"
    cfg = config_dict(sim.url, tmp_path, step_files=[str(example / "sky_offset_step.py")])
    app = create_app(config_from_dict(cfg), token=TOKEN)
    data = load_observing_file(example / "observing_file.yaml").to_dict()
    data["instrument"]["binning"] = [2, 2]
    with BackgroundServer(app) as server:
        client = SequencerClient(server.url, token=TOKEN)
        assert "sky_offset" in client.get("/steps")["steps"]
        result = run_and_wait(client, data)
    app.extensions["rosace_sequencer"].close()
    assert result["outcome"] == "completed", result["message"]
    steps = {}
    for path in result["frames"]:
        h = fits.getheader(path)
        steps.setdefault(h["ROSSTEP"], []).append(h["IMAGETYP"])
    assert steps == {"science": ["LIGHT"], "sky_offset": ["LIGHT"], "arcs_after": ["ARC"]}
