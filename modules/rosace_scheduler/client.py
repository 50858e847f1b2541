"""Python client of the scheduler module's REST API (used by the sequencer, the demo and the tab)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from rosace_core.http import RestClient


def _iso(value) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)


class SchedulerClient(RestClient):
    """Client of ``/api/v1/scheduler``."""

    module = "scheduler"

    def submit(self, content: str, format: str | None = None, filename: str | None = None) -> dict:
        """Queue an Observing File; raises ApiError (status 422, ``problem['errors']``) if invalid."""
        return self.post("/files", {"content": content, "format": format, "filename": filename})

    def submit_path(self, path: Path | str) -> dict:
        """Queue an Observing File from disk."""
        path = Path(path)
        return self.submit(path.read_text(encoding="utf-8"), "json" if path.suffix.lower() == ".json" else "yaml", path.name)

    def validate(self, content: str, format: str | None = None, filename: str | None = None) -> dict:
        """Return ``{valid, errors[]}`` without queueing."""
        return self.post("/validate", {"content": content, "format": format, "filename": filename})

    def queue(self, time=None, *, limit: int | None = None, offset: int = 0, state: str | None = None) -> dict:
        """Return ``{total, counts, next_offset, files: [{id, state, reason, ...}], rejected: [...]}``.

        ``limit=None`` fetches every page (the server sends at most ``limit`` files, 500 by default, per answer).
        """
        params = {k: v for k, v in {"time": _iso(time) if time else None, "offset": offset, "state": state, "limit": limit}.items() if v is not None}
        doc = self.get("/queue", params=params)
        while limit is None and doc.get("next_offset") is not None:
            more = self.get("/queue", params={**params, "offset": doc["next_offset"]})
            doc["files"] += more["files"]
            doc["next_offset"] = more.get("next_offset")
        return doc

    def rules(self) -> list[dict]:
        """Return the user rules in use: ``[{name, kind, title, source, options, weight, error}]``."""
        return self.get("/rules")["rules"]

    def file(self, file_id: str) -> dict:
        return self.get(f"/files/{file_id}")

    def remove(self, file_id: str) -> dict:
        return self.delete(f"/files/{file_id}")

    def next(self, time=None, pointing: dict | None = None, conditions: dict | None = None) -> dict:
        """Return the next observation (``observation`` is None with ``reason`` and ``retry_at`` when none)."""
        body: dict = {}
        if time is not None:
            body["time"] = _iso(time)
        if pointing is not None:
            body["pointing"] = pointing
        if conditions is not None:
            body["conditions"] = conditions
        return self.post("/next", body)

    def record_outcome(self, observation_id: str, file_id: str, outcome: str, started=None, ended=None, frames=None, message: str | None = None) -> dict:
        """Report ``completed``, ``failed`` or ``interrupted`` for a dispatched observation."""
        return self.post("/outcomes", {"observation_id": observation_id, "file_id": file_id, "outcome": outcome,
                                       "started": _iso(started), "ended": _iso(ended), "frames": list(frames or []), "message": message})

    def plan(self, night=None, curves: bool = False) -> dict:
        params = {}
        if night:
            params["night"] = str(night)
        if curves:
            params["curves"] = "true"
        return self.get("/plan", params=params or None)

    def explain(self, file_id: str, time=None) -> dict:
        return self.get(f"/explain/{file_id}", params={"time": _iso(time)} if time else None)

    def history(self, file_id: str | None = None, limit: int = 500) -> list:
        params: dict[str, Any] = {"limit": limit}
        if file_id:
            params["file_id"] = file_id
        return self.get("/history", params=params)

    def reference(self, spectrograph: str | None = None, time=None, airmass: float | None = None, **extra) -> dict:
        params = {k: v for k, v in {"spectrograph": spectrograph, "time": _iso(time), "airmass": airmass, **extra}.items() if v is not None}
        return self.get("/reference", params=params)
