"""The simulated cameras: the spectrograph camera (0) and the slit-jaw guide camera (1).

Timing runs on the observatory clock: an exposure of ``d`` simulated seconds is
exposing for ``d``, then reading for the read-out time, while a worker thread
renders the pixels (:mod:`rosace_sim.scene` asks the renderer for them). Cooling
follows a first-order law towards the set point (or the ambient temperature with
the cooler off) with the scenario's time constant; the coldest reachable is
``max_delta`` below ambient.
"""

from __future__ import annotations

import logging
import math
import threading
from datetime import datetime
from typing import Any

import numpy as np

from rosace_core.clock import get_clock

from rosace_sim.devices.base import (
    InvalidOperation,
    InvalidValue,
    NotImplementedAscom,
    SimDevice,
    ValueNotSet,
    sim_seconds,
    utc_now,
)

log = logging.getLogger(__name__)

IDLE, WAITING, EXPOSING, READING, DOWNLOAD, ERROR = range(6)


class SimCamera(SimDevice):
    """Camera device (ASCOM ICameraV4), monochrome, 16-bit."""

    device_type = "camera"
    interface_version = 4

    def __init__(self, observatory, device_number: int, *, role: str, nx: int, ny: int, pixel_um: float,
                 gain: float, full_well: float, cooled: bool, cooling=None, readout_time: float = 1.0, name: str = ""):
        super().__init__(observatory, device_number, name=name)
        self.role = role  # "spectro" or "guide"
        self.description = "Simulated spectrograph camera" if role == "spectro" else "Simulated slit-jaw guide camera"
        self.nx, self.ny = int(nx), int(ny)
        self.pixel_um = float(pixel_um)
        self.gain = float(gain)
        self.full_well = float(full_well)
        self.cooled = cooled
        self.cooling = cooling
        self.readout_time = float(readout_time)
        self.max_bin = 4
        self._binx = self._biny = 1
        self._startx = self._starty = 0
        self._numx, self._numy = self.nx, self.ny
        # cooling state: temperature at t0 and the target it relaxes to
        now = sim_seconds()
        self._cooler_on = False
        self._set_point = cooling.set_point if cooling else 0.0
        self._temp0 = self._ambient()
        self._temp_t0 = now
        # exposure state
        self._exp: dict | None = None
        self._image: np.ndarray | None = None
        self._image_ready = False
        self._truth_id: str | None = None
        self._last_duration: float | None = None
        self._last_start: datetime | None = None
        self._abort = threading.Event()
        self._worker: threading.Thread | None = None
        self._failed: str | None = None

    # ------------------------------------------------------------------ cooling

    def _ambient(self) -> float:
        try:
            return float(self.observatory.weather.values_at(utc_now())["temperature"])
        except Exception:  # pragma: no cover - weather always answers; keep the camera alive regardless
            return 10.0

    def _cool_target(self) -> float:
        amb = self._ambient()
        if not self._cooler_on or not self.cooled:
            return amb
        return max(self._set_point, amb - self.cooling.max_delta)

    def _temperature(self) -> float:
        if not self.cooled:
            return self._ambient()
        tau = self.cooling.cooling_time_constant
        dt = max(0.0, sim_seconds() - self._temp_t0)
        target = self._cool_target()
        return target + (self._temp0 - target) * math.exp(-dt / tau)

    def _rebase_temperature(self) -> None:
        self._temp0 = self._temperature()
        self._temp_t0 = sim_seconds()

    def _need_cooler(self) -> None:
        if not self.cooled:
            raise NotImplementedAscom("this camera has no cooler")

    def get_ccdtemperature(self) -> float:
        return round(self._temperature(), 3)

    def get_heatsinktemperature(self) -> float:
        return round(self._ambient() + (5.0 if self._cooler_on else 0.0), 3)

    def get_cooleron(self) -> bool:
        self._need_cooler()
        return self._cooler_on

    def put_cooleron(self, CoolerOn: bool) -> None:
        self._need_cooler()
        with self.lock:
            self._rebase_temperature()
            self._cooler_on = bool(CoolerOn)

    def get_coolerpower(self) -> float:
        self._need_cooler()
        if not self._cooler_on:
            return 0.0
        amb = self._ambient()
        delta = max(0.0, amb - self._temperature())
        return round(min(100.0, 100.0 * delta / self.cooling.max_delta), 2)

    def get_setccdtemperature(self) -> float:
        self._need_cooler()
        return self._set_point

    def put_setccdtemperature(self, SetCCDTemperature: float) -> None:
        self._need_cooler()
        if not -60.0 <= SetCCDTemperature <= 40.0:
            raise InvalidValue(f"set point {SetCCDTemperature} out of range -60..40 degC")
        with self.lock:
            self._rebase_temperature()
            self._set_point = float(SetCCDTemperature)

    def get_cansetccdtemperature(self) -> bool:
        return self.cooled

    def get_cangetcoolerpower(self) -> bool:
        return self.cooled

    # ------------------------------------------------------------------ geometry and binning

    def get_cameraxsize(self) -> int:
        return self.nx

    def get_cameraysize(self) -> int:
        return self.ny

    def get_pixelsizex(self) -> float:
        return self.pixel_um

    def get_pixelsizey(self) -> float:
        return self.pixel_um

    def get_maxbinx(self) -> int:
        return self.max_bin

    def get_maxbiny(self) -> int:
        return self.max_bin

    def get_canasymmetricbin(self) -> bool:
        return False

    def get_binx(self) -> int:
        return self._binx

    def put_binx(self, BinX: int) -> None:
        if not 1 <= BinX <= self.max_bin:
            raise InvalidValue(f"BinX {BinX} out of range 1-{self.max_bin}")
        with self.lock:
            self._binx = self._biny = int(BinX)

    def get_biny(self) -> int:
        return self._biny

    def put_biny(self, BinY: int) -> None:
        if not 1 <= BinY <= self.max_bin:
            raise InvalidValue(f"BinY {BinY} out of range 1-{self.max_bin}")
        with self.lock:
            self._binx = self._biny = int(BinY)

    def get_startx(self) -> int:
        return self._startx

    def put_startx(self, StartX: int) -> None:
        if StartX < 0:
            raise InvalidValue("StartX must be >= 0")
        self._startx = int(StartX)

    def get_starty(self) -> int:
        return self._starty

    def put_starty(self, StartY: int) -> None:
        if StartY < 0:
            raise InvalidValue("StartY must be >= 0")
        self._starty = int(StartY)

    def get_numx(self) -> int:
        return self._numx

    def put_numx(self, NumX: int) -> None:
        if NumX < 1:
            raise InvalidValue("NumX must be >= 1")
        self._numx = int(NumX)

    def get_numy(self) -> int:
        return self._numy

    def put_numy(self, NumY: int) -> None:
        if NumY < 1:
            raise InvalidValue("NumY must be >= 1")
        self._numy = int(NumY)

    # ------------------------------------------------------------------ sensor facts

    def get_sensortype(self) -> int:
        return 0  # monochrome

    def get_sensorname(self) -> str:
        return "SIM-3000" if self.role == "spectro" else "SIM-640"

    def get_bayeroffsetx(self) -> int:
        raise NotImplementedAscom("monochrome sensor: no Bayer matrix")

    def get_bayeroffsety(self) -> int:
        raise NotImplementedAscom("monochrome sensor: no Bayer matrix")

    def get_electronsperadu(self) -> float:
        return self.gain

    def get_fullwellcapacity(self) -> float:
        return self.full_well

    def get_maxadu(self) -> int:
        return 65535

    def get_exposuremin(self) -> float:
        return 0.0

    def get_exposuremax(self) -> float:
        return 3600.0

    def get_exposureresolution(self) -> float:
        return 0.001

    def get_hasshutter(self) -> bool:
        return self.role == "spectro"

    def get_canabortexposure(self) -> bool:
        return True

    def get_canstopexposure(self) -> bool:
        return True

    def get_canfastreadout(self) -> bool:
        return False

    def get_fastreadout(self) -> bool:
        raise NotImplementedAscom("no fast read-out mode")

    def put_fastreadout(self, FastReadout: bool) -> None:
        raise NotImplementedAscom("no fast read-out mode")

    def get_canpulseguide(self) -> bool:
        return False

    def get_ispulseguiding(self) -> bool:
        raise NotImplementedAscom("the camera has no guide port")

    def put_pulseguide(self, Direction: int, Duration: int) -> None:
        raise NotImplementedAscom("the camera has no guide port")

    def get_gain(self) -> int:
        raise NotImplementedAscom("gain is fixed")

    def put_gain(self, Gain: int) -> None:
        raise NotImplementedAscom("gain is fixed")

    def get_gainmax(self) -> int:
        raise NotImplementedAscom("gain is fixed")

    def get_gainmin(self) -> int:
        raise NotImplementedAscom("gain is fixed")

    def get_gains(self) -> list[str]:
        raise NotImplementedAscom("gain is fixed")

    def get_offset(self) -> int:
        raise NotImplementedAscom("offset is fixed")

    def put_offset(self, Offset: int) -> None:
        raise NotImplementedAscom("offset is fixed")

    def get_offsetmax(self) -> int:
        raise NotImplementedAscom("offset is fixed")

    def get_offsetmin(self) -> int:
        raise NotImplementedAscom("offset is fixed")

    def get_offsets(self) -> list[str]:
        raise NotImplementedAscom("offset is fixed")

    def get_readoutmode(self) -> int:
        return 0

    def put_readoutmode(self, ReadoutMode: int) -> None:
        if ReadoutMode != 0:
            raise InvalidValue("only read-out mode 0 exists")

    def get_readoutmodes(self) -> list[str]:
        return ["Normal"]

    def get_subexposureduration(self) -> float:
        raise NotImplementedAscom("no sub-exposures")

    def put_subexposureduration(self, SubExposureDuration: float) -> None:
        raise NotImplementedAscom("no sub-exposures")

    # ------------------------------------------------------------------ exposures

    def _state(self) -> int:
        exp = self._exp
        if exp is None:
            return ERROR if self._failed else IDLE
        now = sim_seconds()
        if now < exp["end"]:
            return EXPOSING
        return READING

    def get_camerastate(self) -> int:
        return self._state()

    def get_percentcompleted(self) -> int:
        exp = self._exp
        if exp is None:
            if self._image_ready:
                return 100
            raise InvalidOperation("no exposure in progress")
        if exp["duration"] <= 0:
            return 100
        return int(max(0, min(100, 100 * (sim_seconds() - exp["start"]) / exp["duration"])))

    def get_imageready(self) -> bool:
        return self._image_ready

    def get_lastexposureduration(self) -> float:
        if self._last_duration is None:
            raise ValueNotSet("no exposure taken yet")
        return self._last_duration

    def get_lastexposurestarttime(self) -> str:
        if self._last_start is None:
            raise ValueNotSet("no exposure taken yet")
        return self._last_start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]

    def put_startexposure(self, Duration: float, Light: bool) -> None:
        if not math.isfinite(Duration) or Duration < 0 or Duration > 3600:
            raise InvalidValue(f"exposure duration {Duration} out of range 0-3600 s")
        with self.lock:
            if self._exp is not None:
                raise InvalidOperation("an exposure is already in progress")
            bx, by = self._binx, self._biny
            if self._numx * bx + self._startx * bx > self.nx or self._numy * by + self._starty * by > self.ny:
                raise InvalidValue(
                    f"subframe StartX={self._startx} NumX={self._numx} StartY={self._starty} NumY={self._numy} "
                    f"does not fit the {self.nx // bx}x{self.ny // by} binned sensor"
                )
            start = sim_seconds()
            params: dict[str, Any] = {
                "duration": float(Duration), "light": bool(Light), "binning": (bx, by),
                "subframe": (self._startx, self._starty, self._numx, self._numy),
                "ccd_temp": self._temperature(), "set_temp": self._set_point, "start_dt": utc_now(),
            }
            self._exp = {"start": start, "duration": float(Duration), "end": start + float(Duration), "params": params}
            self._image_ready = False
            self._image = None
            self._failed = None
            self._abort = threading.Event()
            self._last_start = params["start_dt"]
            self._last_duration = float(Duration)
            self._worker = threading.Thread(target=self._expose, args=(self._exp, self._abort), name=f"sim-camera{self.device_number}", daemon=True)
            self._worker.start()

    def _expose(self, exp: dict, abort: threading.Event) -> None:
        clock = get_clock()
        remaining = exp["end"] - sim_seconds()
        if remaining > 0 and clock.sleep(remaining, stop=abort):
            return
        if exp.get("stop_at") is not None:
            exp["params"]["duration"] = max(0.0, exp["stop_at"] - exp["start"])
        try:
            image, truth = self.observatory.scene.render(self, exp["params"])
        except Exception as exc:  # a renderer failure becomes a camera error, never a dead server
            log.exception("rendering failed")
            with self.lock:
                if self._exp is exp:
                    self._failed = f"rendering failed: {exc}"
                    self._exp = None
            return
        # Read-out takes time on the simulated clock too.
        if self.readout_time > 0 and clock.sleep(self.readout_time, stop=abort):
            return
        truth_id = self.observatory.truths.store(truth, camera=self.device_number)
        payload = self._make_payload(image)
        with self.lock:
            if self._exp is not exp or abort.is_set():
                return
            self._payload = (*payload, image)
            self._image = image
            self._truth_id = truth_id
            self._image_ready = True
            self._exp = None

    def put_abortexposure(self) -> None:
        with self.lock:
            if self._exp is None:
                return
            self._abort.set()
            self._exp = None
            self._image_ready = False

    def put_stopexposure(self) -> None:
        with self.lock:
            exp = self._exp
            if exp is None:
                return
            now = sim_seconds()
            if now < exp["end"]:
                # End the exposure now: the worker wakes up, renders what was collected and reads out.
                exp["stop_at"] = now
                exp["end"] = now
                self._last_duration = max(0.0, now - exp["start"])
                self._abort.set()
                self._abort = threading.Event()
                exp_abort = self._abort
                self._worker = threading.Thread(target=self._expose, args=(exp, exp_abort), name=f"sim-camera{self.device_number}", daemon=True)
                self._worker.start()

    @staticmethod
    def _make_payload(image: np.ndarray) -> tuple[bytes, int]:
        # ASCOM arrays are [x][y]: the transposed image, little-endian, made once per frame
        # (in the exposure thread) so that every ImageBytes download is a plain send.
        if image.dtype == np.uint16:
            return np.ascontiguousarray(image.T, dtype="<u2").tobytes(), 8
        return np.ascontiguousarray(image.T, dtype="<i4").tobytes(), 2

    def image_payload(self) -> tuple[np.ndarray, bytes, int]:
        """Return (image, ImageBytes data, transmission element type) of the last image."""
        image = self.image()
        with self.lock:
            payload = getattr(self, "_payload", None)
            if payload is None or payload[2] is not image:
                payload = (*self._make_payload(image), image)
                self._payload = payload
        return image, payload[0], payload[1]

    def image(self) -> np.ndarray:
        """Return the last image as (rows, columns) uint16; raise if none is ready."""
        if self._failed:
            raise InvalidOperation(self._failed)
        if not self._image_ready or self._image is None:
            raise InvalidOperation("no image ready: start an exposure and wait for ImageReady")
        return self._image

    def get_imagearray(self):  # served specially by the HTTP layer (JSON or ImageBytes)
        return self.image()

    def get_imagearrayvariant(self):
        return self.image()

    def actions(self) -> dict:
        return {"truth_id": lambda _params="": self._truth_id or ""}

    def device_state(self) -> dict:
        state = {"CameraState": self._state(), "CCDTemperature": self.get_ccdtemperature(), "HeatSinkTemperature": self.get_heatsinktemperature(), "ImageReady": self._image_ready, "IsPulseGuiding": False}
        if self.cooled:
            state["CoolerPower"] = self.get_coolerpower()
        if self._exp is not None:
            state["PercentCompleted"] = self.get_percentcompleted()
        return state

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap.update({
            "role": self.role, "state": ["idle", "waiting", "exposing", "reading", "download", "error"][self._state()],
            "ccd_temperature": self.get_ccdtemperature(), "cooler_on": self._cooler_on, "set_point": self._set_point,
            "binning": [self._binx, self._biny], "subframe": [self._startx, self._starty, self._numx, self._numy],
            "image_ready": self._image_ready, "truth_id": self._truth_id,
        })
        return snap
