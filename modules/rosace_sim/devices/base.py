"""What every simulated Alpaca device shares: ASCOM errors, connection, faults.

A device is a plain state machine (no Flask, no threads of its own unless it has
to wait for something, like a camera exposure). Its state is computed lazily from
the observatory clock at every call, so a fast simulated clock just works.

The HTTP layer (:mod:`rosace_sim.server`) calls ``get_<name>()`` for a GET of
``/api/v1/<type>/<n>/<name>`` and ``put_<name>(**params)`` for a PUT; parameters
are passed by their ASCOM names and converted from the type annotations.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rosace_core.clock import get_clock

if TYPE_CHECKING:  # pragma: no cover
    from rosace_sim.observatory import Observatory

#: Namespace of the stable UniqueIDs (uuid5 of the device type, number and server name).
UNIQUE_ID_NAMESPACE = uuid.UUID("6f1b7c3e-2a8d-4f3b-9d0e-52a1c0ffee00")


class AscomError(Exception):
    """An ASCOM error: the device answers HTTP 200 with ErrorNumber / ErrorMessage."""

    number = 0x500

    def __init__(self, message: str, number: int | None = None):
        super().__init__(message)
        self.message = message
        if number is not None:
            self.number = number


class NotImplementedAscom(AscomError):
    number = 0x400


class InvalidValue(AscomError):
    number = 0x401


class ValueNotSet(AscomError):
    number = 0x402


class NotConnected(AscomError):
    number = 0x407


class ParkedError(AscomError):
    number = 0x408


class SlavedError(AscomError):
    number = 0x409


class InvalidOperation(AscomError):
    number = 0x40B


class ActionNotImplemented(AscomError):
    number = 0x40C


class DriverError(AscomError):
    number = 0x500


def utc_now() -> datetime:
    """Return the observatory clock's now (aware UTC)."""
    return get_clock().now()


def sim_seconds() -> float:
    """Return the observatory clock's now as Unix seconds (simulated time)."""
    return get_clock().now().timestamp()


#: Members that answer without a connection (ASCOM: information properties and connection control).
NO_CONNECTION_NEEDED = frozenset(
    {
        "connected", "connect", "disconnect", "connecting", "description", "driverinfo",
        "driverversion", "interfaceversion", "name", "supportedactions",
    }
)


class SimDevice:
    """Base of every simulated device.

    Subclasses set ``device_type`` and ``interface_version`` and add
    ``get_<member>`` / ``put_<member>`` methods named after the Alpaca URL member.
    """

    device_type = ""
    interface_version = 1
    description = "ROSACE simulated device"

    def __init__(self, observatory: "Observatory", device_number: int = 0, name: str | None = None):
        self.observatory = observatory
        self.device_number = device_number
        self.display_name = name or f"ROSACE sim {self.device_type} {device_number}"
        self.lock = threading.RLock()
        self._connected = False
        self.unique_id = str(uuid.uuid5(UNIQUE_ID_NAMESPACE, f"{observatory.server_name}/{self.device_type}/{device_number}"))

    # ------------------------------------------------------------------ faults

    def fault(self, kind: str):
        """Return the active fault of ``kind`` on this device, or None."""
        return self.observatory.faults.active(self.device_type, self.device_number, kind)

    def check_call(self, member: str) -> None:
        """Raise the ASCOM error a call to ``member`` gets now (faults, connection)."""
        if self.fault("disconnect"):
            with self.lock:
                self._connected = False
            if member in ("connected", "connecting", "name", "description", "driverinfo", "driverversion", "interfaceversion", "supportedactions"):
                return
            raise NotConnected(f"{self.device_type} {self.device_number} is not responding (simulated disconnection)")
        if self.fault("error") and member not in NO_CONNECTION_NEEDED:
            raise DriverError(f"simulated driver error on {self.device_type} {self.device_number}", 0x500)
        if member not in NO_CONNECTION_NEEDED and not self._connected:
            raise NotConnected(f"{self.device_type} {self.device_number} is not connected")

    # ------------------------------------------------------------------ common members

    def get_connected(self) -> bool:
        return self._connected

    def put_connected(self, Connected: bool) -> None:
        if Connected:
            self.put_connect()
        else:
            self.put_disconnect()

    def put_connect(self) -> None:
        if self.fault("disconnect"):
            raise NotConnected(f"{self.device_type} {self.device_number}: cannot connect (simulated disconnection)")
        with self.lock:
            self._connected = True

    def put_disconnect(self) -> None:
        with self.lock:
            self._connected = False

    def get_connecting(self) -> bool:
        # Connection is immediate in the simulator.
        return False

    def get_description(self) -> str:
        return self.description

    def get_driverinfo(self) -> str:
        return "ROSACE simulated observatory (rosace_sim), an ASCOM Alpaca server for tests and demos"

    def get_driverversion(self) -> str:
        from rosace_core import __version__

        return __version__

    def get_interfaceversion(self) -> int:
        return self.interface_version

    def get_name(self) -> str:
        return self.display_name

    def get_supportedactions(self) -> list[str]:
        return sorted(self.actions())

    def actions(self) -> dict:
        """Return the device's Action names -> callables taking the parameter string."""
        return {}

    def put_action(self, Action: str, Parameters: str = "") -> str:
        for name, fn in self.actions().items():
            if name.lower() == Action.lower():
                return str(fn(Parameters))
        raise ActionNotImplemented(f"action {Action!r} is not implemented by {self.device_type} {self.device_number}")

    def put_commandblind(self, Command: str, Raw: str = "") -> None:
        raise NotImplementedAscom("CommandBlind is not implemented")

    def put_commandbool(self, Command: str, Raw: str = "") -> bool:
        raise NotImplementedAscom("CommandBool is not implemented")

    def put_commandstring(self, Command: str, Raw: str = "") -> str:
        raise NotImplementedAscom("CommandString is not implemented")

    def device_state(self) -> dict[str, Any]:
        """Return the operational properties of DeviceState (ASCOM names -> values)."""
        return {}

    def get_devicestate(self) -> list[dict]:
        # String values (TimeStamp, UTCDate) are left out on purpose: the official
        # OpenAPI schema's oneOf (string | date-time string) rejects every string.
        return [{"Name": k, "Value": v} for k, v in self.device_state().items() if not isinstance(v, str)]

    def snapshot(self) -> dict:
        """Return a JSON-able summary of the device for ``GET /sim/v1/state``."""
        return {"connected": self._connected, "name": self.display_name, "unique_id": self.unique_id}
