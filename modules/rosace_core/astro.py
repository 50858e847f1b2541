"""Offline astropy: no download ever happens at run time.

Call :func:`configure_offline` once at start-up (every entry point does). IERS
tables then come from the installed ``astropy-iers-data`` package and the
ephemeris from astropy's built-in one.
"""

from __future__ import annotations

import warnings

_done = False


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
