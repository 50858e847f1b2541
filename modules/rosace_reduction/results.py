"""The reduced spectra on disk, found through their quality records (``*.json``)."""

from __future__ import annotations

import json
from pathlib import Path

from rosace_core.errors import NotFoundError


def list_results(root: Path | str, observation_id: str | None = None) -> list[dict]:
    """Every quality record under ``root`` (newest first), optionally for one observation."""
    root = Path(root)
    out = []
    if not root.exists():
        return out
    for path in root.rglob("*.json"):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(rec, dict) or "products" not in rec or "quality" not in rec:
            continue
        if observation_id and rec.get("observation_id") != observation_id:
            continue
        out.append(rec)
    out.sort(key=lambda r: r.get("jd_mid", 0), reverse=True)
    return out


def get_result(root: Path | str, result_id: str) -> dict:
    """One record by id; raise NotFoundError."""
    for rec in list_results(root):
        if rec.get("id") == result_id:
            return rec
    raise NotFoundError(f"no reduced spectrum {result_id!r}")
