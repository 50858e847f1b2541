"""ROSACE exceptions shared by all modules.

The rest of the code never sees alpyca or Flask exceptions: the Alpaca adapter
translates device errors into these, the REST layer turns them into problem
documents.
"""

from __future__ import annotations


class RosaceError(Exception):
    """Base class of every error ROSACE raises on purpose."""


class ConfigError(RosaceError):
    """The observatory configuration is missing or invalid.

    ``problems`` is a list of ``(location, message)`` pairs, one per error.
    """

    def __init__(self, path, problems: list[tuple[str, str]]):
        self.path = path
        self.problems = problems
        text = "; ".join(f"{loc}: {msg}" for loc, msg in problems)
        super().__init__(f"{path}: {text}")


class DeviceError(RosaceError):
    """A hardware device failed: it answered with an error, or not at all."""

    def __init__(self, device: str, message: str, *, code: int | None = None):
        self.device = device
        self.code = code
        super().__init__(f"{device}: {message}")


class DeviceTimeout(DeviceError):
    """A device did not answer, or an action did not finish, within its timeout."""


class DeviceNotConnected(DeviceError):
    """The device is not connected (or not reachable on the network)."""


class InvalidOperation(DeviceError):
    """The device refused an action in its current state (parked, slaved, busy...)."""


class Aborted(RosaceError):
    """A long action was aborted on request."""


class ConflictError(RosaceError):
    """A request cannot be honoured in the current state (HTTP 409).

    ``reasons`` lists why, in words an operator understands.
    """

    def __init__(self, message: str, reasons: list[str] | None = None):
        self.reasons = reasons or []
        super().__init__(message)


class NotFoundError(RosaceError):
    """A named resource does not exist (HTTP 404)."""
