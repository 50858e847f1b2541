"""One module's connection: local child server or remote server, watched without blocking.

A :class:`ModuleConnection` owns the module's client and, in local mode, its
server process. A watchdog polls ``/api/v1/health`` on the thread pool and
publishes the state (``starting``, ``online``, ``unreachable``, ``failed``); a
remote server that goes away is retried forever, a local child that dies is
restarted a few times, then reported with the end of its log.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from rosace_core.http import RestClient
from rosace_desktop.launch import ServerProcess
from rosace_desktop.tab import run_in_background

log = logging.getLogger(__name__)

STATES = ("starting", "online", "unreachable", "failed", "stopped")


class ModuleConnection(QObject):
    """The link between one tab and its module's REST server.

    ``state_changed(module, state, detail)`` is emitted on the GUI thread.
    """

    state_changed = Signal(str, str, str)

    #: health poll period when online / when not (milliseconds)
    online_period_ms = 5000
    retry_period_ms = 2000
    #: how many times a dead local server is restarted before giving up
    max_restarts = 3
    #: seconds a local server gets to answer before it counts as unreachable
    startup_grace = 60.0

    def __init__(self, module: str, mode: str, url: str, token: str | None, *, server: ServerProcess | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.module = module
        self.mode = mode
        self.url = url.rstrip("/")
        self.token = token
        self.server = server
        self.state = "starting"
        self.detail = f"starting local server on {self.url}" if server else f"connecting to {self.url}"
        self.health: dict | None = None
        self._probe = RestClient(self.url, token=token, timeout=3.0)
        self._busy = False
        self._started = time.monotonic()
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.check)

    def start(self) -> None:
        """Start watching (the local server was started by the session)."""
        QTimer.singleShot(0, self.check)

    def check(self) -> None:
        """Poll health in the background (never on the GUI thread)."""
        if self._busy or self.state == "stopped":
            return
        self._busy = True
        server = self.server

        def probe() -> tuple[str, Any]:
            if server is not None and not server.running:
                return "dead", server.returncode
            return "health", self._probe.health()

        run_in_background(probe, self._probed, self._probe_failed)

    def _probed(self, result: tuple[str, Any]) -> None:
        self._busy = False
        if self.state == "stopped":
            return
        kind, value = result
        if kind == "dead":
            self._server_died(value)
        else:
            self.health = value
            version = value.get("version", "") if isinstance(value, dict) else ""
            self._set("online", f"{self.url} (rosace {version})" if version else self.url)
        self._schedule()

    def _probe_failed(self, exc: Exception) -> None:
        self._busy = False
        if self.state == "stopped":
            return
        if self.server is not None and time.monotonic() - self._started < self.startup_grace and self.state == "starting":
            self._set("starting", f"waiting for the local server on {self.url}")
        else:
            where = "local server" if self.server else "server"
            self._set("unreachable", f"cannot reach the {where} at {self.url}: {exc}; retrying every {self.retry_period_ms // 1000} s")
        self._schedule()

    def _server_died(self, returncode) -> None:
        server = self.server
        assert server is not None
        if server.restarts < self.max_restarts:
            self._set("starting", f"local server exited (status {returncode}); restarting ({server.restarts + 1}/{self.max_restarts})")
            self._started = time.monotonic()
            run_in_background(server.restart)
        else:
            tail = server.tail()
            self._set("failed", f"local server exited (status {returncode}) {server.restarts + 1} times; see {server.log_path}\n{tail}")

    def _schedule(self) -> None:
        if self.state == "failed" or self.state == "stopped":
            return
        self.timer.start(self.online_period_ms if self.state == "online" else self.retry_period_ms)

    def _set(self, state: str, detail: str) -> None:
        changed = (state, detail) != (self.state, self.detail)
        self.state, self.detail = state, detail
        if changed:
            log.info("%s: %s (%s)", self.module, state, detail.splitlines()[0] if detail else "")
            self.state_changed.emit(self.module, state, detail)

    def stop(self) -> None:
        """Stop watching and, in local mode, stop the server process."""
        self.timer.stop()
        self.state = "stopped"
        if self.server is not None:
            self.server.stop()
