"""ROSACE core: what every module shares.

Observing File format, observatory configuration, clock, REST plumbing (in
:mod:`rosace_core.rest`, the only part that imports Flask), the Alpaca adapter,
logging and offline astropy set-up.
"""

__version__ = "0.1.0"

from rosace_core.errors import RosaceError  # noqa: E402

__all__ = ["RosaceError", "__version__"]
