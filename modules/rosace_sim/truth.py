"""The truth of every simulated frame: what the renderer used, kept for the tests.

Served at ``GET /sim/v1/truth/<id>`` and, when the scenario names a ``truth_dir``,
written as ``<truth_dir>/<id>.json``.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import uuid
from collections import OrderedDict
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


class TruthStore:
    """The truth records of the last ``keep`` frames, by id."""

    def __init__(self, folder: Path | None = None, keep: int = 500):
        self.folder = Path(folder) if folder else None
        self.keep = keep
        self._records: OrderedDict[str, dict] = OrderedDict()
        self._lock = threading.Lock()
        self._count = itertools.count(1)
        self._run = uuid.uuid4().hex[:6]

    def store(self, truth: dict, camera: int = 0) -> str:
        """Keep a truth record; return its id."""
        truth_id = f"sim-{self._run}-c{camera}-{next(self._count):05d}"
        record = _jsonable(dict(truth, id=truth_id, camera=camera))
        with self._lock:
            self._records[truth_id] = record
            while len(self._records) > self.keep:
                self._records.popitem(last=False)
        if self.folder is not None:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                tmp = self.folder / f".{truth_id}.json.tmp"
                tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
                tmp.replace(self.folder / f"{truth_id}.json")
            except OSError as exc:
                log.warning("could not write truth %s: %s", truth_id, exc)
        return truth_id

    def get(self, truth_id: str) -> dict | None:
        with self._lock:
            return self._records.get(truth_id)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._records)
