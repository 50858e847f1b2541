"""examples/grating_angle: a LHIRES grating-angle step moves a real Alpaca focuser.

The step file is named in ``[sequencer] step_files``, the motor is an extra device
``[devices.grating] type = "focuser"`` pointing at the simulated observatory's
Focuser 0, and the example's Observing File runs through the sequencer's REST API.
The focuser's position is then read over Alpaca by a separate client.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from rosace_core.alpaca import Focuser
from rosace_core.config import config_from_dict
from rosace_core.errors import RosaceError
from rosace_core.observing_file import load_observing_file
from rosace_core.resources import resource_path
from rosace_core.rest import BackgroundServer
from rosace_sequencer.api import create_app
from rosace_sequencer.client import SequencerClient
from rosace_sim import devices_config
from rosace_sim.testing import SimObservatory

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "grating_angle"
TOKEN = "grating-test"
H_ALPHA_STEPS = 47412  # 6563 A between the table's 6562.8 A (47410) and 6678.2 A (48510)


@pytest.fixture(scope="module")
def grating_step():
    sys.path.insert(0, str(EXAMPLE))
    try:
        import grating_step

        yield grating_step
    finally:
        sys.path.remove(str(EXAMPLE))
        sys.modules.pop("grating_step", None)


def test_the_table_maps_wavelengths_to_steps_and_refuses_outside_it(grating_step):
    table = grating_step.load_table()
    assert table.device == "grating" and table.backlash == 300
    assert table.position(6563.0) == H_ALPHA_STEPS
    assert table.position(4861.3) == 31240 and table.position(5368.45) == 36055  # half-way H-beta - He I 5876
    with pytest.raises(RosaceError, match=r"grating_table.toml: central_wavelength 7000 A is outside the measured points \(4861.3-6678.2 A\)"):
        table.position(7000.0)


@pytest.mark.parametrize("text, where", [
    ("[[points]]\nwavelength = 6563\nsteps = 1\n", "points: at least two"),
    ("[[points]]\nwavelength = 6563\nsteps = 1\n[[points]]\nwavelength = 6500\nsteps = 2\n", "wavelengths must increase"),
    ("[[points]]\nwavelength = 6563\nsteps = 1\n[[points]]\nwavelength = 6600\nstep = 2\n", "points[2].steps: a number is needed"),
    ("backlash = -5\n[[points]]\nwavelength = 6563\nsteps = 1\n[[points]]\nwavelength = 6600\nsteps = 2\n", "backlash: a whole number"),
    ("points = [\n", "not valid TOML"),
])
def test_a_bad_table_is_refused_naming_the_file_and_the_field(grating_step, tmp_path, text, where):
    path = tmp_path / "my_table.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RosaceError) as err:
        grating_step.load_table(path)
    assert str(err.value).startswith(str(path)) and where in str(err.value)


@pytest.fixture(scope="module")
def sim():
    scenario = yaml.safe_load(resource_path("scenarios", "clear.yaml").read_text())
    scenario["clock"]["rate"] = 100.0
    scenario["shelter"]["start_open"] = True  # no dome module here: the roof is simply open
    scenario["instrument"] = "lhires2400"
    scenario["focuser"] = {"position": 50000, "speed": 2000}
    with SimObservatory(scenario) as s:
        yield s


@pytest.fixture(scope="module")
def sequencer(sim, tmp_path_factory):
    root = tmp_path_factory.mktemp("grating")
    devices = devices_config(sim.url, retries=1)
    devices["grating"] = {"type": "focuser", "url": sim.url, "device_number": 0, "retries": 1, "title": "LHIRES grating motor"}
    config = config_from_dict({
        "devices": devices, "data": {"root": str(root)}, "instrument": {"spectrograph": str(EXAMPLE / "lhires2400.toml")},  # the motorised set-up: H-beta is in reach
        "sequencer": {"use_scheduler": False, "hand_to_reduction": False, "backoff": 1.0, "retries": 2,
                      "step_files": [str(EXAMPLE / "grating_step.py")]},
    })
    app = create_app(config, token=TOKEN)
    with BackgroundServer(app) as server:
        yield SequencerClient(server.url, token=TOKEN)
    app.extensions["rosace_sequencer"].close()


def observe(client, **instrument) -> dict:
    data = load_observing_file(EXAMPLE / "observing_file.yaml").to_dict()
    data["instrument"]["binning"] = [2, 2]  # quarter-size frames keep the test quick
    data["instrument"].update(instrument)
    job = client.run(data)
    done = client.wait_job(job["id"], timeout=180, poll=0.2)
    assert done["state"] == "succeeded", done
    return done["result"]


def focuser_position(sim) -> int:
    focuser = Focuser(sim.url, 0)  # a client of its own, as another program would read it
    focuser.connect()
    assert not focuser.is_moving
    return focuser.position


@pytest.mark.slow
def test_the_step_turns_the_grating_for_the_files_wavelength(sequencer, sim):
    assert "grating_angle" in sequencer.get("/steps")["steps"]
    result = observe(sequencer)
    assert result["outcome"] == "completed", result["message"]
    assert focuser_position(sim) == H_ALPHA_STEPS
    # from 50000 down to 47412: below by the backlash first, then up onto the position
    assert result["info"]["grating"]["from"] == 50000
    assert result["info"]["grating"]["moves"] == [H_ALPHA_STEPS - 300, H_ALPHA_STEPS]
    assert sorted(Path(p).name.split("_")[-2] for p in result["frames"]) == ["ARC", "LIGHT"]

    # H-beta next: a move down again, and the frames of this file come after the turn
    result = observe(sequencer, central_wavelength=4861.3)
    assert result["outcome"] == "completed", result["message"]
    assert focuser_position(sim) == 31240

    # outside the measured table: the observation fails before any frame, naming the table and the range; the grating stays
    result = observe(sequencer, central_wavelength=7200)
    assert result["outcome"] == "failed"
    assert "grating_table.toml: central_wavelength 7200 A is outside the measured points (4861.3-6678.2 A)" in result["message"]
    assert result["frames"] == [] and focuser_position(sim) == 31240
