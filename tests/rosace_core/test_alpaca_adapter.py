"""The Alpaca adapter against a real Alpaca server: ROSACE's simulated observatory over HTTP."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rosace_core import alpaca
from rosace_core.alpaca import ShutterState
from rosace_core.errors import DeviceError, DeviceNotConnected, InvalidOperation
from rosace_sim.testing import SimObservatory, wait_for


@pytest.fixture(scope="module")
def sim():
    scenario = {"clock": {"start": "2025-01-15T21:00:00Z", "rate": 20.0}, "shelter": {"type": "rolloff", "shutter_time": 10}}
    with SimObservatory(scenario) as s:
        yield s


def test_roof_opens_and_closes_as_a_transition(sim):
    dome = alpaca.Dome(sim.url, 0)
    dome.connect()
    assert dome.connected
    assert dome.shutter == ShutterState.CLOSED
    dome.open_shutter()
    assert dome.shutter in (ShutterState.OPENING, ShutterState.OPEN)
    assert wait_for(lambda: dome.shutter == ShutterState.OPEN, timeout=10)
    dome.close_shutter()
    assert wait_for(lambda: dome.shutter == ShutterState.CLOSED, timeout=10)


def test_mount_park_unpark_slew_and_errors(sim):
    mount = alpaca.Telescope(sim.url, 0)
    mount.connect()
    if not mount.at_park:
        mount.park()
        assert wait_for(lambda: mount.at_park, timeout=20)
    with pytest.raises(InvalidOperation):
        mount.slew_to(14.18, 60.72)
    mount.unpark()
    mount.tracking = True
    mount.slew_to(14.18, 60.72)
    assert wait_for(lambda: not mount.slewing, timeout=20)
    assert mount.ra == pytest.approx(14.18, abs=0.05)
    assert mount.dec == pytest.approx(60.72, abs=0.05)
    assert 0 < mount.altitude < 90


def test_camera_image_is_a_numpy_array_of_the_sensor_shape(sim):
    cam = alpaca.Camera(sim.url, 0)
    cam.connect()
    cam.set_binning(2, 2)
    cam.start_exposure(0.001, light=False)
    assert wait_for(lambda: cam.image_ready, timeout=20)
    img = cam.read_image()
    nx, ny = cam.sensor_size
    assert isinstance(img, np.ndarray)
    assert img.shape == (ny // 2, nx // 2)
    assert 500 < float(np.median(img)) < 5000  # a bias level, not zeros
    cam.set_binning(1, 1)


def test_switch_lamps_by_name(sim):
    sw = alpaca.Switch(sim.url, 0)
    sw.connect()
    assert {"NeAr", "tungsten"} <= set(sw.names())
    sw.set_lamp("NeAr", True)
    assert sw.states()["NeAr"] is True
    sw.set_lamp("NeAr", False)
    with pytest.raises(DeviceError, match="no switch named"):
        sw.index("Hg")


def test_weather_readings_have_values_and_ages(sim):
    oc = alpaca.ObservingConditions(sim.url, 0)
    oc.connect()
    readings = oc.readings(["cloud_cover", "rain_rate", "humidity"])
    assert all(r.value is not None and r.age is not None and r.age >= 0 for r in readings.values())
    sm = alpaca.SafetyMonitor(sim.url, 0)
    sm.connect()
    assert sm.is_safe is True


def test_disconnected_device_raises_rosace_error(sim):
    sim.control.inject_fault("camera", "disconnect", device_number=1, duration=None)
    try:
        cam = alpaca.Camera(sim.url, 1, retries=1)
        with pytest.raises(DeviceError):
            cam.start_exposure(1.0)
    finally:
        sim.control.clear_faults()


def test_unreachable_server_is_not_connected_after_retries():
    cam = alpaca.Camera("http://127.0.0.1:9", 0, retries=2, retry_delay=0.05)
    start = time.monotonic()
    with pytest.raises(DeviceNotConnected, match="no answer after 2 attempt"):
        _ = cam.ccd_temperature
    assert time.monotonic() - start < 10


def test_a_device_missing_on_the_server_is_named_at_connect(sim):
    cam = alpaca.Camera(sim.url, 7, retries=3, retry_delay=0.05, name="guide camera")
    with pytest.raises(DeviceError, match=r"guide camera: no camera number 7 on the Alpaca server .*device_number"):
        cam.connect()


def test_an_older_device_failing_to_connect_is_a_named_retried_error_not_a_type_error(sim):
    # A Platform 6 switch (InterfaceVersion 2): alpyca's Connect emulation re-raised its
    # failure as TypeError('NotImplementedException.__init__() ...'), naming no device.
    switch = sim.observatory.switch
    switch.interface_version = 2
    sim.control.inject_fault("switch", "disconnect")
    try:
        sw = alpaca.Switch(sim.url, 0, retries=2, retry_delay=0.05, name="calibration lamps")
        with pytest.raises(DeviceNotConnected, match=r"calibration lamps: connect failed after 2 attempt\(s\)"):
            sw.connect()
        sim.control.clear_faults()
        sw.connect()  # the older path (Connected=True) works once the device answers
        assert sw.connected
    finally:
        sim.control.clear_faults()
        del switch.interface_version


def test_capabilities_are_read_at_connect(sim):
    mount = alpaca.Telescope(sim.url, 0)
    mount.connect()
    caps = mount.capabilities()
    assert caps["can_park"] is True and caps["can_pulse_guide"] is True and caps["equatorial_system"] == 1
    assert caps["guide_rate_ra"] * 3600 == pytest.approx(7.52, abs=0.01)
    cam = alpaca.Camera(sim.url, 0)
    cam.connect()
    caps = cam.capabilities()
    assert (caps["sensor_x"], caps["sensor_y"]) == cam.sensor_size and caps["can_set_ccd_temperature"] is True
    assert caps["max_adu"] == 65535 and caps["readout_modes"]
    sw = alpaca.Switch(sim.url, 0)
    sw.connect()
    channels = sw.capabilities()["channels"]
    assert [c["name"] for c in channels] == ["NeAr", "tungsten"] and all(c["can_write"] for c in channels)
