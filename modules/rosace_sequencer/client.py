"""Python client of the sequencer module's REST API."""

from __future__ import annotations

from rosace_core.http import RestClient


class SequencerClient(RestClient):
    """Client of ``/api/v1/sequencer``."""

    module = "sequencer"

    def status(self) -> dict:
        """Return the live status (mode, state, observation, step, progress, last frame)."""
        return self.get("/status")

    def run(self, file: dict | str | None = None, *, file_id: str | None = None, observation_id: str | None = None) -> dict:
        """Run one Observing File now (a dict, YAML/JSON text, or a scheduler file id); return the job."""
        body: dict = {"file_id": file_id} if file_id is not None else {"file": file}
        if observation_id:
            body["observation_id"] = observation_id
        return self.post("/run", body)

    def start_night(self, files: list | None = None) -> dict:
        """Start the robotic night; return the job."""
        return self.post("/night/start", {"files": files or []})

    def stop_night(self) -> dict:
        return self.post("/night/stop")

    def abort(self) -> dict:
        return self.post("/abort")

    def pause(self) -> dict:
        return self.post("/pause")

    def resume(self) -> dict:
        return self.post("/resume")

    def log(self, since: int = 0, limit: int = 200) -> list[dict]:
        """Return log lines after sequence number ``since``."""
        return self.get("/log", params={"since": since, "limit": limit})

    def history(self, night: str | None = None, limit: int = 200) -> list[dict]:
        params: dict = {"limit": limit}
        if night:
            params["night"] = night
        return self.get("/history", params=params)

    def telemetry(self) -> dict:
        """Return the live view: slit-jaw image with slit and star, guide offsets, temperatures, mount position."""
        return self.get("/telemetry")

    def last_frame(self, max_size: int = 400) -> dict:
        """Return the last frame binned down, with its profile along the dispersion."""
        return self.get("/last_frame", params={"max_size": max_size})
