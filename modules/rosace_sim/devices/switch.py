"""The switch box (ASCOM ISwitchV3): by default the calibration module's lamps
(Shelyak-style: 0 = NeAr arc, 1 = tungsten flat); a scenario's ``switch.channels``
may put other channels beside them (a mount power outlet, a dew-heater dimmer),
which ROSACE must leave alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rosace_sim.devices.base import InvalidValue, NotImplementedAscom, SimDevice, utc_now


class SimSwitch(SimDevice):
    """Switch device 0: relays (0/1) and value channels (0..max, step 1) from the scenario."""

    device_type = "switch"
    interface_version = 3
    description = "Simulated switch box (calibration lamps and any other channels of the scenario)"

    def __init__(self, observatory, device_number: int = 0):
        super().__init__(observatory, device_number, name="ROSACE sim calibration lamps")
        channels = observatory.scenario.switch.channels
        self._names = [c.name for c in channels]
        self._descriptions = [c.description or c.name for c in channels]
        self._lamps = [c.lamp for c in channels]
        self._max = [float(c.max) for c in channels]
        self._value = [min(float(c.value), float(c.max)) for c in channels]
        self._changed: list[datetime | None] = [None] * len(channels)

    @property
    def _state(self) -> list[bool]:
        return [v > 0 for v in self._value]

    def _id(self, Id: int) -> int:
        if not 0 <= Id < len(self._value):
            raise InvalidValue(f"switch id {Id} out of range 0-{len(self._value) - 1}")
        return Id

    def lamp_on(self) -> str:
        """Return the lit lamps' light ('NeAr', 'tungsten', 'NeAr+tungsten') or 'none'."""
        lit = [lamp for lamp, on in zip(self._lamps, self._state) if on and lamp]
        return "+".join(lit) if lit else "none"

    def get_maxswitch(self) -> int:
        return len(self._value)

    def get_canasync(self, Id: int) -> bool:
        self._id(Id)
        return False

    def get_canwrite(self, Id: int) -> bool:
        self._id(Id)
        return True

    def get_getswitch(self, Id: int) -> bool:
        return self._state[self._id(Id)]

    def get_getswitchdescription(self, Id: int) -> str:
        return self._descriptions[self._id(Id)]

    def get_getswitchname(self, Id: int) -> str:
        return self._names[self._id(Id)]

    def get_getswitchvalue(self, Id: int) -> float:
        return self._value[self._id(Id)]

    def get_minswitchvalue(self, Id: int) -> float:
        self._id(Id)
        return 0.0

    def get_maxswitchvalue(self, Id: int) -> float:
        return self._max[self._id(Id)]

    def get_switchstep(self, Id: int) -> float:
        self._id(Id)
        return 1.0

    def get_statechangecomplete(self, Id: int) -> bool:
        self._id(Id)
        return True

    def put_setswitch(self, Id: int, State: bool) -> None:
        # ASCOM: SetSwitch(true) sets the maximum value, SetSwitch(false) the minimum.
        i = self._id(Id)
        with self.lock:
            self._value[i] = self._max[i] if State else 0.0
            self._changed[i] = utc_now()

    def put_setswitchvalue(self, Id: int, Value: float) -> None:
        i = self._id(Id)
        if not (0.0 <= Value <= self._max[i]) or Value != int(Value):
            raise InvalidValue(f"switch {i} value {Value} must be a whole number in 0-{self._max[i]:g}")
        with self.lock:
            self._value[i] = float(Value)
            self._changed[i] = utc_now()

    def put_setswitchname(self, Id: int, Name: str) -> None:
        self._id(Id)
        raise NotImplementedAscom("switch names are fixed")

    def put_setasync(self, Id: int, State: bool) -> None:
        self._id(Id)
        raise NotImplementedAscom("asynchronous switching is not offered")

    def put_setasyncvalue(self, Id: int, Value: float) -> None:
        self._id(Id)
        raise NotImplementedAscom("asynchronous switching is not offered")

    def device_state(self) -> dict:
        state: dict[str, Any] = {}
        for i in range(len(self._value)):
            state[f"GetSwitch{i}"] = self._state[i]
            state[f"GetSwitchValue{i}"] = self._value[i]
            state[f"StateChangeComplete{i}"] = True
        return state

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap["lamps"] = {n: s for n, s, lamp in zip(self._names, self._state, self._lamps) if lamp}
        snap["channels"] = [{"id": i, "name": n, "value": v, "max": m}
                            for i, (n, v, m) in enumerate(zip(self._names, self._value, self._max))]
        return snap
