"""The reduced spectra on disk, found through their quality records (``*.json``)."""

from __future__ import annotations

import json
from pathlib import Path

from rosace_core.errors import NotFoundError


def list_results(root: Path | str, observation_id: str | None = None) -> list[dict]:
    """Every quality record under ``root`` (newest first), optionally for one observation."""
    root = Path(root)
    out: list[dict] = []
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


def frame_view(record: dict, column_bin: int = 4, margin: int = 20) -> dict:
    """The first raw science frame of a result around its trace, for display.

    Returns the rows ``row0 ...`` covering the trace, the sky windows and
    ``margin`` more, columns averaged by ``column_bin``, as ADU, with the trace
    (row per column) and the extraction window half-widths in rows. Raises
    NotFoundError when the raw frame is no longer on disk.
    """
    import numpy as np
    from numpy.polynomial import polynomial as P

    from rosace_reduction.frames import FrameError, load_image

    frames = record.get("raw_frames") or []
    quality = record.get("quality", {})
    window = quality.get("window") or {"aperture_half_width": 12, "sky_offset": 30, "sky_width": 40}
    coeffs = quality.get("trace", {}).get("coeffs")
    if not frames or coeffs is None:
        raise NotFoundError("this result records no raw frame or trace")
    path = Path(frames[0])
    if not path.exists():
        raise NotFoundError(f"raw frame {path.name} is no longer on disk")
    try:
        from rosace_reduction.frames import read_frame_info

        ny, nx = read_frame_info(path).shape
        x = np.arange(nx, dtype=float)
        trace = P.polyval(x, np.asarray(coeffs, float))
        half = int(window["sky_offset"] + window["sky_width"] + margin)
        row0 = max(int(np.floor(trace.min())) - half, 0)
        row1 = min(int(np.ceil(trace.max())) + half + 1, ny)
        band = load_image(path, slice(row0, row1))
    except FrameError as exc:
        raise NotFoundError(str(exc)) from None
    nb = nx // column_bin
    binned = band[:, : nb * column_bin].reshape(band.shape[0], nb, column_bin).mean(axis=2)
    xb = (np.arange(nb) + 0.5) * column_bin - 0.5
    return {
        "path": str(path),
        "row0": row0,
        "column_bin": column_bin,
        "shape": [int(binned.shape[0]), int(binned.shape[1])],
        "data": np.round(binned).astype(int).tolist(),
        "trace": {"x": xb.tolist(), "y": np.interp(xb, x, trace).round(3).tolist()},
        "window": window,
    }
