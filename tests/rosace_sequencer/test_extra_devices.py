"""Extra devices reach the steps by name: ``Hardware.device`` / ``ctx.devices`` against the simulator's Focuser."""

from __future__ import annotations

import pytest

from rosace_core.alpaca import Focuser
from rosace_core.config import config_from_dict
from rosace_core.errors import DeviceTimeout, RosaceError
from rosace_sequencer.hardware import Hardware
from rosace_sequencer.steps import _DeviceMap
from rosace_sim import devices_config
from rosace_sim.testing import SimObservatory


@pytest.fixture(scope="module")
def sim():
    # a slow motor on a real-time clock: a move of 10000 steps takes 100 s
    scenario = {"clock": {"start": "2025-01-15T21:00:00Z", "rate": 1.0}, "focuser": {"position": 1000, "speed": 100}}
    with SimObservatory(scenario) as s:
        yield s


@pytest.fixture
def hw(sim):
    devices = devices_config(sim.url, retries=1)
    devices["grating"] = {"type": "focuser", "url": sim.url, "device_number": 0, "retries": 1}
    return Hardware(config_from_dict({"devices": devices}))


def test_a_device_by_name_is_made_from_its_type_and_connected_once(hw):
    motor = hw.device("grating")
    assert isinstance(motor, Focuser) and motor.connected and hw.device("grating") is motor
    assert hw.device("telescope") is hw.telescope  # the roles too, by their [devices] names
    devices = _DeviceMap(hw)
    assert "grating" in list(devices) and devices["grating"] is motor and len(devices) == 6
    with pytest.raises(KeyError):
        devices["mirror"]
    with pytest.raises(RosaceError, match=r"no device 'gratin' in the configuration's \[devices\]; known: telescope, .*, grating"):
        hw.device("gratin")


def test_move_to_reaches_the_position_and_a_move_that_does_not_end_is_halted(hw, sim):
    motor = hw.device("grating")
    waits = []
    assert motor.move_to(1050, poll=0.1, wait=lambda s: (waits.append(s), __import__("time").sleep(s))) == 1050
    assert waits  # it waited for the move, through the given wait
    with pytest.raises(DeviceTimeout, match="move to 90000: still moving after 0.3 s \\(halted\\)"):
        motor.move_to(90000, timeout=0.3, poll=0.1)
    assert not motor.is_moving and 1050 < motor.position < 90000  # halted part-way
