"""Python client of the dome module's REST API (used by the sequencer, the demo and the tab)."""

from __future__ import annotations

from typing import Any

from rosace_core.http import RestClient


class DomeClient(RestClient):
    """Client of ``/api/v1/dome``. Errors: ConflictError (409, with ``reasons``), NotFoundError, ApiError."""

    module = "dome"

    def status(self) -> dict:
        """Shelter state, verdict with reasons, sensors, mount, leases, alarms, maintenance."""
        return self.get("/status")

    def open(self, source: str = "", reason: str = "") -> dict:
        """Start opening; return the job. Raises ConflictError with ``reasons`` when refused."""
        return self.post("/open", {"source": source, "reason": reason})

    def close(self, reason: str = "", source: str = "") -> dict:
        """Park the mount then close; return the job."""
        return self.post("/close", {"source": source, "reason": reason})

    def park(self, source: str = "") -> dict:
        return self.post("/park", {"source": source})

    def home(self, source: str = "") -> dict:
        return self.post("/home", {"source": source})

    def acquire_lease(self, holder: str, duration: float) -> dict:
        """Take a lease (seconds of clock time); return ``{id, holder, expires, ...}``."""
        return self.post("/leases", {"holder": holder, "duration": duration})

    def renew_lease(self, lease_id: str, duration: float) -> dict:
        return self.put(f"/leases/{lease_id}", {"duration": duration})

    def release_lease(self, lease_id: str) -> dict:
        return self.delete(f"/leases/{lease_id}")

    def leases(self) -> list[dict]:
        return self.get("/leases")

    def set_maintenance(self, locked: bool, reason: str = "") -> dict:
        return self.put("/maintenance", {"locked": locked, "reason": reason})

    def events(self, since: int = 0, limit: int = 200, kind: str | None = None) -> list[dict]:
        params: dict[str, Any] = {"since": since, "limit": limit}
        if kind:
            params["kind"] = kind
        return self.get("/events", params=params)

    def alarms(self) -> list[dict]:
        return self.get("/alarms")

    def acknowledge_alarms(self) -> dict:
        return self.post("/alarms/acknowledge")
