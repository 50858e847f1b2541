"""What the sequencer shows live beside its frames: the slit-jaw view and the guide errors.

The guide loop (and acquisition) hand each slit-jaw frame and the star's offset here; the
desktop reads it with ``GET /telemetry``, together with the cameras' temperatures and the
mount's position read at that moment.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np

from rosace_core.clock import now

#: guide measurements kept for the graph (a 600 s exposure at 2 s intervals is 300)
KEEP = 600
#: the slit-jaw image is binned to at most this many pixels on its longer side
JAW_SIZE = 200


class Telemetry:
    """Thread-safe store of the latest slit-jaw frame and the recent guide offsets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offsets: deque[dict] = deque(maxlen=KEEP)
        self._jaw: dict[str, Any] | None = None
        self.state = "idle"

    def jaw_frame(self, image: np.ndarray, *, slit: tuple[float, float], slit_width_px: float,
                  star: tuple[float, float] | None, source: str = "guiding") -> None:
        """Keep a binned copy of a slit-jaw frame with the slit and the star found on it (None: lost)."""
        img = np.asarray(image, dtype=np.float32)
        f = max(1, int(np.ceil(max(img.shape) / JAW_SIZE)))
        ny, nx = img.shape[0] // f * f, img.shape[1] // f * f
        small = img[:ny, :nx].reshape(ny // f, f, nx // f, f).mean(axis=(1, 3)) if f > 1 else img
        doc = {"time": now().isoformat(), "source": source, "binning": f, "shape": list(img.shape),
               "image": np.round(small, 1).tolist(), "slit": [float(slit[0]), float(slit[1])],
               "slit_width_px": float(slit_width_px), "star": None if star is None else [float(star[0]), float(star[1])]}
        with self._lock:
            self._jaw = doc

    def guide_offset(self, east: float | None, north: float | None) -> None:
        """Record one guide measurement (arcsec, star minus slit); None when the star was lost."""
        with self._lock:
            self._offsets.append({"time": now().isoformat(), "east": east, "north": north, "lost": east is None})

    def snapshot(self) -> dict:
        with self._lock:
            return {"state": self.state, "guide": list(self._offsets), "jaw": self._jaw}


def read_devices(hw) -> dict:
    """Cameras' temperatures and the mount's position, read now; a device that fails says why."""
    from rosace_core.errors import DeviceError

    def read(fn):
        try:
            return fn(), None
        except (DeviceError, AttributeError, NotImplementedError) as exc:
            return None, str(exc)

    def connected(name: str) -> str | None:
        # The sequencer's own devices, connected once per process (as an observation would).
        try:
            hw.connect(name)
            return None
        except (DeviceError, AttributeError) as exc:
            return str(exc)

    out: dict[str, Any] = {}
    for name in ("camera", "guider"):
        cam = getattr(hw, name, None)
        if cam is None:
            continue
        problem = connected(name)
        if problem:
            out[name] = {"temperature": None, "cooler_on": None, "error": problem}
            continue
        temp, err = read(lambda cam=cam: round(float(cam.ccd_temperature), 2))
        cooler, _ = read(lambda cam=cam: bool(cam.cooler_on))
        out[name] = {"temperature": temp, "cooler_on": cooler, "error": err}
    tel = getattr(hw, "telescope", None)
    if tel is not None:
        problem = connected("telescope")
        ra, err = (None, problem) if problem else read(lambda: round(float(tel.ra), 5))
        mount = {"ra_hours": ra, "error": err}
        if err is None:
            for key, attr in (("dec_deg", "dec"), ("altitude_deg", "altitude"), ("azimuth_deg", "azimuth"),
                              ("tracking", "tracking"), ("slewing", "slewing"), ("parked", "at_park")):
                value, _ = read(lambda attr=attr: getattr(tel, attr))
                mount[key] = round(value, 4) if isinstance(value, float) else value
        out["mount"] = mount
    return out
