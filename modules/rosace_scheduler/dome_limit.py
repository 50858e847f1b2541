"""The sun altitude at which the dome closes the roof, so that nothing is planned past it.

An Observing File may allow the sun up to -3 deg while the dome closes at -6 deg:
an observation dispatched to end in between would be cut by the roof. The
stricter of the two wins. The dome's limit comes, in this order, from the
scheduler's ``closing_sun_altitude`` option, from the ``[dome]`` table of the
observatory configuration (``sun_max_altitude``), or from the dome module's
REST status (the ``sun_altitude`` sensor's limit), asked again every
``dome_status_interval`` wall seconds while the dome does not answer (or has
answered with a different value).
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)


class DomeLimit:
    """Where the scheduler learns the dome's closing sun altitude (degrees, None: unknown)."""

    def __init__(self, config, options):
        self.config = config
        self.options = options
        self.source = "none"
        self._value: float | None = None
        self._asked = -float("inf")
        self._lock = threading.Lock()
        if options.closing_sun_altitude is not None:
            self._value, self.source = float(options.closing_sun_altitude), "scheduler option closing_sun_altitude"
        elif "sun_max_altitude" in (config.dome or {}):
            self._value, self.source = float(config.dome["sun_max_altitude"]), "[dome] sun_max_altitude"

    @property
    def fixed(self) -> bool:
        return self.source != "none" and not self.source.startswith("dome status")

    def value(self) -> float | None:
        """Return the dome's closing sun altitude; ask the dome's status when due (short timeout, never raises)."""
        if self.fixed or not self.options.learn_dome_limit:
            return self._value
        with self._lock:
            if time.monotonic() - self._asked < self.options.dome_status_interval:
                return self._value
            self._asked = time.monotonic()
        learnt = self._ask_dome()
        if learnt is not None and learnt != self._value:
            log.info("the dome closes with the sun above %g deg (its REST status): nothing is planned past it", learnt)
            self._value, self.source = learnt, f"dome status ({self.config.module_url('dome')})"
        return self._value

    def _ask_dome(self) -> float | None:
        from rosace_core.errors import RosaceError
        from rosace_dome.client import DomeClient

        client = DomeClient(self.config.module_url("dome"), timeout=2.0)
        try:
            status = client.status()
        except (RosaceError, ValueError) as exc:  # no dome module, or down: the files' own limits apply until it answers
            log.debug("dome status unavailable: %s", exc)
            return None
        finally:
            client.session.close()
        for sensor in status.get("sensors") or []:
            if sensor.get("name") == "sun_altitude":
                limit = (sensor.get("limit") or {}).get("max")
                return float(limit) if isinstance(limit, (int, float)) else None
        return None
