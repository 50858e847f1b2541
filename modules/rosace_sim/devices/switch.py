"""The calibration module's lamps on a Switch device (Shelyak-style): 0 = NeAr arc, 1 = tungsten flat."""

from __future__ import annotations

from rosace_sim.devices.base import InvalidValue, NotImplementedAscom, SimDevice, utc_now

LAMPS = (("NeAr", "Neon-argon arc lamp of the calibration module"), ("tungsten", "Tungsten (halogen) flat-field lamp of the calibration module"))


class SimSwitch(SimDevice):
    """Switch device 0 (ASCOM ISwitchV3): two boolean relays."""

    device_type = "switch"
    interface_version = 3
    description = "Simulated calibration module (arc and flat lamps)"

    def __init__(self, observatory, device_number: int = 0):
        super().__init__(observatory, device_number, name="ROSACE sim calibration lamps")
        self._names = [name for name, _ in LAMPS]
        self._state = [False] * len(LAMPS)
        self._changed = [None] * len(LAMPS)

    def _id(self, Id: int) -> int:
        if not 0 <= Id < len(self._state):
            raise InvalidValue(f"switch id {Id} out of range 0-{len(self._state) - 1}")
        return Id

    def lamp_on(self) -> str:
        """Return the lit lamp's name ('NeAr', 'tungsten', 'NeAr+tungsten') or 'none'."""
        lit = [n for n, s in zip(self._names, self._state) if s]
        return "+".join(lit) if lit else "none"

    def get_maxswitch(self) -> int:
        return len(self._state)

    def get_canasync(self, Id: int) -> bool:
        self._id(Id)
        return False

    def get_canwrite(self, Id: int) -> bool:
        self._id(Id)
        return True

    def get_getswitch(self, Id: int) -> bool:
        return self._state[self._id(Id)]

    def get_getswitchdescription(self, Id: int) -> str:
        return LAMPS[self._id(Id)][1]

    def get_getswitchname(self, Id: int) -> str:
        return self._names[self._id(Id)]

    def get_getswitchvalue(self, Id: int) -> float:
        return 1.0 if self._state[self._id(Id)] else 0.0

    def get_minswitchvalue(self, Id: int) -> float:
        self._id(Id)
        return 0.0

    def get_maxswitchvalue(self, Id: int) -> float:
        self._id(Id)
        return 1.0

    def get_switchstep(self, Id: int) -> float:
        self._id(Id)
        return 1.0

    def get_statechangecomplete(self, Id: int) -> bool:
        self._id(Id)
        return True

    def put_setswitch(self, Id: int, State: bool) -> None:
        i = self._id(Id)
        with self.lock:
            self._state[i] = bool(State)
            self._changed[i] = utc_now()

    def put_setswitchvalue(self, Id: int, Value: float) -> None:
        i = self._id(Id)
        if Value not in (0.0, 1.0):
            raise InvalidValue(f"switch value {Value} must be 0 or 1")
        self.put_setswitch(i, Value == 1.0)

    def put_setswitchname(self, Id: int, Name: str) -> None:
        self._id(Id)
        raise NotImplementedAscom("lamp names are fixed")

    def put_setasync(self, Id: int, State: bool) -> None:
        self._id(Id)
        raise NotImplementedAscom("asynchronous switching is not offered")

    def put_setasyncvalue(self, Id: int, Value: float) -> None:
        self._id(Id)
        raise NotImplementedAscom("asynchronous switching is not offered")

    def device_state(self) -> dict:
        state = {}
        for i, name in enumerate(self._names):
            state[f"GetSwitch{i}"] = self._state[i]
            state[f"GetSwitchValue{i}"] = 1.0 if self._state[i] else 0.0
            state[f"StateChangeComplete{i}"] = True
        return state

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap["lamps"] = dict(zip(self._names, self._state))
        return snap
