"""The night log itself: plain Python, no Flask, no Qt (the module's core).

Notes are kept one JSON object per line in ``<data root>/state/nightlog.jsonl``:
appending a line is atomic enough for a log, and the file stays readable in
any text editor the morning after.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from rosace_core.clock import now

CATEGORIES = ("note", "weather", "hardware", "target")


@dataclass
class Note:
    """One entry of the log; ``time`` is ISO UTC from the ROSACE clock."""

    id: int
    time: str
    category: str
    text: str
    author: str = ""


class NightLog:
    """The notes of an observatory, stored in a JSON-lines file."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._notes: list[Note] = []
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    self._notes.append(Note(**json.loads(line)))

    def add(self, text: str, category: str = "note", author: str = "") -> Note:
        """Append a note stamped with the ROSACE clock (simulated nights get simulated times).

        Raises ValueError for an empty text or an unknown category.
        """
        if not text.strip():
            raise ValueError("a note needs some text")
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}: one of {', '.join(CATEGORIES)}")
        with self._lock:
            note = Note(len(self._notes) + 1, now().isoformat(timespec="seconds"), category, text.strip(), author)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(asdict(note)) + "\n")
            self._notes.append(note)
            return note

    def notes(self, category: str | None = None) -> list[Note]:
        """Return the notes, oldest first, optionally of one category."""
        with self._lock:
            return [n for n in self._notes if category in (None, n.category)]
