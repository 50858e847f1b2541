"""A focuser (ASCOM IFocuserV4): an absolute stepper moving at a constant speed.

Besides focusing, this is what a LHIRES III grating-angle motor looks like to an
observatory program (a focuser driver on the grating's micrometer), so the
worked example of docs/adapting/grating-angle.md drives it. The position moves on
the observatory clock at ``speed`` steps per second; ``Move`` beyond 0..MaxStep is
refused (InvalidValue), ``Halt`` stops where it is.
"""

from __future__ import annotations

from rosace_sim.devices.base import InvalidOperation, InvalidValue, SimDevice, sim_seconds, utc_now


class SimFocuser(SimDevice):
    """Focuser device 0."""

    device_type = "focuser"
    interface_version = 4
    description = "Simulated absolute focuser (or grating-angle stepper)"

    def __init__(self, observatory, device_number: int = 0):
        super().__init__(observatory, device_number, name="ROSACE sim focuser")
        self.cfg = observatory.scenario.focuser
        self._pos = float(self.cfg.position)
        self._t0 = sim_seconds()
        self._target: int | None = None
        self._temp_comp = False

    def _position(self) -> float:
        """The position now (moving towards the target at ``speed``); the move ends on arrival."""
        now = sim_seconds()
        if self._target is not None:
            step = (now - self._t0) * float(self.cfg.speed)
            if self._target > self._pos:
                self._pos = min(float(self._target), self._pos + step)
            else:
                self._pos = max(float(self._target), self._pos - step)
            if self._pos == self._target:
                self._target = None
        self._t0 = now
        return self._pos

    # ------------------------------------------------------------------ IFocuserV4

    def get_absolute(self) -> bool:
        return True

    def get_ismoving(self) -> bool:
        with self.lock:
            self._position()
            return self._target is not None

    def get_maxincrement(self) -> int:
        return int(self.cfg.max_step)

    def get_maxstep(self) -> int:
        return int(self.cfg.max_step)

    def get_position(self) -> int:
        with self.lock:
            return int(round(self._position()))

    def get_stepsize(self) -> float:
        return float(self.cfg.step_size)

    def get_tempcomp(self) -> bool:
        return self._temp_comp

    def put_tempcomp(self, TempComp: bool) -> None:
        if TempComp:
            raise InvalidOperation("this focuser has no temperature compensation (TempCompAvailable false)")
        self._temp_comp = False

    def get_tempcompavailable(self) -> bool:
        return False

    def get_temperature(self) -> float:
        # the scenario's air temperature (what a focuser's probe in the tube reads)
        return float(self.observatory.weather.values_at(utc_now())["temperature"])

    def put_halt(self) -> None:
        with self.lock:
            self._position()
            self._target = None

    def put_move(self, Position: int) -> None:
        if not 0 <= Position <= int(self.cfg.max_step):
            raise InvalidValue(f"position {Position} out of range 0-{int(self.cfg.max_step)}")
        if self._temp_comp:
            raise InvalidOperation("cannot move while temperature compensation is on")
        with self.lock:
            self._position()
            self._target = None if Position == round(self._pos) else int(Position)
            if self._target is None:
                self._pos = float(Position)

    def device_state(self) -> dict:
        return {"IsMoving": self.get_ismoving(), "Position": self.get_position(), "Temperature": self.get_temperature()}

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap.update(position=self.get_position(), moving=self.get_ismoving(), target=self._target)
        return snap
