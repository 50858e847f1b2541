"""Hand-offs to the reduction and the bias/dark library, on the simulated observatory and a real reduction server.

An observation handed to the reduction while the library lacked one of its
darks is handed again, with the dark, once the library session has taken it
(in the same night, or after a restart of the sequencer); an observation whose
library frames already existed is handed once.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from astropy.io import fits

from rosace_core.config import config_from_dict
from rosace_core.observing_file import ObservingFile, load_observing_file
from rosace_core.resources import resource_path
from rosace_core.rest import BackgroundServer

from rosace_reduction.api import create_app as create_reduction_app
from rosace_sequencer import library
from rosace_sequencer.hardware import Control
from rosace_sequencer.service import Sequencer
from rosace_sim import devices_config
from rosace_sim.testing import SimObservatory

RED_TOKEN = "red-test-token"


@pytest.fixture
def sim():
    data = yaml.safe_load(resource_path("scenarios", "clear.yaml").read_text())
    data["clock"]["rate"] = 100.0
    data["shelter"]["start_open"] = True  # no dome module: the roof is simply open
    with SimObservatory(data) as s:
        yield s


@pytest.fixture
def reduction(tmp_path):
    """A real reduction REST server; ``reduction.jobs()`` lists its /reduce jobs in the order they came."""
    app = create_reduction_app(config_from_dict({"data": {"root": str(tmp_path / "reduction")},
                                                      "reduction": {"data_roots": [str(tmp_path)]}}), token=RED_TOKEN)
    runner = app.extensions["rosace_reduction"]["runner"]
    with BackgroundServer(app) as server:
        server.jobs = runner.list  # in submission order
        yield server
        for job in runner.list():  # no reduction left running after the test
            job.wait(120)


def sequencer(sim_url: str, root: Path, reduction_url: str) -> Sequencer:
    opts = {"use_scheduler": False, "hand_to_reduction": True, "backoff": 1.0, "retries": 2, "library_count": 1}
    cfg = {"devices": devices_config(sim_url, retries=1),
           "data": {"root": str(root)}, "sequencer": opts, "modules": {"reduction": {"url": reduction_url, "token": RED_TOKEN}}}
    return Sequencer(config_from_dict(cfg))


def observing_file(science_exposure: float, file_id: str, binning=(2, 2)) -> ObservingFile:
    data = load_observing_file(resource_path("observing_files", "be_gamcas_halpha_alpy.yaml")).to_dict()
    data["id"] = file_id
    data["instrument"]["binning"] = list(binning)  # quarter-size frames keep the tests quick
    data["sequence"].update({"science": {"count": 1, "exposure": science_exposure}, "bias_dark": "library",
                             "arcs": {"lamp": "NeAr", "exposure": 10, "count": 1, "when": "after"}})
    data["sequence"].pop("flats", None)
    data["acquisition"]["tolerance"] = 1.5  # acquisition is not what these tests are about
    return ObservingFile.model_validate(data)


def darks(paths: list[str]) -> dict[float, list[str]]:
    """The library darks among ``paths``, by exposure time."""
    out: dict[float, list[str]] = {}
    for p in paths:
        if "library" in Path(p).parts:
            h = fits.getheader(p)
            if h["IMAGETYP"] == "DARK":
                out.setdefault(float(h["EXPTIME"]), []).append(p)
    return out


def requests_for(jobs, observation_id: str) -> list:
    return [j for j in jobs if j.params.get("observation_id") == observation_id]


def finished(job, timeout: float = 120.0) -> dict:
    job.wait(timeout)
    out = job.to_dict()
    assert out["state"] == "succeeded", out
    return out["result"]


def test_an_observation_reduced_without_its_dark_is_handed_again_once_the_library_has_it(sim, tmp_path, reduction):
    seq = sequencer(sim.url, tmp_path / "data", reduction.url)
    try:
        # The library already holds what the 30 s observation needs (an earlier night's session);
        # it lacks the 40 s dark of the first observation.
        temp = float(seq.config.instrument.camera_set_point)
        earlier = [library.Need("BIAS", seq.options.bias_time, temp, (2, 2)), library.Need("DARK", 10.0, temp, (2, 2)),
                   library.Need("DARK", 30.0, temp, (2, 2))]
        assert len(library.take_missing(earlier, hw=seq.hw, journal=seq.journal, config=seq.config, detector=seq.detector,
                                        options=seq.options, control=Control(), raw_root=seq.raw_root)) == 3
        job = seq.start_night([observing_file(40, "be-gamcas-40s"), observing_file(30, "be-gamcas-30s")])
        job.wait(240)
        night = job.to_dict()
        assert night["state"] == "succeeded", night
        assert night["result"]["completed"] == 2 and night["result"]["handed_again"] == 1
        first, second = sorted(seq.journal.history(), key=lambda h: h["started"])
        assert first["state"] == second["state"] == "completed"
        jobs = reduction.jobs()
        sent_first = requests_for(jobs, first["observation_id"])
        sent_second = requests_for(jobs, second["observation_id"])
        assert len(sent_first) == 2 and len(sent_second) == 1  # met at its hand-off: never sent again
        assert jobs.index(sent_first[1]) > jobs.index(sent_second[0])  # handed again after the night's library session
        before, again = sent_first[0].params["frames"], sent_first[1].params["frames"]
        own = sorted(first["frames"])
        assert sorted(p for p in before if p in own) == sorted(p for p in again if p in own) == own
        assert sorted(darks(before)) == [10.0]  # the 40 s dark did not exist yet
        assert sorted(darks(again)) == [10.0, 40.0] and all(Path(p).exists() for p in darks(again)[40.0])
        assert sorted(darks(sent_second[0].params["frames"])) == [10.0, 30.0]
        assert seq.outbox.wait_drained(180)  # recorded in the journal once the reduction has finished it
        assert seq.journal.handoff(first["observation_id"])["unmet"] == []
        assert seq.journal.handoff(first["observation_id"])["count"] == 2
    finally:
        seq.close()


def test_a_restart_between_the_hand_off_and_the_library_session_loses_nothing(sim, tmp_path, reduction):
    seq = sequencer(sim.url, tmp_path / "data", reduction.url)
    try:
        job = seq.run_file(observing_file(40, "be-gamcas-40s"))
        job.wait(120)
        outcome = job.to_dict()["result"]
        assert outcome["outcome"] == "completed", outcome
        oid = outcome["observation_id"]
        assert len(seq.journal.handoff(oid)["unmet"]) == 3  # an empty library: bias, 10 s and 40 s darks
    finally:
        seq.close()
    assert len(requests_for(reduction.jobs(), oid)) == 1
    seq = sequencer(sim.url, tmp_path / "data", reduction.url)  # a new process: only the journal remembers
    try:
        job = seq.start_night([])  # no files: the night ends at once and completes the library
        job.wait(120)
        night = job.to_dict()
        assert night["state"] == "succeeded", night
        assert night["result"]["library_frames"] == 3 and night["result"]["handed_again"] == 1
        sent = requests_for(reduction.jobs(), oid)
        assert len(sent) == 2
        again = sent[1].params["frames"]
        assert sorted(darks(again)) == [10.0, 40.0]
        assert sum(fits.getheader(p)["IMAGETYP"] == "BIAS" for p in again) == 1
        assert seq.outbox.wait_drained(180)
        assert seq.journal.handoff(oid)["unmet"] == []
        # a later session has nothing left to hand again
        seq._library_session(Control())
        assert len(requests_for(reduction.jobs(), oid)) == 2
    finally:
        seq.close()


def test_the_reduction_reduces_the_observation_again_with_the_dark_into_the_same_product(sim, tmp_path, reduction):
    # What the reduction makes of the second hand-off. Full-size frames: the reduction
    # does not find the trace on 2x2-binned frames (it looks at the set-up's unbinned trace_row).
    seq = sequencer(sim.url, tmp_path / "data", reduction.url)
    try:
        job = seq.run_file(observing_file(40, "be-gamcas-40s", binning=(1, 1)))
        job.wait(180)
        outcome = job.to_dict()["result"]
        assert outcome["outcome"] == "completed", outcome
        oid = outcome["observation_id"]
        job = seq.start_night([])  # the night ends at once and completes the library
        job.wait(180)
        assert job.to_dict()["state"] == "succeeded", job.to_dict()
    finally:
        seq.close()
    first, again = requests_for(reduction.jobs(), oid)
    r1, r2 = finished(first, 300), finished(again, 300)
    s1, s2 = r1["spectra"][0], r2["spectra"][0]
    # the inputs changed (bias and darks added): reduced again, not "skipped", into the same files
    assert s1["status"] == "reduced" and s2["status"] == "reduced", (s1, s2)
    assert s1["fits"] == s2["fits"] and s1["id"] == s2["id"]
    from rosace_reduction.client import ReductionClient

    record = ReductionClient(reduction.url, token=RED_TOKEN).result(s2["id"])
    assert record["calibrations"]["bias"] and sorted(darks(record["calibrations"]["dark"])) == [10.0, 40.0]
    assert [r["id"] for r in ReductionClient(reduction.url, token=RED_TOKEN).results(observation_id=oid)] == [s2["id"]]
