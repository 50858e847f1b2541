"""An Observing File is observed only with what the mounted set-up has (rosace_core.instrument), over real HTTP to the simulator."""

from __future__ import annotations

import pytest

from rosace_core.config import config_from_dict
from rosace_core.rest import BackgroundServer
from rosace_sequencer.api import create_app
from rosace_sequencer.client import SequencerClient
from rosace_sim.testing import SimObservatory
from tests.rosace_sequencer.test_with_sim import TOKEN, config_dict, scenario, small_file


@pytest.fixture
def seq(tmp_path):
    with SimObservatory(scenario()) as sim:
        app = create_app(config_from_dict(config_dict(sim.url, tmp_path)), token=TOKEN)
        with BackgroundServer(app) as server:
            yield SequencerClient(server.url, token=TOKEN)
            app.extensions["rosace_sequencer"].close()


def _run(client, file: dict) -> dict:
    job = client.run(file)
    done = client.wait_job(job["id"], timeout=120.0, poll=0.2)
    assert done["state"] == "succeeded", done
    return done["result"]


def test_a_grating_the_mounted_set_up_has_not_is_refused_with_the_field_named(seq):
    wrong = small_file(science={"count": 1, "exposure": 10})
    wrong["instrument"]["grating"] = "1200 l/mm"
    result = _run(seq, wrong)
    assert result["outcome"] == "failed" and not result["frames"]
    assert "instrument.grating '1200 l/mm'" in result["message"] and "600 l/mm" in result["message"]
    assert any("instrument.grating" in line["message"] for line in seq.log())
