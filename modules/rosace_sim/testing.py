"""Run the simulated observatory inside a test: ``with SimObservatory() as sim: ...``.

The simulator serves on a free localhost port in a background thread (waitress).
``sim.url`` is the Alpaca base URL for ``rosace_core.alpaca`` devices (and for the
``[devices.*] url`` of a test configuration); ``sim.control`` drives the
simulation (weather, faults, truth); ``sim.observatory`` is the in-process state.

By default the scenario's ``clock.start``/``rate`` become the process clock while
the simulator runs (the previous clock is restored by :meth:`SimObservatory.stop`),
so every module of the test agrees on "now"; pass ``keep_clock=True`` to leave
the process clock alone.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rosace_core import clock as core_clock
from rosace_core.clock import Clock, get_clock, set_clock
from rosace_core.http import RestClient

if TYPE_CHECKING:
    from rosace_core.rest import BackgroundServer
    from rosace_sim.discovery import DiscoveryResponder
    from rosace_sim.observatory import Observatory


class SimControl(RestClient):
    """A small client of the simulator's ``/sim/v1`` control API."""

    def _url(self, path: str) -> str:
        return f"{self.base_url}/sim/v1{path}"

    def state(self) -> dict:
        """Return the whole simulated observatory's state."""
        return self.get(self._url("/state"))

    def weather(self) -> dict:
        """Return the weather now (timeline plus overrides)."""
        return self.get(self._url("/weather"))

    def set_weather(self, **values: Any) -> dict:
        """Override weather quantities now (cloud_cover, rain_rate, wind_speed, humidity, sky_brightness, temperature, seeing, safe ...)."""
        return self.put(self._url("/weather"), json=values)

    def clear_weather(self) -> dict:
        """Drop every live override: back to the scenario's timeline."""
        return self.delete(self._url("/weather"))

    def inject_fault(self, device: str, kind: str, device_number: int = 0, duration: float | None = None) -> dict:
        """Inject a fault now (kind: disconnect, timeout, error, slow, stuck_shutter, park_fail, stale)."""
        return self.post(self._url("/faults"), json={"device": device, "device_number": device_number, "kind": kind, "duration": duration})

    def faults(self) -> list[dict]:
        return self.get(self._url("/faults"))

    def clear_faults(self, device: str | None = None, device_number: int | None = None) -> dict:
        """Remove faults (all of them, or a device's)."""
        params: dict[str, Any] = {}
        if device:
            params["device"] = device
        if device_number is not None:
            params["device_number"] = device_number
        return self.delete(self._url("/faults"), params=params)

    def truth(self, truth_id: str) -> dict:
        """Return the truth record of a frame (id from the camera's Action('truth_id'))."""
        return self.get(self._url(f"/truth/{truth_id}"))


class SimObservatory:
    """The simulator on a free localhost port, in-process; a context manager.

    ``scenario``: None (the shipped ``clear`` scenario), a path or shipped name, or
    a dict (validated like a scenario file). ``discovery_port``: answer Alpaca
    discovery on that UDP port (None: no discovery responder).
    """

    def __init__(self, scenario: dict | str | Path | None = None, port: int = 0, *, token: str | None = None,
                 keep_clock: bool = False, discovery_port: int | None = None, alpaca_token: str | None = None):
        self.scenario_source = scenario
        self.alpaca_token = alpaca_token
        self.port = port
        self.token = token or secrets.token_urlsafe(16)
        self.keep_clock = keep_clock
        self.discovery_port = discovery_port
        self.server: BackgroundServer | None = None
        self.discovery: DiscoveryResponder | None = None
        self.observatory: Observatory | None = None
        self.control: SimControl | None = None
        self.url = ""
        self._saved_clock: tuple[Clock | None, str | None] | None = None

    def start(self) -> "SimObservatory":
        from rosace_core.astro import configure_offline
        from rosace_core.rest import BackgroundServer

        from rosace_sim.observatory import Observatory
        from rosace_sim.scenario import load_scenario
        from rosace_sim.server import create_app

        configure_offline()
        scenario = load_scenario(self.scenario_source)
        if not self.keep_clock and scenario.clock.start is not None:
            self._saved_clock = (core_clock._current, os.environ.get(core_clock.ENV_VAR))
            set_clock(Clock.simulated(scenario.clock.start, scenario.clock.rate))
        self.observatory = Observatory(scenario)
        app = create_app(self.observatory, token=self.token, alpaca_token=self.alpaca_token)
        self.server = BackgroundServer(app, port=self.port, threads=8).start()
        self.url = self.server.url
        self.port = self.server.port
        if self.discovery_port is not None:
            from rosace_sim.discovery import DiscoveryResponder

            self.discovery = DiscoveryResponder(self.port, self.discovery_port, host="127.0.0.1").start()
            self.discovery_port = self.discovery.port
        self.control = SimControl(self.url, token=self.token)
        return self

    def stop(self) -> None:
        """Stop the server (and discovery) and restore the process clock."""
        if self.discovery is not None:
            self.discovery.stop()
            self.discovery = None
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self._saved_clock is not None:
            previous, env = self._saved_clock
            core_clock._current = previous
            if env is None:
                os.environ.pop(core_clock.ENV_VAR, None)
            else:
                os.environ[core_clock.ENV_VAR] = env
            self._saved_clock = None

    @property
    def clock(self) -> Clock:
        return get_clock()

    def __enter__(self) -> "SimObservatory":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for(predicate, timeout: float = 10.0, poll: float = 0.05):
    """Poll ``predicate`` until it returns something true; return it, or raise AssertionError after ``timeout`` wall seconds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(poll)
