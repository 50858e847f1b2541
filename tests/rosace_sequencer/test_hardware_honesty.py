"""Hardware honesty against the simulator over HTTP: the sequencer touches only the configured lamp
channels of a switch box that carries other things, looks the channels up again after a reconnect,
and uses what the devices say they can do (no pulse guiding, no cooling).
"""

from __future__ import annotations


import pytest
from astropy.io import fits

from rosace_core.config import config_from_dict
from rosace_core.errors import DeviceError
from rosace_core.rest import BackgroundServer
from rosace_sequencer.api import create_app
from rosace_sequencer.client import SequencerClient
from rosace_sequencer.hardware import Hardware
from rosace_sim import devices_config
from rosace_sim.testing import SimObservatory

from tests.rosace_sequencer.test_with_sim import TOKEN, config_dict, run_and_wait, scenario, small_file

#: A box as found in observatories: the lamps beside the mount's power and a dew-heater dimmer.
BOX = [
    {"name": "Mount power", "description": "12 V outlet of the mount", "value": 1},
    {"name": "tungsten", "lamp": "tungsten"},
    {"name": "Dew heater", "description": "PWM dimmer", "max": 255, "value": 128},
    {"name": "NeAr", "lamp": "NeAr"},
]


def box_scenario(**extra) -> dict:
    data = scenario()
    data["switch"] = {"channels": BOX}
    data.update(extra)
    return data


@pytest.mark.slow
def test_a_full_observation_switches_only_the_lamp_channels_and_uses_the_devices_capabilities(tmp_path):
    data = box_scenario()
    data["telescope"] = {**data.get("telescope", {}), "can_pulse_guide": False}
    data["spectro_camera"] = {**data.get("spectro_camera", {}), "cooled": False}
    with SimObservatory(data) as sim:
        cfg = config_dict(sim.url, tmp_path)
        cfg["devices"]["switch"]["lamps"] = {"arc": 3, "flat": "tungsten"}  # one by channel id, one by name
        app = create_app(config_from_dict(cfg), token=TOKEN)
        try:
            with BackgroundServer(app) as server:
                client = SequencerClient(server.url, token=TOKEN)
                file = small_file(arcs={"when": "bracket", "exposure": 2, "count": 1}, flats={"lamp": "tungsten", "count": 1, "exposure": 5})
                result = run_and_wait(client, file)
        finally:
            app.extensions["rosace_sequencer"].close()
        assert result["outcome"] == "completed", result["message"]
        lamps = {}
        for path in result["frames"]:
            with fits.open(path) as hdul:
                h = hdul[0].header
                lamps.setdefault(h["IMAGETYP"], []).append(h["LAMP"])
                assert "SET-TEMP" not in h  # an uncooled camera: no set point claimed
                truth = sim.control.truth(h["SIMTRUTH"])
                assert truth["frame"]["lamp"] == h["LAMP"]  # the light really was that lamp's, on its own channel
        assert lamps == {"ARC": ["NeAr", "NeAr"], "LIGHT": ["none", "none"], "FLAT": ["tungsten"]}
        # The mount could not pulse-guide: no acquisition moves, said in the result.
        assert "CanPulseGuide" in result["info"]["acquisition"]["skipped"]
        box = sim.observatory.switch
        assert box._changed[0] is None and box._changed[2] is None  # never written, not even "set again"
        channels = {c["name"]: c["value"] for c in box.snapshot()["channels"]}
        assert channels == {"Mount power": 1.0, "tungsten": 0.0, "Dew heater": 128.0, "NeAr": 0.0}
        assert box._changed[1] is not None and box._changed[3] is not None


def test_lamp_channels_are_looked_up_again_after_a_reconnect(tmp_path):
    first = SimObservatory(box_scenario()).start()
    port = first.port
    try:
        hw = Hardware(config_from_dict({"devices": devices_config(first.url, retries=1)}))
        hw.connect("switch")
        hw.set_lamp("NeAr")
        assert first.observatory.switch.lamp_on() == "NeAr" and first.observatory.switch._value[3] == 1.0
        hw.set_lamp(None)
    finally:
        first.stop()
    # The box is rewired (the server restarts with NeAr on channel 0, the mount's power on 3).
    rewired = box_scenario()
    rewired["switch"] = {"channels": list(reversed(BOX))}
    second = SimObservatory(rewired, port=port).start()
    try:
        hw.reconnect()
        hw.set_lamp("NeAr")
        box = second.observatory.switch
        assert box.lamp_on() == "NeAr" and box._value[0] == 1.0
        assert box._changed[3] is None and box._value[3] == 1.0  # the mount's power, untouched
        assert box._changed[1] is None and box._value[1] == 128.0  # the dimmer, untouched
    finally:
        second.stop()


def test_a_lamp_the_box_does_not_have_is_a_clear_error_and_nothing_is_switched(tmp_path):
    with SimObservatory(box_scenario()) as sim:
        devices = devices_config(sim.url, retries=1)
        devices["switch"]["lamps"] = {"arc": "ThAr", "flat": "tungsten"}
        hw = Hardware(config_from_dict({"devices": devices}))
        hw.connect("switch")
        with pytest.raises(DeviceError, match=r"lamp 'arc' is channel 'ThAr' in \[devices.switch\] lamps, but the switch has no "
                                              r"channel of that name \(channels: 0 'Mount power', 1 'tungsten', 2 'Dew heater', 3 'NeAr'\)"):
            hw.set_lamp(None)
        devices["switch"]["lamps"] = {"flat": "tungsten"}
        hw = Hardware(config_from_dict({"devices": devices}))
        with pytest.raises(DeviceError, match=r"no lamp 'NeAr' among the configured lamps \(flat = 'tungsten'\)"):
            hw.set_lamp("NeAr")
        assert all(c is None for c in sim.observatory.switch._changed)


def test_a_mount_that_cannot_park_or_works_in_b1950_is_refused_clearly(tmp_path):
    data = box_scenario()
    data["telescope"] = {**data.get("telescope", {}), "can_park": False, "equatorial_system": 4, "start_parked": False}
    with SimObservatory(data) as sim:
        hw = Hardware(config_from_dict({"devices": devices_config(sim.url, retries=1)}))
        hw.connect("telescope")
        assert hw.caps["telescope"]["can_park"] is False and hw.caps["telescope"]["equatorial_system"] == 4
        from rosace_sequencer.hardware import Control

        with pytest.raises(DeviceError, match=r"cannot park \(CanPark false\)"):
            hw.park(timeout=10)
        with pytest.raises(DeviceError, match=r"B1950 coordinates \(EquatorialSystem 4\)"):
            hw.slew(14.18, 60.72, timeout=10, settle=0, control=Control())
        assert not sim.observatory.telescope.get_slewing()
