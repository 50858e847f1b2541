"""The Alpaca adapter: ROSACE's small hardware interfaces, implemented on alpyca.

ASCOM names (PascalCase properties, alpyca exceptions) stay inside this file.
The rest of ROSACE sees snake_case methods, degrees, seconds, numpy arrays and
ROSACE exceptions (:class:`~rosace_core.errors.DeviceError` and subclasses).

Every call has a timeout (alpyca's, 5 s by default) and transport failures
(timeouts, refused connections) are retried ``retries`` times, one second apart,
before a :class:`DeviceTimeout` / :class:`DeviceNotConnected` is raised. ASCOM
errors (the device answered "no") are never retried.

Note: alpyca serialises every HTTP request of a process behind one lock, so a
device that hangs for its whole timeout delays the others in the same process.
The dome module therefore keeps its safety loop's calls short and few.
"""

from __future__ import annotations

import enum
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlparse

import numpy as np
import requests

from rosace_core.errors import DeviceError, DeviceNotConnected, DeviceTimeout, InvalidOperation

log = logging.getLogger(__name__)


def redact_url(url: str) -> str:
    """``url`` without the password of its user information (for logs and messages)."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    host = parsed.hostname or ""
    netloc = f"{parsed.username}:***@{host}" + (f":{parsed.port}" if parsed.port else "")
    return parsed._replace(netloc=netloc).geturl()


def _address(url: str) -> tuple[str, str]:
    """Split ``http://host:port`` into alpyca's (address, protocol)."""
    if "://" not in url:
        url = "http://" + url
    parsed = urlparse(url)
    return parsed.netloc, parsed.scheme or "http"


class ShutterState(str, enum.Enum):
    """Shutter or roof state (ASCOM ShutterState, in words)."""

    OPEN = "open"
    CLOSED = "closed"
    OPENING = "opening"
    CLOSING = "closing"
    ERROR = "error"


_SHUTTER = {0: ShutterState.OPEN, 1: ShutterState.CLOSED, 2: ShutterState.OPENING, 3: ShutterState.CLOSING, 4: ShutterState.ERROR}


class CameraState(str, enum.Enum):
    IDLE = "idle"
    WAITING = "waiting"
    EXPOSING = "exposing"
    READING = "reading"
    DOWNLOAD = "download"
    ERROR = "error"


_CAMSTATE = list(CameraState)


#: InterfaceVersion of the Platform 7 interfaces (asynchronous Connect/Connecting).
#: DeviceError code of a device the server does not have (not an ASCOM number).
_MISSING = -404

_PLATFORM7 = {"camera": 4, "covercalibrator": 2, "dome": 3, "filterwheel": 3, "focuser": 4, "observingconditions": 2,
              "rotator": 4, "safetymonitor": 3, "switch": 3, "telescope": 4}


