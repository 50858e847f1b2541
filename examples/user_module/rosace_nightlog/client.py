"""Python client of the night log's REST API (used by its tab and by scripts)."""

from __future__ import annotations

from rosace_core.http import RestClient


class NightLogClient(RestClient):
    """``NightLogClient("http://127.0.0.1:8710", token=...)``."""

    module = "nightlog"

    def notes(self, category: str | None = None) -> list[dict]:
        """Return the notes, oldest first."""
        return self.get("/notes", params={"category": category} if category else None)

    def add(self, text: str, category: str = "note", author: str = "") -> dict:
        """Add a note; return it with its id and time."""
        return self.post("/notes", {"text": text, "category": category, "author": author})
