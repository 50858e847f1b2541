"""The night's instrument responses, kept between reduction jobs.

A robotic night hands each observation to the reduction on its own (one
``POST /reduce`` per observation), so a science spectrum is rarely reduced in
the same job as the night's reference star. Every reference star whose
response was computed is entered in ``<output root>/<night>/responses.json``;
a science observation reduced later that night takes the nearest response of
the same instrument set-up from there, and the science observations of the
night reduced before any response existed are found from their quality
records (``<output root>/<night>/**/*.json``) to be reduced again.

The index is written by the process that runs the batch (never by its worker
processes), atomically; REST jobs run one at a time.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from rosace_reduction import output

log = logging.getLogger(__name__)

INDEX_NAME = "responses.json"
#: Airmass difference that counts as much as one hour in the choice of the nearest response.
HOURS_PER_AIRMASS = 1.0

_LOCK = threading.Lock()


def index_path(output_root: str | Path, night: str) -> Path:
    return Path(output_root) / night / INDEX_NAME


def load_index(output_root: str | Path, night: str) -> list[dict]:
    """The responses entered for ``night``.

    A night reduced before the index existed has none, and an index may be
    damaged: the reference stars' quality records of the night stand in for it
    then (the next :func:`register` writes it again).
    """
    path = index_path(output_root, night)
    if not path.exists():
        return _from_records(Path(output_root) / night)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("response index %s unreadable (%s): rebuilt from the night's quality records", path, exc)
        return _from_records(Path(output_root) / night)
    entries = data.get("responses", []) if isinstance(data, dict) else []
    return [e for e in entries if isinstance(e, dict) and e.get("file") and e.get("instrument")]


def _entry(record: dict) -> dict | None:
    resp = record.get("response") or {}
    file = resp.get("file")
    if not record.get("reference_star") or not file or not Path(file).exists() or not record.get("night"):
        return None
    return {
        "instrument": str(record.get("instrument", "")),
        "observation_id": str(record.get("observation_id", "")),
        "star": str(resp.get("star", record.get("object", ""))),
        "file": str(file),
        "jd_mid": float(record.get("jd_mid", 0.0)),
        "airmass": float(record.get("airmass") or 1.0),
        "inputs_hash": str(record.get("inputs_hash", "")),
        "record": str((record.get("products") or {}).get("json", "")),
    }


def _from_records(folder: Path) -> list[dict]:
    """Index entries rebuilt from the reference stars' quality records under a night folder."""
    if not folder.is_dir():
        return []
    entries = []
    for path in folder.rglob("*.json"):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        entry = _entry(rec) if isinstance(rec, dict) else None
        if entry is not None:
            entries.append(entry)
    return sorted(entries, key=lambda e: e["jd_mid"])


def register(output_root: str | Path, record: dict) -> dict | None:
    """Enter a reduced reference star's response in its night's index; return the entry (None when it has none).

    One entry per (instrument, observation id): a reference reduced again replaces its entry.
    """
    entry = _entry(record)
    if entry is None:
        return None
    night = str(record["night"])
    with _LOCK:
        path = index_path(output_root, night)
        exists = path.exists()
        # A night's first entry starts from the reference stars reduced before the index existed.
        current = load_index(output_root, night)
        if exists and entry in current:
            return entry  # already there: no write
        entries = [e for e in current
                   if not (e["instrument"] == entry["instrument"] and e.get("observation_id") == entry["observation_id"])]
        entries.append(entry)
        entries.sort(key=lambda e: e.get("jd_mid", 0.0))
        output.write_json(path, {"night": night, "responses": entries})
    return entry


def nearest(output_root: str | Path, night: str, instrument: str, jd: float, airmass: float | None) -> dict | None:
    """The response of ``instrument`` entered for ``night`` nearest in time and airmass (hours + |delta airmass|)."""
    cands = [e for e in load_index(output_root, night) if e["instrument"] == instrument and Path(e["file"]).exists()]
    if not cands:
        return None
    x = float(airmass) if airmass else None

    def distance(e: dict) -> float:
        d = abs(float(e.get("jd_mid", 0.0)) - jd) * 24.0
        if x is not None:
            d += abs(float(e.get("airmass", 1.0)) - x) * HOURS_PER_AIRMASS
        return d

    return min(cands, key=distance)


def science_without_response(output_root: str | Path, night: str, instrument: str) -> list[dict]:
    """Quality records of the night's science observations of ``instrument`` reduced without a response.

    One record per observation (the newest file when there are several).
    """
    folder = Path(output_root) / night
    if not folder.is_dir():
        return []
    found: dict[str, tuple[float, dict]] = {}
    for path in folder.rglob("*.json"):
        if path.name == INDEX_NAME:
            continue
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
            mtime = path.stat().st_mtime
        except (OSError, ValueError):
            continue
        if not isinstance(rec, dict) or "observation_id" not in rec or "raw_frames" not in rec:
            continue
        if rec.get("reference_star") or rec.get("instrument") != instrument:
            continue
        oid = str(rec["observation_id"])
        if oid not in found or mtime > found[oid][0]:
            found[oid] = (mtime, rec)
    return [rec for _, rec in sorted(found.values(), key=lambda t: t[1].get("jd_mid", 0.0))
            if not (rec.get("response") or {}).get("applied")]
