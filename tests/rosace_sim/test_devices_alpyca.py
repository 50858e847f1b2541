"""alpyca, the official Alpaca client, drives every simulated device."""

from __future__ import annotations

import time

import numpy as np
import pytest
from alpaca import exceptions as ax
from alpaca.camera import Camera
from alpaca.dome import Dome, ShutterState
from alpaca.observingconditions import ObservingConditions
from alpaca.safetymonitor import SafetyMonitor
from alpaca.switch import Switch
from alpaca.telescope import GuideDirections, Telescope

from rosace_core import alpaca as ra
from rosace_core.clock import get_clock

from rosace_sim.testing import wait_for

COMMON = ["Connected", "Description", "DriverInfo", "DriverVersion", "InterfaceVersion", "Name", "SupportedActions", "DeviceState", "Connecting"]


def _addr(sim):
    return sim.url.split("://", 1)[1]


def _read_all(dev, names):
    """Read every property; return name -> value (NotImplemented recorded as such)."""
    values = {}
    for name in names:
        try:
            values[name] = getattr(dev, name)
        except ax.NotImplementedException:
            values[name] = NotImplemented
    return values


def test_connect_and_common_members(sim):
    for cls, number, iface in ((Dome, 0, 3), (Telescope, 0, 4), (Camera, 0, 4), (Camera, 1, 4), (Switch, 0, 3), (SafetyMonitor, 0, 3), (ObservingConditions, 0, 2)):
        dev = cls(_addr(sim), number)
        dev.Connect()
        assert dev.Connecting is False
        assert dev.Connected is True
        values = _read_all(dev, COMMON)
        assert values["InterfaceVersion"] == iface
        assert values["Name"].startswith("ROSACE sim")
        assert isinstance(values["DeviceState"], list) and values["DeviceState"]
        assert all(isinstance(item["Value"], (bool, int, float)) for item in values["DeviceState"])


def test_not_connected_is_an_ascom_error(sim):
    dev = Switch(_addr(sim), 0)
    dev.Disconnect()
    with pytest.raises(ax.NotConnectedException):
        dev.GetSwitch(0)
    dev.Connect()
    assert dev.GetSwitch(0) in (True, False)


def test_roof_opens_and_closes_in_realistic_time(sim):
    dome = Dome(_addr(sim), 0)
    dome.Connect()
    values = _read_all(dome, ["CanSetShutter", "CanSetAzimuth", "CanPark", "CanFindHome", "CanSlave", "CanSyncAzimuth", "CanSetAltitude", "CanSetPark", "AtHome", "AtPark", "Slewing", "Slaved", "ShutterStatus", "Azimuth", "Altitude"])
    assert values["CanSetShutter"] is True and values["CanSetAzimuth"] is False
    assert values["Azimuth"] is NotImplemented  # roll-off roof: no azimuth
    assert dome.ShutterStatus == ShutterState.shutterClosed
    t0 = get_clock().now()
    dome.OpenShutter()
    assert dome.ShutterStatus == ShutterState.shutterOpening
    assert dome.Slewing is True
    wait_for(lambda: dome.ShutterStatus == ShutterState.shutterOpen, timeout=10)
    elapsed = (get_clock().now() - t0).total_seconds()
    assert 18.0 <= elapsed <= 26.0  # the scenario's 20 s shutter, in simulated seconds
    dome.CloseShutter()
    assert dome.ShutterStatus == ShutterState.shutterClosing
    wait_for(lambda: dome.ShutterStatus == ShutterState.shutterClosed, timeout=10)


def test_telescope_slew_track_park_and_pulse_guide(sim):
    tel = Telescope(_addr(sim), 0)
    tel.Connect()
    names = ["AlignmentMode", "Altitude", "ApertureArea", "ApertureDiameter", "AtHome", "AtPark", "Azimuth", "CanFindHome", "CanPark",
             "CanPulseGuide", "CanSetDeclinationRate", "CanSetGuideRates", "CanSetPark", "CanSetPierSide", "CanSetRightAscensionRate",
             "CanSetTracking", "CanSlew", "CanSlewAltAz", "CanSlewAltAzAsync", "CanSlewAsync", "CanSync", "CanSyncAltAz", "CanUnpark",
             "Declination", "DeclinationRate", "DoesRefraction", "EquatorialSystem", "FocalLength", "GuideRateDeclination",
             "GuideRateRightAscension", "IsPulseGuiding", "RightAscension", "RightAscensionRate", "SideOfPier", "SiderealTime",
             "SiteElevation", "SiteLatitude", "SiteLongitude", "Slewing", "SlewSettleTime", "Tracking", "TrackingRate", "TrackingRates", "UTCDate"]
    values = _read_all(tel, names)
    assert values["AtPark"] is True and values["CanSlewAsync"] is True and values["CanPulseGuide"] is True
    assert abs(values["SiteLatitude"] - 43.75) < 1e-9
    with pytest.raises(ax.ParkedException):
        tel.SlewToCoordinatesAsync(5.6274, 21.14)
    tel.Unpark()
    assert tel.AtPark is False and tel.Tracking is True
    # A target below the horizon is refused.
    lst = tel.SiderealTime
    with pytest.raises(ax.InvalidOperationException, match="horizon"):
        tel.SlewToCoordinatesAsync((lst + 12) % 24, -30.0)
    # zet Tau is high in the south-east at 20 h UTC in January.
    t0 = get_clock().now()
    tel.SlewToCoordinatesAsync(84.411189 / 15, 21.142549)
    assert tel.Slewing is True
    wait_for(lambda: not tel.Slewing, timeout=15)
    took = (get_clock().now() - t0).total_seconds()
    assert took > 2.0  # finite slew rate plus settle time
    assert abs(tel.RightAscension - 84.411189 / 15) < 1e-6 and abs(tel.Declination - 21.142549) < 1e-6
    assert 20 < tel.Altitude < 90
    # The real pointing differs from the reported one by a few arcseconds.
    err = sim.control.state()["devices"]["telescope/0"]["pointing_error_arcsec"]
    assert 0 < np.hypot(*err) < 60
    dec0 = tel.Declination
    tel.PulseGuide(GuideDirections.guideNorth, 1000)
    assert tel.IsPulseGuiding is True
    assert tel.Declination == pytest.approx(dec0 + tel.GuideRateDeclination * 1.0, abs=1e-9)
    wait_for(lambda: not tel.IsPulseGuiding, timeout=30)
    tel.Park()
    wait_for(lambda: tel.AtPark, timeout=30)
    assert tel.Tracking is False


