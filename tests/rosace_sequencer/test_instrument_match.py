"""An Observing File is observed only with what the mounted set-up has (rosace_core.instrument), over real HTTP to the simulator."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from rosace_core.config import config_from_dict
from rosace_core.resources import resource_path
from rosace_core.rest import BackgroundServer
from rosace_sequencer.api import create_app
from rosace_sequencer.client import SequencerClient
from rosace_sequencer.frames import FrameInfo, build_header, load_setup
from rosace_sequencer.hardware import Hardware
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


def test_gain_comes_from_the_camera_when_the_set_up_file_does_not_give_it(tmp_path):
    """The simulator's camera reports ElectronsPerADU (its set-up's 0.8); a file without gain takes it, RDNOISE stays out."""
    text = resource_path("instruments", "alpy600.toml").read_text(encoding="utf-8")
    path = tmp_path / "nogain.toml"
    path.write_text(text.replace("gain = 0.8", "").replace("read_noise = 9.0", ""), encoding="utf-8")
    detector = load_setup(str(path))
    assert detector.gain is None and detector.read_noise is None
    info = FrameInfo(imagetyp="BIAS", exptime=0.0, date_obs=datetime(2026, 1, 10, 21, 0, tzinfo=timezone.utc), obj="bias")
    with SimObservatory(scenario()) as sim:
        config = config_from_dict(config_dict(sim.url, tmp_path))
        hw = Hardware(config)
        hw.connect("camera")
        header = build_header(info, config, detector, camera=hw.caps.get("camera"))
    assert header["GAIN"] == 0.8 and "ElectronsPerADU" in header.comments["GAIN"]
    assert "RDNOISE" not in header
    assert build_header(info, config, load_setup("alpy600"), camera={"electrons_per_adu": 2.0})["GAIN"] == 0.8  # the file wins
    assert "GAIN" not in build_header(info, config, detector, camera={"electrons_per_adu": None})
