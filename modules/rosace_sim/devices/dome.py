"""The simulated shelter: a roll-off roof (shutter only) or a rotating dome.

The shutter (or roof) is a position between 0 (closed) and 1 (open) moving at a
constant speed: a full move takes ``shutter_time`` simulated seconds. A
``stuck_shutter`` fault stalls it where it is; after ``stall_error_after``
seconds stalled the device reports ShutterState error and stops trying.
"""

from __future__ import annotations

from typing import Any

from rosace_sim.devices.base import InvalidValue, NotImplementedAscom, SimDevice, sim_seconds

OPEN, CLOSED, OPENING, CLOSING, ERROR = 0, 1, 2, 3, 4


class SimDome(SimDevice):
    """Dome device 0 (ASCOM IDomeV3)."""

    device_type = "dome"
    interface_version = 3

    def __init__(self, observatory, device_number: int = 0):
        super().__init__(observatory, device_number, name="ROSACE sim roll-off roof" if observatory.scenario.shelter.type == "rolloff" else "ROSACE sim dome")
        cfg = observatory.scenario.shelter
        self.cfg = cfg
        self.rotating = cfg.type == "dome"
        self.description = "Simulated rotating dome" if self.rotating else "Simulated roll-off roof"
        t = sim_seconds()
        # shutter: position at t0, moving towards target (None = still)
        self._pos = 1.0 if cfg.start_open else 0.0
        self._t0 = t
        self._target: float | None = None
        self._error = False
        self._stall_since: float | None = None
        self._stall_pos: float | None = None
        # azimuth
        self._az = cfg.park_azimuth
        self._az_t0 = t
        self._az_target: float | None = None
        self._slaved = False
        self._at_park = True

    # ------------------------------------------------------------------ shutter model

    def _speed(self) -> float:
        return 1.0 / self.cfg.shutter_time if self.cfg.shutter_time > 0 else float("inf")

    def _update(self) -> None:
        """Advance the shutter to now (call under the lock)."""
        now = sim_seconds()
        if self._target is None:
            self._t0 = now
            return
        stuck = self.fault("stuck_shutter")
        if stuck:
            if self._stall_since is None:
                self._pos = self._position_at(now)
                self._stall_since = now
                self._t0 = now
            if now - self._stall_since >= self.cfg.stall_error_after:
                self._target = None
                self._error = True
                self._stall_since = None
            return
        if self._stall_since is not None:  # fault cleared: motion resumes from where it stalled
            self._stall_since = None
            self._t0 = now
        pos = self._position_at(now)
        if pos == self._target:
            self._pos = pos
            self._target = None
        self._pos, self._t0 = (pos, now) if self._target is not None else (self._pos, now)

    def _position_at(self, now: float) -> float:
        if self._target is None:
            return self._pos
        step = (now - self._t0) * self._speed()
        if self._target > self._pos:
            return min(self._target, self._pos + step)
        return max(self._target, self._pos - step)

    def shutter_status(self) -> int:
        with self.lock:
            self._update()
            if self._error:
                return ERROR
            if self._target is not None:
                return OPENING if self._target >= 0.5 else CLOSING
            if self._pos >= 1.0:
                return OPEN
            if self._pos <= 0.0:
                return CLOSED
            return ERROR  # stopped part-way (aborted)

    def _move(self, target: float) -> None:
        with self.lock:
            self._update()
            if self._target == target or (self._target is None and self._pos == target and not self._error):
                return
            self._error = False
            self._stall_since = None
            self._target = target
            self._t0 = sim_seconds()
            if self.cfg.shutter_time <= 0:
                self._pos, self._target = target, None

    def put_openshutter(self) -> None:
        self._move(1.0)

    def put_closeshutter(self) -> None:
        self._move(0.0)

    def get_shutterstatus(self) -> int:
        return self.shutter_status()

    # ------------------------------------------------------------------ azimuth model

    def _az_update(self) -> None:
        now = sim_seconds()
        if self._slaved:
            tel_az = self.observatory.telescope.current_altaz()[1]
            if self._az_target is None or abs(((tel_az - self._az_target + 180) % 360) - 180) > 1.0:
                self._az = self._azimuth_at(now)
                self._az_t0 = now
                self._az_target = tel_az
        if self._az_target is None:
            self._az_t0 = now
            return
        az = self._azimuth_at(now)
        if abs(((az - self._az_target + 180) % 360) - 180) < 1e-9:
            self._az, self._az_target = self._az_target % 360, None
        else:
            self._az = az
        self._az_t0 = now

    def _azimuth_at(self, now: float) -> float:
        if self._az_target is None:
            return self._az
        diff = ((self._az_target - self._az + 180) % 360) - 180
        step = (now - self._az_t0) * self.cfg.slew_rate
        if step >= abs(diff):
            return self._az_target % 360
        return (self._az + step * (1 if diff > 0 else -1)) % 360

    def _need_rotation(self) -> None:
        if not self.rotating:
            raise NotImplementedAscom("a roll-off roof has no azimuth")

    def get_azimuth(self) -> float:
        self._need_rotation()
        with self.lock:
            self._az_update()
            return round(self._az, 4)

    def get_altitude(self) -> float:
        raise NotImplementedAscom("the shutter has no altitude control")

    def get_slewing(self) -> bool:
        with self.lock:
            self._update()
            moving = self._target is not None
            if self.rotating:
                self._az_update()
                moving = moving or self._az_target is not None
            return moving

    def put_slewtoazimuth(self, Azimuth: float) -> None:
        self._need_rotation()
        if not 0 <= Azimuth < 360:
            raise InvalidValue(f"azimuth {Azimuth} out of range 0-360")
        if self._slaved:
            from rosace_sim.devices.base import SlavedError

            raise SlavedError("the dome is slaved to the telescope")
        with self.lock:
            self._az_update()
            self._az_target = float(Azimuth)
            self._az_t0 = sim_seconds()
            self._at_park = False

    def put_synctoazimuth(self, Azimuth: float) -> None:
        self._need_rotation()
        if not 0 <= Azimuth < 360:
            raise InvalidValue(f"azimuth {Azimuth} out of range 0-360")
        with self.lock:
            self._az, self._az_target, self._az_t0 = float(Azimuth), None, sim_seconds()

    def put_slewtoaltitude(self, Altitude: float) -> None:
        raise NotImplementedAscom("the shutter has no altitude control")

    def put_abortslew(self) -> None:
        with self.lock:
            self._update()
            self._pos = self._position_at(sim_seconds())
            if self._target is not None:
                self._target = None
            if self.rotating:
                self._az_update()
                self._az_target = None
                self._slaved = False

    def put_park(self) -> None:
        self._need_rotation()
        with self.lock:
            self._slaved = False
            self._az_update()
            self._az_target = self.cfg.park_azimuth
            self._az_t0 = sim_seconds()
            self._at_park = True

    def put_findhome(self) -> None:
        self._need_rotation()
        with self.lock:
            self._az_update()
            self._az_target = self.cfg.home_azimuth
            self._az_t0 = sim_seconds()
            self._at_park = False

    def put_setpark(self) -> None:
        self._need_rotation()
        with self.lock:
            self._az_update()
            self.cfg = self.cfg.model_copy(update={"park_azimuth": self._az})

    def get_atpark(self) -> bool:
        if not self.rotating:
            return False
        with self.lock:
            self._az_update()
            return self._at_park and self._az_target is None and abs(((self._az - self.cfg.park_azimuth + 180) % 360) - 180) < 0.5

    def get_athome(self) -> bool:
        if not self.rotating:
            return False
        with self.lock:
            self._az_update()
            return self._az_target is None and abs(((self._az - self.cfg.home_azimuth + 180) % 360) - 180) < 0.5

    def get_slaved(self) -> bool:
        return self._slaved

    def put_slaved(self, Slaved: bool) -> None:
        if Slaved and not self.rotating:
            raise NotImplementedAscom("a roll-off roof cannot be slaved")
        with self.lock:
            self._slaved = bool(Slaved)
            if Slaved:
                self._at_park = False

    def get_canfindhome(self) -> bool:
        return self.rotating

    def get_canpark(self) -> bool:
        return self.rotating

    def get_cansetaltitude(self) -> bool:
        return False

    def get_cansetazimuth(self) -> bool:
        return self.rotating

    def get_cansetpark(self) -> bool:
        return self.rotating

    def get_cansetshutter(self) -> bool:
        return True

    def get_canslave(self) -> bool:
        return self.rotating

    def get_cansyncazimuth(self) -> bool:
        return self.rotating

    def device_state(self) -> dict:
        state: dict[str, Any] = {"ShutterStatus": self.shutter_status(), "Slewing": self.get_slewing()}
        if self.rotating:
            state.update({"Azimuth": self.get_azimuth(), "AtHome": self.get_athome(), "AtPark": self.get_atpark()})
        else:
            state.update({"AtHome": False, "AtPark": False})
        return state

    def snapshot(self) -> dict:
        snap = super().snapshot()
        with self.lock:
            self._update()
            pos = self._position_at(sim_seconds())
        snap.update({"type": self.cfg.type, "shutter": ["open", "closed", "opening", "closing", "error"][self.shutter_status()], "shutter_position": round(pos, 3)})
        if self.rotating:
            snap["azimuth"] = self.get_azimuth()
            snap["slaved"] = self._slaved
        return snap