def test_switch_lamps(sim):
    sw = Switch(_addr(sim), 0)
    sw.Connect()
    assert sw.MaxSwitch == 2
    assert [sw.GetSwitchName(i) for i in range(2)] == ["NeAr", "tungsten"]
    for i in range(2):
        assert sw.CanWrite(i) is True
        assert sw.MinSwitchValue(i) == 0.0 and sw.MaxSwitchValue(i) == 1.0 and sw.SwitchStep(i) == 1.0
        assert sw.GetSwitchDescription(i)
    sw.SetSwitch(0, True)
    assert sw.GetSwitch(0) is True and sw.GetSwitchValue(0) == 1.0
    sw.SetSwitchValue(0, 0.0)
    assert sw.GetSwitch(0) is False
    with pytest.raises(ax.InvalidValueException):
        sw.GetSwitch(5)


def test_safety_monitor_and_conditions(sim):
    sm = SafetyMonitor(_addr(sim), 0)
    sm.Connect()
    assert sm.IsSafe is True
    oc = ObservingConditions(_addr(sim), 0)
    oc.Connect()
    assert oc.CloudCover == 0.0 and oc.RainRate == 0.0 and oc.Humidity == 50.0 and oc.Temperature == 3.0
    for name in ("DewPoint", "Pressure", "SkyBrightness", "SkyQuality", "StarFWHM", "WindGust", "WindSpeed", "AveragePeriod"):
        assert isinstance(getattr(oc, name), float)
    for name in ("SkyTemperature", "WindDirection"):
        with pytest.raises(ax.NotImplementedException):
            getattr(oc, name)
    age = oc.TimeSinceLastUpdate("CloudCover")
    assert 0 <= age <= 30.0  # the station measures every 30 s
    assert oc.SensorDescription("RainRate")


def _expose(cam, seconds, light=True):
    cam.StartExposure(seconds, light)
    wait_for(lambda: cam.ImageReady, timeout=20)


def test_camera_properties_cooling_and_both_encodings(sim):
    cam = Camera(_addr(sim), 0)
    cam.Connect()
    names = ["BinX", "BinY", "CameraState", "CameraXSize", "CameraYSize", "CanAbortExposure", "CanAsymmetricBin", "CanFastReadout",
             "CanGetCoolerPower", "CanPulseGuide", "CanSetCCDTemperature", "CanStopExposure", "CCDTemperature", "CoolerOn", "CoolerPower",
             "ElectronsPerADU", "ExposureMax", "ExposureMin", "ExposureResolution", "FullWellCapacity", "HasShutter",
             "HeatSinkTemperature", "ImageReady", "MaxADU", "MaxBinX", "MaxBinY", "NumX", "NumY", "PixelSizeX", "PixelSizeY",
             "ReadoutMode", "ReadoutModes", "SensorName", "SensorType", "SetCCDTemperature", "StartX", "StartY", "Gain", "Offset"]
    values = _read_all(cam, names)
    assert (values["CameraXSize"], values["CameraYSize"]) == (3000, 2000)
    assert values["Gain"] is NotImplemented
    # Cooling: a first-order approach to the set point with the scenario's 60 s time constant.
    t_start = cam.CCDTemperature
    cam.SetCCDTemperature = -10.0
    cam.CoolerOn = True
    time.sleep(3.0)  # 60 simulated seconds: one time constant
    t_now = cam.CCDTemperature
    expected = -10.0 + (t_start + 10.0) * np.exp(-1.0)
    assert abs(t_now - expected) < 1.5
    assert cam.CoolerPower > 0
    # Binned subframe: the image has the subframe's shape.
    cam.BinX = 2
    cam.BinY = 2
    cam.StartX, cam.StartY, cam.NumX, cam.NumY = 100, 50, 300, 200
    _expose(cam, 0.0, light=False)
    rc = ra.Camera(sim.url, 0)
    img = rc.read_image()
    assert img.shape == (200, 300)
    # Both encodings give exactly the camera's (rows, columns) image.
    truth_image = sim.observatory.spectro_camera._image
    json_rows_cols = np.asarray(cam.ImageArray).T
    assert np.array_equal(img, truth_image)
    assert np.array_equal(json_rows_cols, truth_image)
    assert cam.ImageArrayInfo.Rank == 2
    cam.BinX = 1
    cam.BinY = 1
    cam.StartX, cam.StartY, cam.NumX, cam.NumY = 0, 0, 3000, 2000
    assert cam.LastExposureDuration == 0.0
    assert cam.LastExposureStartTime


