"""An observation interrupted by the weather: its frames reach a real reduction server and come back flagged PARTIAL."""

from __future__ import annotations

import time

import pytest
from astropy.io import fits

from rosace_core.config import config_from_dict
from rosace_core.rest import BackgroundServer
from rosace_reduction.api import create_app as create_reduction_app
from rosace_sequencer.service import Sequencer
from rosace_sim import devices_config
from rosace_sim.testing import SimObservatory

from tests.rosace_sequencer.test_reduction_handoff import RED_TOKEN, observing_file
from tests.rosace_sequencer.test_with_sim import scenario, wait_for


@pytest.mark.slow
def test_frames_of_an_interrupted_observation_are_reduced_as_partial(tmp_path):
    red_app = create_reduction_app(config_from_dict({"data": {"root": str(tmp_path / "reduction")},
                                                      "reduction": {"data_roots": [str(tmp_path)]}}), token=RED_TOKEN)
    runner = red_app.extensions["rosace_reduction"]["runner"]
    with SimObservatory(scenario()) as sim, BackgroundServer(red_app) as red:
        opts = {"use_scheduler": False, "hand_to_reduction": True, "backoff": 1.0, "retries": 2, "safety_poll": 5.0}
        seq = Sequencer(config_from_dict({"devices": devices_config(sim.url, retries=1), "data": {"root": str(tmp_path)},
                                          "sequencer": opts, "modules": {"reduction": {"url": red.url, "token": RED_TOKEN}}}))
        try:
            of = observing_file(300.0, "be-gamcas-partial")
            data = of.to_dict()
            data["sequence"].update({"science": {"count": 4, "exposure": 300}, "bias_dark": "none",
                                     "arcs": {"lamp": "NeAr", "exposure": 2, "count": 1, "when": "before"}})
            of = type(of).model_validate(data)
            job = seq.run_file(of)
            wait_for(lambda: ((seq.status().get("observation") or {}).get("frame") or "") == "LIGHT 3/4", timeout=120, poll=0.05)
            time.sleep(0.3)
            sim.control.set_weather(safe=False, rain_rate=2.0)  # a shower: two science frames are on disk
            job.wait(60)
            result = job.result
            assert result["outcome"] == "interrupted" and result["message"].startswith("unsafe"), result
            assert result["info"]["partial"]["science_frames"] == 2 and result["info"]["partial"]["planned_frames"] == 4
            reduce_job = wait_for(lambda: runner.list(), timeout=30)[0]
            reduce_job.wait(180)
            assert reduce_job.state == "succeeded", reduce_job.to_dict()
            (spectrum,) = reduce_job.result["spectra"]
            assert spectrum["status"] == "reduced", spectrum
            assert spectrum["partial"] is True and "partial" in spectrum["flags"]
            assert spectrum["observation_id"] == result["observation_id"]
            header = fits.getheader(spectrum["fits"])
            assert header["PARTIAL"] is True and "2 of 4 science frames" in header.comments["PARTIAL"]
            assert header["EXPTIME"] == pytest.approx(600.0)  # what was taken, not what was planned
        finally:
            seq.close()
            for j in runner.list():
                j.wait(120)