class AlpacaDevice:
    """Common part of every device: connection, timeouts, retries, error translation."""

    device_type = ""

    def __init__(self, url: str, device_number: int = 0, *, retries: int = 3, retry_delay: float = 1.0, name: str | None = None):
        self.url = url
        self.device_number = device_number
        self.retries = max(1, retries)
        self.retry_delay = retry_delay
        # A server that guards device control takes HTTP Basic credentials in the URL
        # (http://user:token@host:port, what `rosace sim serve` beyond loopback asks for):
        # alpyca passes them to requests; messages never show them.
        self.label = name or f"{self.device_type} {device_number} at {redact_url(url)}"
        self._dev = self._make()

    def _make(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def _call(self, fn: Callable[[], Any], what: str, *, retry: bool = True) -> Any:
        from alpaca import exceptions as ax

        attempts = self.retries if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                return fn()
            except (requests.Timeout, requests.ConnectionError) as exc:
                if attempt == attempts:
                    kind = DeviceTimeout if isinstance(exc, requests.Timeout) else DeviceNotConnected
                    raise kind(self.label, f"{what}: no answer after {attempts} attempt(s) ({exc.__class__.__name__})") from None
                log.debug("%s: %s failed (%s), retrying", self.label, what, exc.__class__.__name__)
                time.sleep(self.retry_delay)
            except ax.NotConnectedException as exc:
                raise DeviceNotConnected(self.label, f"{what}: not connected ({exc.message})", code=0x407) from None
            except (ax.InvalidOperationException, ax.ParkedException, ax.SlavedException) as exc:
                raise InvalidOperation(self.label, f"{what}: {exc.message}", code=getattr(exc, "number", None)) from None
            except ax.NotImplementedException as exc:
                raise DeviceError(self.label, f"{what}: not implemented by this device ({exc.message})", code=0x400) from None
            except (ax.InvalidValueException, ax.ValueNotSetException, ax.ActionNotImplementedException) as exc:
                raise DeviceError(self.label, f"{what}: {exc.message}", code=getattr(exc, "number", None)) from None
            except ax.DriverException as exc:
                raise DeviceError(self.label, f"{what}: {exc.message}", code=exc.number) from None
            except ax.AlpacaRequestException as exc:
                raise DeviceError(self.label, f"{what}: bad request ({exc.message})", code=exc.number) from None
            except (ValueError, KeyError) as exc:
                raise DeviceError(self.label, f"{what}: malformed answer ({exc})") from None
            except TypeError as exc:
                # alpyca re-raises some ASCOM errors with the wrong arguments
                # (NotImplementedException(number, message) from its Connect emulation):
                # still this device's error, never a bare TypeError naming nothing.
                raise DeviceError(self.label, f"{what}: the device answered with an error alpyca could not translate ({exc})") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def connect(self, timeout: float = 30.0) -> None:
        """Connect the device: Platform 7 asynchronous Connect where offered, else Connected=True.

        The device's InterfaceVersion decides which, read here rather than left to
        alpyca's emulation (its background thread re-raised a failed connection as
        ``TypeError('NotImplementedException.__init__() ...')``, naming no device).
        A device missing on the server is a :class:`DeviceError` naming the device
        type, number and server; a failure of the device itself is retried
        ``retries`` times like a transport failure, then raised with its name.
        """
        def _connect(platform7: bool):
            if not platform7:
                self._dev.Connected = True
                return
            # alpyca's Connect/Connecting decide by its cached InterfaceVersion (1 if the
            # device was missing at first read): the checked PUT/GET are used directly.
            self._dev._put("connect")
            deadline = time.monotonic() + timeout
            while self._dev._get("connecting"):
                if time.monotonic() > deadline:
                    raise DeviceTimeout(self.label, f"connect: still connecting after {timeout} s")
                time.sleep(0.05)

        for attempt in range(1, self.retries + 1):
            try:
                platform7 = self.interface_version(retry=False) >= _PLATFORM7.get(self.device_type, 99)
                self._call(lambda: _connect(platform7), "connect", retry=False)
                return
            except DeviceError as exc:
                missing = exc.code == _MISSING
                if isinstance(exc, InvalidOperation) or missing or attempt == self.retries:
                    if missing or self.retries == 1:
                        raise
                    raise type(exc)(self.label, f"connect failed after {attempt} attempt(s): {str(exc).removeprefix(self.label + ': ')}", code=exc.code) from None
                log.debug("%s: connect failed (%s), attempt %d/%d", self.label, exc, attempt, self.retries)
                time.sleep(self.retry_delay)

    def interface_version(self, *, retry: bool = True) -> int:
        """The device's ASCOM InterfaceVersion; a device absent from the server is named here."""
        # alpyca's InterfaceVersion property turns every error into version 1 (a missing
        # device included): its checked GET is used instead.
        try:
            return int(self._call(lambda: self._dev._get("interfaceversion"), "interface version", retry=retry))
        except DeviceError as exc:
            if exc.code == 0x400:  # Platform 1 drivers do not implement it
                return 1
            if isinstance(exc, (DeviceTimeout, DeviceNotConnected)) or "bad request" not in str(exc):
                raise
            # HTTP 400/404 for the device's URL: the server has no such device.
            raise DeviceError(self.label, f"no {self.device_type} number {self.device_number} on the Alpaca server {self.url} "
                                          f"(check its device_number in the configuration's [devices] table)", code=_MISSING) from None

    #: Capabilities read by :meth:`capabilities`: ROSACE name -> ASCOM property.
    CAPABILITIES: dict[str, str] = {}

    def capabilities(self) -> dict[str, Any]:
        """Read the device's capabilities (``CAPABILITIES``); None where the device does not offer one.

        Transport failures (no answer) are raised: the device is missing, not limited.
        """
        caps: dict[str, Any] = {}
        for key, prop in self.CAPABILITIES.items():
            try:
                caps[key] = self._call(functools.partial(getattr, self._dev, prop), prop, retry=False)
            except (DeviceTimeout, DeviceNotConnected):
                raise
            except DeviceError as exc:
                log.debug("%s: %s not offered (%s)", self.label, prop, exc)
                caps[key] = None
        return caps

    def disconnect(self) -> None:
        self._call(lambda: setattr(self._dev, "Connected", False), "disconnect")

    @property
    def connected(self) -> bool:
        return bool(self._call(lambda: self._dev.Connected, "connected"))

    @property
    def name(self) -> str:
        return str(self._call(lambda: self._dev.Name, "name"))


class Dome(AlpacaDevice):
    """A roll-off roof (shutter only) or a rotating dome."""

    device_type = "dome"
    CAPABILITIES = {"can_set_shutter": "CanSetShutter", "can_park": "CanPark", "can_set_azimuth": "CanSetAzimuth",
                    "can_find_home": "CanFindHome", "can_slave": "CanSlave"}

    def _make(self):
        from alpaca.dome import Dome as _D

        addr, proto = _address(self.url)
        return _D(addr, self.device_number, proto)

    @property
    def shutter(self) -> ShutterState:
        return _SHUTTER.get(int(self._call(lambda: self._dev.ShutterStatus, "shutter status")), ShutterState.ERROR)

    def open_shutter(self) -> None:
        self._call(self._dev.OpenShutter, "open shutter")

    def close_shutter(self) -> None:
        self._call(self._dev.CloseShutter, "close shutter")

    def abort(self) -> None:
        self._call(self._dev.AbortSlew, "abort", retry=True)

    @property
    def can_set_azimuth(self) -> bool:
        return bool(self._call(lambda: self._dev.CanSetAzimuth, "can set azimuth"))

    @property
    def azimuth(self) -> float:
        return float(self._call(lambda: self._dev.Azimuth, "azimuth"))

    def slew_to_azimuth(self, azimuth: float) -> None:
        self._call(lambda: self._dev.SlewToAzimuth(float(azimuth) % 360.0), "slew to azimuth")

    @property
    def slewing(self) -> bool:
        return bool(self._call(lambda: self._dev.Slewing, "slewing"))

    @property
    def at_park(self) -> bool:
        return bool(self._call(lambda: self._dev.AtPark, "at park"))

    def park(self) -> None:
        self._call(self._dev.Park, "park")

    def find_home(self) -> None:
        self._call(self._dev.FindHome, "find home")


class Telescope(AlpacaDevice):
    """An equatorial mount. Coordinates in degrees (RA too), epoch of date as the mount reports."""

    device_type = "telescope"
    CAPABILITIES = {"can_park": "CanPark", "can_unpark": "CanUnpark", "can_pulse_guide": "CanPulseGuide",
                    "can_set_tracking": "CanSetTracking", "can_slew_async": "CanSlewAsync",
                    "equatorial_system": "EquatorialSystem", "guide_rate_ra": "GuideRateRightAscension",
                    "guide_rate_dec": "GuideRateDeclination"}

    def _make(self):
        from alpaca.telescope import Telescope as _T

        addr, proto = _address(self.url)
        return _T(addr, self.device_number, proto)

    @property
    def ra(self) -> float:
        return float(self._call(lambda: self._dev.RightAscension, "right ascension")) * 15.0

    @property
    def dec(self) -> float:
        return float(self._call(lambda: self._dev.Declination, "declination"))

    @property
    def altitude(self) -> float:
        return float(self._call(lambda: self._dev.Altitude, "altitude"))

    @property
    def azimuth(self) -> float:
        return float(self._call(lambda: self._dev.Azimuth, "azimuth"))

    @property
    def side_of_pier(self) -> int:
        return int(self._call(lambda: self._dev.SideOfPier, "side of pier"))

    @property
    def sidereal_time(self) -> float:
        """Local apparent sidereal time, hours."""
        return float(self._call(lambda: self._dev.SiderealTime, "sidereal time"))

    @property
    def tracking(self) -> bool:
        return bool(self._call(lambda: self._dev.Tracking, "tracking"))

    @tracking.setter
    def tracking(self, value: bool) -> None:
        self._call(lambda: setattr(self._dev, "Tracking", bool(value)), "set tracking")

    @property
    def slewing(self) -> bool:
        return bool(self._call(lambda: self._dev.Slewing, "slewing"))

    def slew_to(self, ra_deg: float, dec_deg: float) -> None:
        """Start a slew to (RA, Dec) in degrees; returns at once (poll ``slewing``)."""
        self._call(lambda: self._dev.SlewToCoordinatesAsync(float(ra_deg) / 15.0, float(dec_deg)), "slew")

    def abort_slew(self) -> None:
        self._call(self._dev.AbortSlew, "abort slew")

    @property
    def at_park(self) -> bool:
        return bool(self._call(lambda: self._dev.AtPark, "at park"))

    def park(self) -> None:
        """Start parking (asynchronous in Platform 7; poll ``at_park``)."""
        self._call(self._dev.Park, "park")

    def unpark(self) -> None:
        self._call(self._dev.Unpark, "unpark")

    def pulse_guide(self, direction: str, duration_ms: int) -> None:
        """Pulse-guide: direction 'north', 'south', 'east' or 'west'; duration in ms."""
        from alpaca.telescope import GuideDirections

        d = {"north": GuideDirections.guideNorth, "south": GuideDirections.guideSouth, "east": GuideDirections.guideEast, "west": GuideDirections.guideWest}[direction]
        self._call(lambda: self._dev.PulseGuide(d, int(duration_ms)), "pulse guide")

    @property
    def is_pulse_guiding(self) -> bool:
        return bool(self._call(lambda: self._dev.IsPulseGuiding, "is pulse guiding"))


class Camera(AlpacaDevice):
    """A camera (spectrograph or guide). Images come back as numpy arrays (rows, columns)."""

    device_type = "camera"
    CAPABILITIES = {"sensor_x": "CameraXSize", "sensor_y": "CameraYSize", "pixel_size": "PixelSizeX",
                    "max_bin_x": "MaxBinX", "max_bin_y": "MaxBinY", "can_set_ccd_temperature": "CanSetCCDTemperature",
                    "can_abort_exposure": "CanAbortExposure", "gain": "Gain", "electrons_per_adu": "ElectronsPerADU",
                    "max_adu": "MaxADU", "readout_modes": "ReadoutModes", "readout_mode": "ReadoutMode"}

    def _make(self):
        from alpaca.camera import Camera as _C

        addr, proto = _address(self.url)
        self._warned_json = False
        return _C(addr, self.device_number, proto)

    def start_exposure(self, seconds: float, light: bool = True) -> None:
        self._call(lambda: self._dev.StartExposure(float(seconds), bool(light)), "start exposure")

    def abort_exposure(self) -> None:
        self._call(self._dev.AbortExposure, "abort exposure")

    @property
    def image_ready(self) -> bool:
        return bool(self._call(lambda: self._dev.ImageReady, "image ready"))

    @property
    def state(self) -> CameraState:
        value = int(self._call(lambda: self._dev.CameraState, "camera state"))
        return _CAMSTATE[value] if 0 <= value < len(_CAMSTATE) else CameraState.ERROR

    def read_image(self) -> np.ndarray:
        """Download the last image as a (rows, columns) numpy array.

        Uses the ImageBytes encoding through alpyca; falls back to JSON (slow) only
        for a device that does not offer ImageBytes, and says so in the log once.
        """
        from alpaca import exceptions as ax

        def _bytes():
            raw = self._dev.ImageArrayRaw
            info = self._dev.ImageArrayInfo
            dtype = {1: np.int16, 2: np.int32, 3: np.float64, 6: np.uint8, 8: np.uint16}.get(int(info.imgtype), np.int32)
            xm = {1: np.int16, 2: np.int32, 3: np.float64, 6: np.uint8, 8: np.uint16}.get(int(info.xmtype), np.int32)
            data = np.frombuffer(raw, dtype=xm)
            if info.rank == 2:
                data = data.reshape(info.x_size, info.y_size).T
            else:
                data = data.reshape(info.x_size, info.y_size, info.num_z if hasattr(info, "num_z") else -1).transpose(1, 0, 2)
            if dtype == np.int32 and data.dtype != np.int32:
                return np.ascontiguousarray(data)
            return np.ascontiguousarray(data.astype(dtype if dtype != np.int32 else data.dtype, copy=False))

        try:
            return self._call(_bytes, "image download")
        except DeviceError as exc:
            if "imagebytes" not in str(exc).lower():
                raise
        except ax.InvalidValueException:
            pass
        if not self._warned_json:
            log.warning("%s does not offer ImageBytes: downloading images as JSON (much slower)", self.label)
            self._warned_json = True
        nested = self._call(lambda: self._dev.ImageArray, "image download (JSON)")
        return np.asarray(nested).T

    @property
    def ccd_temperature(self) -> float:
        return float(self._call(lambda: self._dev.CCDTemperature, "CCD temperature"))

    @property
    def set_point(self) -> float:
        return float(self._call(lambda: self._dev.SetCCDTemperature, "set point"))

    @set_point.setter
    def set_point(self, value: float) -> None:
        self._call(lambda: setattr(self._dev, "SetCCDTemperature", float(value)), "set CCD temperature")

    @property
    def cooler_on(self) -> bool:
        return bool(self._call(lambda: self._dev.CoolerOn, "cooler on"))

    @cooler_on.setter
    def cooler_on(self, value: bool) -> None:
        self._call(lambda: setattr(self._dev, "CoolerOn", bool(value)), "set cooler")

    @property
    def binning(self) -> tuple[int, int]:
        return int(self._call(lambda: self._dev.BinX, "BinX")), int(self._call(lambda: self._dev.BinY, "BinY"))

    def set_binning(self, bx: int, by: int) -> None:
        self._call(lambda: setattr(self._dev, "BinX", int(bx)), "set BinX")
        self._call(lambda: setattr(self._dev, "BinY", int(by)), "set BinY")
        self.full_frame()

    def full_frame(self) -> None:
        """Select the whole (binned) sensor as the subframe."""
        bx, by = self.binning
        nx = int(self._call(lambda: self._dev.CameraXSize, "CameraXSize")) // bx
        ny = int(self._call(lambda: self._dev.CameraYSize, "CameraYSize")) // by
        self.set_subframe(0, 0, nx, ny)

    def set_subframe(self, x0: int, y0: int, nx: int, ny: int) -> None:
        self._call(lambda: setattr(self._dev, "StartX", int(x0)), "set StartX")
        self._call(lambda: setattr(self._dev, "StartY", int(y0)), "set StartY")
        self._call(lambda: setattr(self._dev, "NumX", int(nx)), "set NumX")
        self._call(lambda: setattr(self._dev, "NumY", int(ny)), "set NumY")

    @property
    def sensor_size(self) -> tuple[int, int]:
        """(columns, rows) of the unbinned sensor."""
        return int(self._call(lambda: self._dev.CameraXSize, "CameraXSize")), int(self._call(lambda: self._dev.CameraYSize, "CameraYSize"))

    @property
    def pixel_size(self) -> float:
        return float(self._call(lambda: self._dev.PixelSizeX, "PixelSizeX"))

    @property
    def last_exposure_start(self) -> str | None:
        try:
            return str(self._call(lambda: self._dev.LastExposureStartTime, "last exposure start", retry=False))
        except DeviceError:
            return None


class Switch(AlpacaDevice):
    """A Switch device: the calibration lamps (arc, flat) on relays, often beside other channels."""

    device_type = "switch"

    def _make(self):
        from alpaca.switch import Switch as _S

        addr, proto = _address(self.url)
        return _S(addr, self.device_number, proto)

    @property
    def count(self) -> int:
        return int(self._call(lambda: self._dev.MaxSwitch, "MaxSwitch"))

    def names(self) -> list[str]:
        """Channel names, read from the device at each call (names may change on the device)."""
        return [str(self._call(functools.partial(self._dev.GetSwitchName, i), "switch name")) for i in range(self.count)]

    def index(self, name: str) -> int:
        """Return the switch index of a lamp by name (case-insensitive); raise DeviceError if none."""
        names = self.names()
        for i, n in enumerate(names):
            if n.lower() == name.lower():
                return i
        raise DeviceError(self.label, f"no switch named {name!r} (have {', '.join(names)})")

    def get(self, index: int) -> bool:
        return bool(self._call(lambda: self._dev.GetSwitch(int(index)), "get switch"))

    def set(self, index: int, on: bool) -> None:
        self._call(lambda: self._dev.SetSwitch(int(index), bool(on)), "set switch")

    def value(self, index: int) -> float:
        return float(self._call(lambda: self._dev.GetSwitchValue(int(index)), "get switch value"))

    def set_lamp(self, name: str, on: bool) -> None:
        """Switch a lamp on or off by name."""
        self.set(self.index(name), on)

    def states(self) -> dict[str, bool]:
        return {n: self.get(i) for i, n in enumerate(self.names())}

    def channels(self) -> list[dict[str, Any]]:
        """Every channel: id, name, writable, min/max value, on/off and value (None where not offered)."""
        out = []
        for i in range(self.count):
            row: dict[str, Any] = {"id": i}
            for key, fn in (("name", lambda i=i: self._dev.GetSwitchName(i)), ("can_write", lambda i=i: self._dev.CanWrite(i)),
                            ("min", lambda i=i: self._dev.MinSwitchValue(i)), ("max", lambda i=i: self._dev.MaxSwitchValue(i)),
                            ("on", lambda i=i: self._dev.GetSwitch(i)), ("value", lambda i=i: self._dev.GetSwitchValue(i))):
                try:
                    row[key] = self._call(fn, f"switch {i} {key}", retry=False)
                except (DeviceTimeout, DeviceNotConnected):
                    raise
                except DeviceError:
                    row[key] = None
            out.append(row)
        return out

    def capabilities(self) -> dict[str, Any]:
        return {"channels": self.channels()}


class SafetyMonitor(AlpacaDevice):
    device_type = "safetymonitor"
    CAPABILITIES = {"is_safe": "IsSafe"}

    def _make(self):
        from alpaca.safetymonitor import SafetyMonitor as _S

        addr, proto = _address(self.url)
        return _S(addr, self.device_number, proto)

    @property
    def is_safe(self) -> bool:
        return bool(self._call(lambda: self._dev.IsSafe, "is safe"))


class Focuser(AlpacaDevice):
    """A focuser, or anything moved by a stepper like one (a LHIRES grating-angle motor)."""

    device_type = "focuser"
    CAPABILITIES = {"absolute": "Absolute", "max_step": "MaxStep", "max_increment": "MaxIncrement",
                    "step_size": "StepSize", "temp_comp_available": "TempCompAvailable"}

    def _make(self):
        from alpaca.focuser import Focuser as _F

        addr, proto = _address(self.url)
        return _F(addr, self.device_number, proto)

    @property
    def position(self) -> int:
        return int(self._call(lambda: self._dev.Position, "position"))

    @property
    def is_moving(self) -> bool:
        return bool(self._call(lambda: self._dev.IsMoving, "is moving"))

    @property
    def max_step(self) -> int:
        return int(self._call(lambda: self._dev.MaxStep, "max step"))

    def move(self, position: int) -> None:
        """Start a move to ``position`` (absolute steps); returns at once (see :meth:`move_to`)."""
        self._call(lambda: self._dev.Move(int(position)), f"move to {int(position)}")

    def halt(self) -> None:
        self._call(self._dev.Halt, "halt")

    def move_to(self, position: int, *, timeout: float = 300.0, poll: float = 0.5,
                wait: Callable[[float], None] = time.sleep) -> int:
        """Move to ``position`` and wait until the move ends; return the position reached.

        ``wait(seconds)`` is how to wait between polls (the sequencer's ``control.wait``:
        observatory clock, abortable); ``timeout`` counts those seconds. A focuser that
        does not stop in time is halted and a DeviceTimeout raised; one that stops
        elsewhere raises a DeviceError naming both positions.
        """
        target = int(position)
        self.move(target)
        waited = 0.0
        while self.is_moving:
            if waited >= timeout:
                try:
                    self.halt()
                except DeviceError as exc:
                    log.warning("%s: halt after a move that did not end failed: %s", self.label, exc)
                raise DeviceTimeout(self.label, f"move to {target}: still moving after {timeout:g} s (halted)")
            wait(poll)
            waited += poll
        reached = self.position
        if reached != target:
            raise DeviceError(self.label, f"move to {target}: stopped at {reached}")
        return reached


class FilterWheel(AlpacaDevice):
    """A filter wheel (or a flip mirror driven as a two-position wheel)."""

    device_type = "filterwheel"
    CAPABILITIES = {"names": "Names"}

    def _make(self):
        from alpaca.filterwheel import FilterWheel as _W

        addr, proto = _address(self.url)
        return _W(addr, self.device_number, proto)

    @property
    def position(self) -> int:
        """The slot (0-based); -1 while the wheel moves."""
        return int(self._call(lambda: self._dev.Position, "position"))

    @position.setter
    def position(self, value: int) -> None:
        self._call(lambda: setattr(self._dev, "Position", int(value)), f"set position {int(value)}")

    @property
    def names(self) -> list[str]:
        return [str(n) for n in self._call(lambda: self._dev.Names, "names")]


class Rotator(AlpacaDevice):
    device_type = "rotator"
    CAPABILITIES = {"can_reverse": "CanReverse", "step_size": "StepSize"}

    def _make(self):
        from alpaca.rotator import Rotator as _R

        addr, proto = _address(self.url)
        return _R(addr, self.device_number, proto)

    @property
    def position(self) -> float:
        return float(self._call(lambda: self._dev.Position, "position"))

    @property
    def is_moving(self) -> bool:
        return bool(self._call(lambda: self._dev.IsMoving, "is moving"))

    def move_absolute(self, degrees: float) -> None:
        self._call(lambda: self._dev.MoveAbsolute(float(degrees)), f"move to {degrees:g} deg")


class CoverCalibrator(AlpacaDevice):
    """A telescope cover and/or flat panel (read-only here: capabilities and states)."""

    device_type = "covercalibrator"
    CAPABILITIES = {"cover_state": "CoverState", "calibrator_state": "CalibratorState", "max_brightness": "MaxBrightness"}

    def _make(self):
        from alpaca.covercalibrator import CoverCalibrator as _C

        addr, proto = _address(self.url)
        return _C(addr, self.device_number, proto)


@dataclass(frozen=True)
class Reading:
    """One weather reading: value and age (seconds since it was measured)."""

    name: str
    value: float | None
    age: float | None


#: ObservingConditions properties ROSACE reads, ROSACE name -> ASCOM property.
CONDITIONS = {
    "cloud_cover": "CloudCover",
    "rain_rate": "RainRate",
    "wind_speed": "WindSpeed",
    "wind_gust": "WindGust",
    "humidity": "Humidity",
    "dew_point": "DewPoint",
    "temperature": "Temperature",
    "sky_brightness": "SkyBrightness",
    "sky_quality": "SkyQuality",
    "seeing": "StarFWHM",
    "pressure": "Pressure",
}


class ObservingConditions(AlpacaDevice):
    """A weather station. Readings are checked by :mod:`rosace_core.weather`: converted to
    ASCOM units (``units`` per quantity, or detected) and range-checked; a reading that
    cannot be trusted raises :class:`~rosace_core.weather.WeatherReadingError`.
    """

    device_type = "observingconditions"

    def __init__(self, url: str, device_number: int = 0, *, units: dict[str, str] | None = None, **kwargs):
        from rosace_core.weather import ReadingChecker

        super().__init__(url, device_number, **kwargs)
        self.checker = ReadingChecker(units or {}, device=self.label)

    def _make(self):
        from alpaca.observingconditions import ObservingConditions as _O

        addr, proto = _address(self.url)
        return _O(addr, self.device_number, proto)

    def sensor_description(self, name: str) -> str | None:
        """The device's SensorDescription of a quantity (None where not offered)."""
        prop = CONDITIONS[name]
        try:
            return str(self._call(lambda: self._dev.SensorDescription(prop), f"description of {prop}", retry=False))
        except (DeviceTimeout, DeviceNotConnected):
            raise
        except DeviceError:
            return None

    def reading(self, name: str) -> Reading:
        """Read one quantity and its age; (None, None) where the device does not implement it.

        The value is in ASCOM units (%, mm/h, m/s, degC, hPa...) after the unit check.
        """
        prop = CONDITIONS[name]
        try:
            raw = float(self._call(lambda: getattr(self._dev, prop), prop))
        except DeviceError as exc:
            if exc.code == 0x400:
                return Reading(name, None, None)
            raise
        value = self.checker.check(name, raw, describe=lambda: self.sensor_description(name))
        try:
            age = float(self._call(lambda: self._dev.TimeSinceLastUpdate(prop), f"age of {prop}"))
        except DeviceError:
            age = None
        return Reading(name, value, age)

    def readings(self, names: list[str] | None = None) -> dict[str, Reading]:
        return {n: self.reading(n) for n in (names or list(CONDITIONS))}


def discover(timeout: float = 2.0, port: int | None = None) -> list[str]:
    """Find Alpaca servers on the local network (UDP discovery); return 'host:port' strings."""
    from alpaca import discovery

    kwargs = {"timeout": timeout}
    if port is not None:
        kwargs["port"] = port
    try:
        return list(discovery.search_ipv4(**kwargs))
    except TypeError:  # older alpyca without port argument
        return list(discovery.search_ipv4(timeout=timeout))
    except OSError as exc:
        log.warning("Alpaca discovery failed: %s", exc)
        return []


#: The Alpaca device types (as in their URLs) -> ROSACE adapter: the built-in entries of
#: the plug-in registry's ``device.role`` kind, what ``[devices.NAME] type = "..."`` names.
DEVICE_TYPES: dict[str, type[AlpacaDevice]] = {
    "camera": Camera, "covercalibrator": CoverCalibrator, "dome": Dome, "filterwheel": FilterWheel,
    "focuser": Focuser, "observingconditions": ObservingConditions, "rotator": Rotator,
    "safetymonitor": SafetyMonitor, "switch": Switch, "telescope": Telescope,
}
_device_roles_loaded = False


def device_classes() -> dict[str, type]:
    """Every device type an extra device may have: the built-in Alpaca types, then the
    ``device.role`` entry points of installed packages (``rosace.device.role``: an
    :class:`AlpacaDevice` subclass, e.g. a focuser adapter with a grating's own methods)."""
    global _device_roles_loaded
    from rosace_core.plugins import registry

    if not _device_roles_loaded:
        for name, cls in DEVICE_TYPES.items():
            registry.register("device.role", name, cls, source="rosace_core.alpaca")

        def check(name, obj):
            if not (isinstance(obj, type) and issubclass(obj, AlpacaDevice)):
                raise TypeError(f"{obj!r} is not a rosace_core.alpaca.AlpacaDevice subclass")

        for name, error in registry.load_entry_points("device.role", check=check).items():
            log.warning("device role %s not available: %s", name, error)
        _device_roles_loaded = True
    return {e.name: e.obj for e in registry.entries("device.role")}