def test_camera_rectangular_image_orientation_is_preserved(sim):
    """A non-symmetric frame keeps rows and columns through ImageBytes and JSON."""
    cam = Camera(_addr(sim), 1)
    cam.Connect()
    cam.StartX, cam.StartY, cam.NumX, cam.NumY = 10, 20, 64, 32
    _expose(cam, 0.1, light=False)
    ref = sim.observatory.guide_camera._image.copy()
    ref[0, 0], ref[0, 63], ref[31, 0] = 1, 2, 3
    sim.observatory.guide_camera._image = ref  # mark three corners
    img = ra.Camera(sim.url, 1).read_image()
    assert img.shape == (32, 64)
    assert (img[0, 0], img[0, 63], img[31, 0]) == (1, 2, 3)
    assert np.array_equal(np.asarray(cam.ImageArray).T, ref)
    cam.StartX, cam.StartY, cam.NumX, cam.NumY = 0, 0, 640, 480


def test_camera_abort_and_truth_action(sim):
    cam = Camera(_addr(sim), 0)
    cam.Connect()
    cam.StartExposure(100.0, True)
    assert cam.CameraState.value == 2  # exposing
    with pytest.raises(ax.InvalidOperationException):
        cam.StartExposure(1.0, True)
    cam.AbortExposure()
    assert cam.CameraState.value == 0 and cam.ImageReady is False
    with pytest.raises(ax.InvalidValueException):
        cam.StartExposure(-1.0, True)
    _expose(cam, 1.0, light=False)
    assert "truth_id" in cam.SupportedActions
    truth_id = cam.Action("truth_id", "")
    truth = sim.control.truth(truth_id)
    assert truth["id"] == truth_id and truth["kind"] == "dark"
    with pytest.raises(ax.ActionNotImplementedException):
        cam.Action("nope", "")


def test_arc_frame_only_with_lamp_on(sim):
    sw = Switch(_addr(sim), 0)
    sw.Connect()
    cam = Camera(_addr(sim), 0)
    cam.Connect()
    sw.SetSwitch(0, True)
    try:
        _expose(cam, 2.0)
        arc = sim.control.truth(cam.Action("truth_id", ""))
    finally:
        sw.SetSwitch(0, False)
    assert arc["kind"] == "arc"
    assert arc["frame"]["lamp"] == "NeAr"
    _expose(cam, 2.0)
    other = sim.control.truth(cam.Action("truth_id", ""))
    assert other["kind"] != "arc"


def test_guide_camera_shows_star_off_the_slit_after_slew(sim):
    tel = Telescope(_addr(sim), 0)
    tel.Connect()
    dome = Dome(_addr(sim), 0)
    dome.Connect()
    dome.OpenShutter()
    tel.Unpark()
    try:
        tel.SlewToCoordinatesAsync(84.411189 / 15, 21.142549)
        wait_for(lambda: not tel.Slewing and dome.ShutterStatus == ShutterState.shutterOpen, timeout=15)
        cam = Camera(_addr(sim), 1)
        cam.Connect()
        _expose(cam, 1.0)
        truth = sim.control.truth(cam.Action("truth_id", ""))
        star = truth["stars"][0]
        assert star["name"] == "zet Tau"
        g = sim.observatory.scenario.guide_camera
        offset_px = np.hypot(star["x"] - g.slit_x, star["y"] - g.slit_y)
        assert 0 < offset_px * g.scale < 60  # a few arcsec off the slit
        img = ra.Camera(sim.url, 1).read_image()
        y, x = np.unravel_index(np.argmax(img), img.shape)
        assert abs(x - star["x"]) < 4 and abs(y - star["y"]) < 4
        # Pulse-guide north: the star moves south on the image (larger y), by the guide rate x time.
        tel.PulseGuide(GuideDirections.guideNorth, 2000)
        _expose(cam, 1.0)
        moved = sim.control.truth(cam.Action("truth_id", ""))["stars"][0]
        shift = tel.GuideRateDeclination * 3600 * 2.0 / g.scale
        assert moved["y"] - star["y"] == pytest.approx(shift, rel=0.05)
    finally:
        tel.Park()
        dome.CloseShutter()
        wait_for(lambda: tel.AtPark and dome.ShutterStatus == ShutterState.shutterClosed, timeout=30)
