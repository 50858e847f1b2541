"""Offline astropy: no download ever happens at run time.

Call :func:`configure_offline` once at start-up (every entry point does). IERS
tables then come from the installed ``astropy-iers-data`` package and the
ephemeris from astropy's built-in one.
"""

from __future__ import annotations

import threading
import warnings

_done = False
_eop_lock = threading.Lock()
_eop_loaded = False


def configure_offline() -> None:
    """Switch astropy to offline operation (idempotent)."""
    global _done
    if _done:
        return
    from astropy.utils import iers
    from astropy.utils.data import conf as data_conf

    iers.conf.auto_download = False
    iers.conf.auto_max_age = None
    # Predictive values past the bundled table are extrapolated; that costs
    # milliarcseconds, far below what a spectroscopic slit cares about.
    iers.conf.iers_degraded_accuracy = "warn"
    data_conf.allow_internet = False
    from astropy.coordinates import solar_system_ephemeris

    solar_system_ephemeris.set("builtin")
    warnings.filterwarnings("ignore", category=iers.IERSDegradedAccuracyWarning)
    try:
        from astropy.utils.exceptions import AstropyWarning  # noqa: F401
        from erfa import ErfaWarning

        warnings.filterwarnings("ignore", category=ErfaWarning)
    except ImportError:  # pragma: no cover - erfa ships with astropy
        pass
    _done = True


def load_earth_orientation():
    """Load the bundled IERS table and the leap seconds once, then release what reading them left.

    astropy reads ``finals2000A`` with its ASCII table reader, which leaves
    60-90 MB of reference cycles and freed heap behind. A server that will need
    UT1 or polar motion (coordinates, barycentric corrections) calls this at
    start-up; later uses find the table loaded. Returns the table.
    """
    global _eop_loaded
    from rosace_core.memory import release_memory

    configure_offline()
    from astropy.time import Time
    from astropy.utils import iers

    with _eop_lock:
        table = iers.earth_orientation_table.get()
        if not _eop_loaded:
            Time("2020-01-01T00:00:00", scale="utc").tai  # noqa: B018 - reads the leap-second table the same way
            _eop_loaded = True
            release_memory()
    return table
