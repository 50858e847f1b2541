"""Python client of the reduction module's REST API."""

from __future__ import annotations

from rosace_core.http import RestClient


class ReductionClient(RestClient):
    """Client of ``/api/v1/reduction``."""

    module = "reduction"

    def reduce(self, frames: list[str] | None = None, folder: str | None = None, *, observation_id: str | None = None, force: bool = False) -> dict:
        """Start a reduction job (paths on the server's disk); return the job document."""
        body = {"frames": list(frames or []), "folder": folder, "force": force}
        if observation_id:
            body["observation_id"] = observation_id
        return self.post("/reduce", body)

    def results(self, observation_id: str | None = None) -> list[dict]:
        """Quality records of the reduced spectra, newest first."""
        return self.get("/results", params={"observation_id": observation_id} if observation_id else None)

    def result(self, result_id: str) -> dict:
        return self.get(f"/results/{result_id}")

    def plot_png(self, result_id: str) -> bytes:
        """The quick-look PNG of a result."""
        return self.request("GET", f"/results/{result_id}/plot.png", raw=True).content

    def spectrum(self, result_id: str) -> dict:
        """The spectrum arrays: wavelength, flux, uncertainty, unit."""
        return self.get(f"/results/{result_id}/data")

    def frame(self, result_id: str) -> dict:
        """The raw frame around the trace: ``data`` (rows x binned columns, ADU), ``row0``,
        ``column_bin``, ``trace`` {x, y} and the extraction ``window`` (rows)."""
        return self.get(f"/results/{result_id}/frame")

    def status(self) -> dict:
        """Running jobs and the uploads to share still waiting (``uploads``: outbox counts, None without share)."""
        return self.get("/status")

    def jobs(self) -> list[dict]:
        return self.get("/jobs")
