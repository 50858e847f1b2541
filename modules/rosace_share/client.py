"""Python client of the share module's REST API (used by the reduction, the demo,
the desktop tab and observatories talking to a share server)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable
from urllib.parse import quote

from rosace_core.errors import ConflictError
from rosace_core.http import RestClient


class ShareClient(RestClient):
    """Client of ``/api/v1/share``."""

    module = "share"

    # ------------------------------------------------------------------ spectra

    def _send_file(self, method: str, path: str, data: bytes, filename: str, campaign: str | None) -> dict:
        form = {"campaign": campaign} if campaign else None
        files = {"file": (filename or "spectrum.fits", data, "application/fits")}
        return self.request(method, path, files=files, data=form, timeout=max(self.timeout, 60))

    def upload(self, spectrum: bytes | str | Path, *, campaign: str | None = None, filename: str | None = None) -> dict:
        """Upload a BeSS FITS (path or bytes); return its record. ConflictError if already archived."""
        if isinstance(spectrum, (str, Path)):
            path = Path(spectrum)
            return self._send_file("POST", "/spectra", path.read_bytes(), filename or path.name, campaign)
        return self._send_file("POST", "/spectra", spectrum, filename or "spectrum.fits", campaign)

    def replace(self, spectrum_id: int, spectrum: bytes | str | Path, filename: str | None = None) -> dict:
        """Replace a spectrum's file (owner only)."""
        data = Path(spectrum).read_bytes() if isinstance(spectrum, (str, Path)) else spectrum
        return self._send_file("PUT", f"/spectra/{spectrum_id}", data, filename or "spectrum.fits", None)

    def delete_spectrum(self, spectrum_id: int) -> None:
        """Delete a spectrum (owner only)."""
        self.delete(f"/spectra/{spectrum_id}")

    def status(self) -> dict:
        """The archive's mode and the forwards to the upstream server still waiting (``forwards``: outbox counts or None)."""
        return self.get("/status")

    def search(self, **filters) -> dict:
        """Search: object, start, end, observer, instrument, min_snr, quality, campaign, limit, offset."""
        return self.get("/spectra", params={k: v for k, v in filters.items() if v is not None})

    def spectrum(self, spectrum_id: int) -> dict:
        """One spectrum's record with header and provenance."""
        return self.get(f"/spectra/{spectrum_id}")

    def spectrum_data(self, spectrum_id: int) -> dict:
        """Arrays: wavelength (Angstrom), flux, error (or None)."""
        return self.get(f"/spectra/{spectrum_id}/data")

    def download(self, spectrum_id: int, kind: str = "fits") -> bytes:
        """File content: kind is 'fits' (as uploaded), 'bess' (checked export) or 'csv'."""
        return self.request("GET", f"/spectra/{spectrum_id}/{kind}", raw=True).content

    def objects(self) -> list[dict]:
        """Objects with their number of spectra."""
        return self.get("/objects")

    def epochs(self, name: str) -> list[dict]:
        """Every spectrum of an object, oldest first."""
        return self.get(f"/objects/{quote(name, safe='')}/epochs")

    def line_analysis(self, name: str, line: str = "H-alpha", vmax: float = 1000.0) -> dict:
        """Dynamic spectrum and equivalent widths of a line of an object."""
        return self.get(f"/objects/{quote(name, safe='')}/lines", params={"line": line, "vmax": vmax})

    def post_report(self, title: str, body_html: str | None = None, sections: list | None = None) -> dict:
        """Post a gallery report; the answer's ``url`` is its gallery page."""
        return self.post("/reports", {"title": title, "body_html": body_html, "sections": sections})

    # ------------------------------------------------------------------ campaigns

    def campaigns(self) -> list[dict]:
        return self.get("/campaigns")

    def create_campaign(self, campaign_id: str, title: str, description: str = "") -> dict:
        """Create a campaign (organiser token)."""
        return self.post("/campaigns", {"id": campaign_id, "title": title, "description": description})

    def publish(self, campaign_id: str, content: str, filename: str = "", fmt: str | None = None) -> dict:
        """Publish an Observing File in a campaign (organiser token)."""
        return self.post(f"/campaigns/{campaign_id}/files", {"content": content, "format": fmt, "filename": filename})

    def campaign_files(self, campaign_id: str) -> list[dict]:
        """The campaign's Observing Files with their content."""
        return self.get(f"/campaigns/{campaign_id}/files")

    def pull_campaign(self, campaign_id: str, *, folder: Path | str | None = None, scheduler=None, sink: Callable[[dict], None] | None = None) -> list[dict]:
        """Fetch a campaign's Observing Files and hand them to this observatory.

        Each file is written to ``folder`` (when given), posted to a scheduler
        client's ``/files`` (when given) and passed to ``sink``. Returns the files.
        """
        files = self.campaign_files(campaign_id)
        for f in files:
            if folder is not None:
                out = Path(folder)
                out.mkdir(parents=True, exist_ok=True)
                (out / Path(f["filename"]).name).write_text(f["content"], encoding="utf-8")
            if scheduler is not None:
                scheduler.post("/files", {"content": f["content"], "format": f["format"], "filename": f["filename"]})
            if sink is not None:
                sink(f)
        return files

    def push_results(self, campaign_id: str, paths: list[Path | str]) -> dict:
        """Upload result spectra to a campaign; already-sent files count as ``duplicates``."""
        sent, duplicates = [], 0
        for path in paths:
            try:
                sent.append(self.upload(path, campaign=campaign_id)["id"])
            except ConflictError:
                duplicates += 1
        return {"uploaded": sent, "duplicates": duplicates}

    # ------------------------------------------------------------------ accounts

    def create_account(self, name: str, role: str = "observer") -> dict:
        """Create an account (admin token); the answer carries its token once."""
        return self.post("/accounts", {"name": name, "role": role})

    def me(self) -> dict:
        return self.get("/me")
