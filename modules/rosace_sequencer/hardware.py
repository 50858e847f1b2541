"""The devices one observation uses, and the waits around them.

Every wait here has a deadline and an abort: an exposure that never becomes
ready, a slew that never ends or a camera that never cools raise
:class:`~rosace_core.errors.DeviceTimeout`; an abort request raises
:class:`~rosace_core.errors.Aborted` after stopping the device; an unsafe verdict
during an exposure stops it and raises :class:`Unsafe`. Durations are clock
(simulated) seconds, turned into wall seconds through ``Clock.wall``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, TypeVar

import numpy as np

from rosace_core import alpaca
from rosace_core.clock import get_clock
from rosace_core.devices import resolve_lamps
from rosace_core.errors import Aborted, DeviceError, DeviceTimeout, InvalidOperation, RosaceError
from rosace_sequencer.telemetry import Telemetry

log = logging.getLogger(__name__)
T = TypeVar("T")


class Unsafe(RosaceError):
    """The observatory is not safe to observe (weather, roof closed, lease lost)."""


class Control:
    """Abort and pause for a running observation or night, shared with the REST API."""

    def __init__(self):
        self.abort_event = threading.Event()
        self._running = threading.Event()
        self._running.set()

    @property
    def aborted(self) -> bool:
        return self.abort_event.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def abort(self) -> None:
        self.abort_event.set()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def check(self) -> None:
        """Raise Aborted if asked; block while paused (an abort ends the pause)."""
        if self.abort_event.is_set():
            raise Aborted("aborted on request")
        while not self._running.wait(0.1):
            if self.abort_event.is_set():
                break
        if self.abort_event.is_set():
            raise Aborted("aborted on request")

    def wait(self, sim_seconds: float) -> None:
        """Wait on the observatory clock; raise Aborted if an abort comes meanwhile."""
        if get_clock().sleep(max(0.0, sim_seconds), self.abort_event):
            raise Aborted("aborted on request")


def retry(fn: Callable[[], T], what: str, *, attempts: int, backoff: float, control: Control | None = None) -> T:
    """Call ``fn``; on a DeviceError wait ``backoff``, ``2*backoff``... (clock seconds) and try again.

    Raises the last DeviceError, with the number of attempts, when all fail.
    Unsafe and Aborted pass straight through: they are not device faults.
    """
    delay = backoff
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except DeviceError as exc:
            if attempt == attempts:
                raise type(exc)(exc.device, f"{what} failed after {attempts} attempt(s): {exc}", code=exc.code) from None
            log.warning("%s failed (%s); attempt %d/%d, retrying in %.0f s", what, exc, attempt, attempts, delay)
            if control is not None:
                control.wait(delay)
            else:
                get_clock().sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class Exposure:
    """An image and when it was taken."""

    image: np.ndarray
    start: datetime
    seconds: float


class Hardware:
    """The Alpaca devices of the observatory, built from ``config.devices``."""

    def __init__(self, config):
        d = config.devices

        def make(cls, dev, name):
            # Transport retries are the adapter's (quick, wall time); the sequencer's own
            # retries with back-off sit above them, per action.
            return cls(dev.url, dev.device_number, retries=dev.retries, retry_delay=0.2, name=name)

        self.telescope = make(alpaca.Telescope, d.telescope, "telescope")
        self.camera = make(alpaca.Camera, d.spectro_camera, "spectrograph camera")
        self.guider = make(alpaca.Camera, d.guide_camera, "guide camera")
        self.switch = make(alpaca.Switch, d.switch, "calibration lamps")
        self.safety = make(alpaca.SafetyMonitor, d.safety_monitor, "safety monitor")
        self._connected: set[str] = set()
        #: lamp name -> Switch channel (name or id) from [devices.switch] lamps: the only channels touched
        self.lamps: dict[str, str | int] = dict(getattr(d.switch, "lamps", None) or {"arc": "NeAr", "flat": "tungsten"})
        self._lamp_channels: dict[str, int] | None = None  # resolved on the device; forgotten on reconnect
        self._channel_names: list[str] = []
        #: capabilities read at connect, by device name ({} until connected or when unreadable)
        self.caps: dict[str, dict] = {}
        self._said: set[str] = set()
        #: extra devices ([devices.NAME] with a type): configured, made and connected when a step asks
        self._extra_config = dict(getattr(d, "extra", None) or {})
        self._extra: dict[str, alpaca.AlpacaDevice] = {}
        self._extra_connected: set[str] = set()
        #: where the guide loop publishes its frames and offsets (set by the sequencer service)
        self.telemetry: Telemetry | None = None

    DEVICES = ("telescope", "camera", "guider", "switch", "safety")
    #: [devices] role -> attribute, for :meth:`device`
    ROLE_ATTRIBUTES = {"telescope": "telescope", "spectro_camera": "camera", "guide_camera": "guider",
                       "switch": "switch", "safety_monitor": "safety"}

    def device_names(self) -> list[str]:
        """The names :meth:`device` knows: the roles the sequencer drives, then the extra devices."""
        return [*self.ROLE_ATTRIBUTES, *sorted(self._extra_config)]

    def device(self, name: str) -> alpaca.AlpacaDevice:
        """A device by its [devices] name, connected: an extra device (``[devices.grating] type =
        "focuser"``, made from the ``device.role`` registry on first use) or a role (``telescope``).

        An unknown name raises RosaceError naming the known ones; a device that cannot be
        reached raises its DeviceError (the step's retry decides).
        """
        if name in self.ROLE_ATTRIBUTES:
            attribute = self.ROLE_ATTRIBUTES[name]
            self.connect(attribute)
            return getattr(self, attribute)
        cfg = self._extra_config.get(name)
        if cfg is None:
            raise RosaceError(f"no device {name!r} in the configuration's [devices]; known: {', '.join(self.device_names())} "
                              f"(an extra device is a [devices.{name}] table with a type, e.g. type = \"focuser\")")
        dev = self._extra.get(name)
        if dev is None:
            cls = alpaca.device_classes()[cfg.type]
            dev = self._extra[name] = cls(cfg.url, cfg.device_number, retries=cfg.retries, retry_delay=0.2,
                                          name=cfg.title or f"{name} ({cfg.type})")
        if name not in self._extra_connected:
            dev.connect(timeout=10.0)
            self._extra_connected.add(name)
        return dev

    def connect(self, *names: str) -> None:
        """Connect the named devices (default: all) once per process, and read their capabilities."""
        for name in names or self.DEVICES:
            if name not in self._connected:
                getattr(self, name).connect(timeout=10.0)
                self._read_capabilities(name)
                self._connected.add(name)

    def reconnect(self) -> None:
        """Forget which devices are connected and connect them again (errors are left to the next call).

        The lamps' channels are looked up on the Switch again: its channel names may have changed.
        """
        self._connected.clear()
        self._extra_connected.clear()  # extra devices connect again when a step next asks
        self._lamp_channels = None
        for name in self.DEVICES:
            try:
                getattr(self, name).connect(timeout=5.0)
                self._read_capabilities(name)
                self._connected.add(name)
            except DeviceError as exc:
                log.info("reconnecting %s failed: %s", name, exc)

    def _read_capabilities(self, name: str) -> None:
        if name == "switch":
            self._lamp_channels = None
            return
        try:
            self.caps[name] = getattr(self, name).capabilities()
        except DeviceError as exc:
            log.warning("could not read the capabilities of the %s: %s", getattr(self, name).label, exc)
            self.caps[name] = {}

    def _say(self, key: str, message: str, *args) -> None:
        """Log a capability message once per process (not at every frame)."""
        if key not in self._said:
            self._said.add(key)
            log.warning(message, *args)

    # ------------------------------------------------------------------ capabilities in use

    def can_pulse_guide(self) -> bool:
        """Whether the mount pulse-guides (CanPulseGuide); False disables acquisition moves and guiding, said once."""
        if self.caps.get("telescope", {}).get("can_pulse_guide") is False:
            self._say("pulse", "%s cannot pulse-guide (CanPulseGuide false): slit acquisition moves and guiding are disabled; "
                      "the pointing is trusted as it is", self.telescope.label)
            return False
        return True

    def can_cool(self) -> bool:
        """Whether the spectrograph camera sets its temperature (CanSetCCDTemperature)."""
        return self.caps.get("camera", {}).get("can_set_ccd_temperature") is not False

    def guide_rate(self, configured: float) -> float:
        """Pulse-guide speed, arcsec/s: the mount's GuideRateRightAscension where it reports one.

        The mount knows how far a pulse moves it; a configured ``guide_rate`` more
        than 20 % away from it is said once and the mount's rate used.
        """
        rate = self.caps.get("telescope", {}).get("guide_rate_ra")
        try:
            mount = float(rate) * 3600.0 if rate is not None else 0.0
        except (TypeError, ValueError):
            mount = 0.0
        if mount <= 0:
            return configured
        if abs(mount - configured) > 0.2 * configured:
            self._say("rate", "%s guides at %.2f arcsec/s (GuideRateRightAscension), not the configured %.2f: using the mount's",
                      self.telescope.label, mount, configured)
        return mount

    # ------------------------------------------------------------------ lamps

    def lamp_channels(self) -> dict[str, int]:
        """The configured lamps' channel ids on the Switch (lamp name -> id), looked up by name on the device.

        Read again after a reconnect or a failed switch command. A configured channel the
        device does not have raises DeviceError naming it and the channels it has.
        """
        if self._lamp_channels is None:
            names = self.switch.names()
            resolved, problems = resolve_lamps(self.lamps, names)
            if problems:
                raise DeviceError(self.switch.label, "; ".join(problems))
            self._lamp_channels, self._channel_names = resolved, names
        return self._lamp_channels

    def lamp_channel(self, name: str) -> int:
        """The channel of a lamp asked for by its configured name (``arc``) or its channel's name (``NeAr``)."""
        channels = self.lamp_channels()
        key = name.lower()
        for lamp, index in channels.items():
            if lamp.lower() == key or self._channel_names[index].lower() == key:
                return index
        have = ", ".join(f"{lamp} = {self._channel_names[i]!r}" for lamp, i in channels.items())
        raise DeviceError(self.switch.label, f"no lamp {name!r} among the configured lamps ({have}); "
                                             f"add it to [devices.switch] lamps")

    def set_lamp(self, name: str | None) -> None:
        """Light one calibration lamp (``None``: all off); only the configured lamp channels are switched."""
        try:
            target = None if name is None else self.lamp_channel(name)
            for index in sorted(set(self.lamp_channels().values())):
                if index != target:
                    self.switch.set(index, False)
            if target is not None:
                self.switch.set(target, True)
        except DeviceError:
            self._lamp_channels = None  # the box may have changed: look the names up again next time
            raise

    # ------------------------------------------------------------------ camera

    def truth_id(self) -> str | None:
        """Return the simulator's truth record id of the last image, or None on real hardware."""
        cam = self.camera
        try:
            action = getattr(cam, "action", None)
            if action is not None:
                value = action("truth_id", "")
            else:  # the adapter has no Action wrapper yet: same error translation, no retries
                value = cam._call(lambda: cam._dev.Action("truth_id", ""), "truth id", retry=False)
        except (DeviceError, AttributeError):
            return None
        return str(value) if value not in (None, "") else None

    def expose(self, camera: alpaca.Camera, seconds: float, *, light: bool, control: Control,
               readout_timeout: float, safety: Callable[[], bool] | None = None, safety_poll: float = 5.0,
               readout_min_wall: float = 20.0) -> Exposure:
        """Take one exposure and download it.

        ``safety`` (optional) is polled every ``safety_poll`` clock seconds while the
        shutter is open; when it returns False the exposure is aborted and Unsafe raised.
        """
        clock = get_clock()
        start = clock.now()
        camera.start_exposure(seconds, light)
        t0 = time.monotonic()
        deadline = t0 + clock.wall(seconds) + max(clock.wall(readout_timeout), readout_min_wall)
        expected_end = t0 + clock.wall(seconds)
        safety_every = max(0.25, clock.wall(safety_poll))
        next_safety = t0 + safety_every
        try:
            while True:
                if control.aborted:
                    raise Aborted("exposure aborted on request")
                now_w = time.monotonic()
                if safety is not None and now_w >= next_safety and now_w < expected_end:
                    next_safety = now_w + safety_every
                    if not safety():
                        raise Unsafe("conditions turned unsafe during the exposure")
                if now_w < expected_end - 0.03:
                    # Sleep until the expected end, in slices short enough for safety and abort.
                    control.abort_event.wait(min(expected_end - 0.03 - now_w, next_safety - now_w if safety else 0.5, 0.5))
                    continue
                if camera.image_ready:
                    break
                if now_w > deadline:
                    raise DeviceTimeout(camera.label, f"image not ready {readout_timeout:.0f} s after a {seconds:.1f} s exposure")
                time.sleep(0.01)
        except (Aborted, Unsafe, DeviceTimeout):
            try:
                camera.abort_exposure()
            except DeviceError as exc:
                log.warning("could not abort the exposure: %s", exc)
            raise
        return Exposure(camera.read_image(), start, seconds)

    def wait_cooled(self, set_point: float, *, tolerance: float, timeout: float, control: Control) -> float:
        """Switch the cooler on, set ``set_point`` and wait for it; return the CCD temperature."""
        cam = self.camera
        if not self.can_cool():
            temp = cam.ccd_temperature
            self._say("cool", "%s cannot set its temperature (CanSetCCDTemperature false): not cooled, frames at %.1f C "
                      "carry no SET-TEMP", cam.label, temp)
            return temp
        try:
            if abs(cam.set_point - set_point) > 0.01:
                cam.set_point = set_point
            if not cam.cooler_on:
                cam.cooler_on = True
        except DeviceError as exc:
            if exc.code != 0x400:  # a camera without cooling control: just read its temperature
                raise
        clock = get_clock()
        deadline = time.monotonic() + clock.wall(timeout)
        while True:
            temp = cam.ccd_temperature
            if abs(temp - set_point) <= tolerance:
                return temp
            if time.monotonic() > deadline:
                raise DeviceTimeout(cam.label, f"CCD at {temp:.1f} C, not within {tolerance} C of {set_point} C after {timeout:.0f} s")
            control.wait(5.0)

    # ------------------------------------------------------------------ mount

    def slew(self, ra: float, dec: float, *, timeout: float, settle: float, control: Control) -> None:
        """Unpark if needed, start tracking, slew to (RA, Dec) degrees and wait for the end of the slew."""
        tel = self.telescope
        system = self.caps.get("telescope", {}).get("equatorial_system")
        if system in (3, 4):
            raise InvalidOperation(tel.label, f"the mount works in {'J2050' if system == 3 else 'B1950'} coordinates "
                                              f"(EquatorialSystem {system}); ROSACE sends J2000/of-date coordinates only")
        if tel.at_park:
            tel.unpark()
        if not tel.tracking:
            tel.tracking = True
        tel.slew_to(ra, dec)
        clock = get_clock()
        deadline = time.monotonic() + clock.wall(timeout)
        while tel.slewing:
            if control.aborted:
                try:
                    tel.abort_slew()
                finally:
                    raise Aborted("slew aborted on request")
            if time.monotonic() > deadline:
                tel.abort_slew()
                raise DeviceTimeout(tel.label, f"slew not finished after {timeout:.0f} s")
            control.abort_event.wait(max(0.02, min(0.2, clock.wall(1.0))))
        if settle:
            control.wait(settle)

    def offset(self, east: float, north: float, *, rate: float, control: Control, timeout: float = 60.0) -> None:
        """Move the pointing by (east, north) arcsec with pulse guides at ``rate`` arcsec/s."""
        tel = self.telescope
        clock = get_clock()
        for direction, amount in (("east" if east >= 0 else "west", abs(east)), ("north" if north >= 0 else "south", abs(north))):
            ms = int(round(amount / rate * 1000.0))
            if ms < 1:
                continue
            tel.pulse_guide(direction, ms)
            deadline = time.monotonic() + clock.wall(ms / 1000.0 + timeout)
            while tel.is_pulse_guiding:
                if control.aborted:
                    raise Aborted("aborted on request")
                if time.monotonic() > deadline:
                    raise DeviceTimeout(tel.label, f"pulse guide {direction} {ms} ms did not end")
                control.abort_event.wait(max(0.01, min(0.2, clock.wall(0.5))))

    def park(self, *, timeout: float, control: Control | None = None) -> None:
        """Park the mount and wait until it is parked."""
        tel = self.telescope
        if tel.at_park:
            return
        if self.caps.get("telescope", {}).get("can_park") is False:
            raise InvalidOperation(tel.label, "the mount cannot park (CanPark false): stop it by hand before the roof closes")
        try:
            tel.tracking = False
        except DeviceError:
            pass
        tel.park()
        clock = get_clock()
        deadline = time.monotonic() + clock.wall(timeout)
        while not tel.at_park:
            if time.monotonic() > deadline:
                raise DeviceTimeout(tel.label, f"not parked after {timeout:.0f} s")
            time.sleep(max(0.02, min(0.2, clock.wall(1.0))))
