"""The main window: one tab per module, connection and safety in the status bar.

The window opens at once with a page per discovered module; deciding where
each module runs (probing configured servers, starting local ones) happens on
the thread pool, and each tab gets its module's widget when its connection is
known. Nothing here waits on the network on the GUI thread.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices
from PySide6.QtWidgets import QLabel, QMainWindow, QMessageBox, QTabWidget, QWidget

from rosace_core import plugins
from rosace_core.http import RestClient
from rosace_desktop.connection import ModuleConnection
from rosace_desktop.launch import ServerProcess, free_port, port_is_free, stop_all
from rosace_desktop.settings import Endpoint
from rosace_desktop.tab import run_in_background
from rosace_desktop.tabs import BrokenTab, TabHost, build_module_widget

log = logging.getLogger(__name__)

_DOT = {"online": "#1a7f37", "starting": "#b58900", "unreachable": "#c62828", "failed": "#c62828", "stopped": "#777"}


class _DomeStatusClient(RestClient):
    module = "dome"


def safety_text(status: dict | None, error: str | None = None) -> tuple[str, str]:
    """Return (text, colour) describing the dome's safety verdict for the status bar."""
    if status is None:
        return (f"Safety: unknown ({error})" if error else "Safety: unknown"), "#777"
    verdict = status.get("verdict") or {}
    safe = status.get("safe", verdict.get("safe"))
    reasons = verdict.get("reasons") or []
    if safe is True:
        return "Safety: SAFE", "#1a7f37"
    if safe is False:
        return "Safety: UNSAFE" + (f" ({'; '.join(str(r) for r in reasons)})" if reasons else ""), "#c62828"
    return "Safety: unknown", "#777"


def _probe_alive(url: str, token: str | None) -> bool:
    try:
        RestClient(url, token=token, timeout=1.5).health()
        return True
    except Exception:
        return False


def plan_session(endpoints: dict[str, Endpoint], config, run_dir: Path) -> dict[str, tuple[Endpoint, ServerProcess | None]]:
    """Decide and start where each module runs (worker thread: probes and spawns).

    ``auto`` modules whose configured server answers become remote, the others
    local. Local servers take their configured port when it is a free localhost
    port, else any free port; a run configuration listing the real URLs is
    written so that local modules find each other.
    """
    from concurrent.futures import ThreadPoolExecutor

    from rosace_core.logs import log_dir

    autos = [m for m, e in endpoints.items() if e.mode == "auto"]
    with ThreadPoolExecutor(max_workers=max(1, len(autos))) as pool:
        alive = dict(zip(autos, pool.map(lambda m: _probe_alive(endpoints[m].url, endpoints[m].token), autos)))
    decided: dict[str, Endpoint] = {}
    ports: dict[str, int] = {}
    for module, ep in endpoints.items():
        mode = ep.mode if ep.mode != "auto" else ("remote" if alive.get(module) else "local")
        if mode == "local":
            port = _configured_local_port(ep.url)
            if port is None or not port_is_free(port) or port in ports.values():
                port = free_port()
            ports[module] = port
            decided[module] = replace(ep, mode="local", url=f"http://127.0.0.1:{port}")
        else:
            decided[module] = replace(ep, mode="remote")
    config_path = _write_run_config(config, decided, run_dir) if ports else None
    result = {}
    for module, ep in decided.items():
        server = None
        if ep.mode == "local":
            # Logs in the user log folder (Observatory > Open logs folder), kept after closing.
            server = ServerProcess(module, ports[module], log_dir() / f"desktop-{module}.out", config_path=config_path)
            try:
                server.start()
            except OSError as exc:  # e.g. the program vanished: reported by the connection
                log.error("cannot start the %s server: %s", module, exc)
        result[module] = (ep, server)
    return result


def _configured_local_port(url: str) -> int | None:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    if parsed.hostname in ("127.0.0.1", "localhost") and parsed.port:
        return parsed.port
    return None


def _write_run_config(config, endpoints: dict[str, Endpoint], run_dir: Path) -> Path:
    """Write the configuration the local servers run with: the user's, with the real module URLs."""
    import tomli_w

    from rosace_core.config import ObservatoryConfig

    config = config if config is not None else ObservatoryConfig()
    data = config.model_dump(mode="json", exclude_none=True)
    for module, ep in endpoints.items():
        data.setdefault("modules", {}).setdefault(module, {})["url"] = ep.url
    path = run_dir / "rosace-desktop-run.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


class MainWindow(QMainWindow):
    """The ROSACE desktop window."""

    #: emitted once every tab has its content (widget or error)
    tabs_ready = Signal()

    def __init__(self, endpoints: dict[str, Endpoint], config=None, *, modules: list[plugins.LoadedModule] | None = None,
                 only: list[str] | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("ROSACE")
        self.resize(1100, 720)
        self.config = config
        self.endpoints = endpoints
        self.loaded = modules if modules is not None else plugins.discover_modules()
        if only:
            self.loaded = [m for m in self.loaded if m.name in only]
        self.hosts: dict[str, TabHost] = {}
        self.connections: dict[str, ModuleConnection] = {}
        self.state_labels: dict[str, QLabel] = {}
        self.run_dir = Path(tempfile.mkdtemp(prefix="rosace-desktop-"))
        self._closing = False

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.setCentralWidget(self.tabs)
        self.safety_label = QLabel("Safety: unknown")
        self.safety_label.setObjectName("safety")
        for loaded in self.loaded:
            title = loaded.spec.title if loaded.spec else loaded.name
            host = TabHost(loaded.name, title)
            self.hosts[loaded.name] = host
            index = self.tabs.addTab(host, title)
            label = QLabel()
            label.setObjectName(f"state_{loaded.name}")
            self.state_labels[loaded.name] = label
            self.statusBar().addPermanentWidget(label)
            if loaded.spec is None:
                error = loaded.error or "failed to load"
                host.set_content(BrokenTab(loaded.name, f"The module's entry point failed: {error}"), error)
                self.tabs.setTabEnabled(index, False)
                self.tabs.setTabToolTip(index, error)
                self._show_state(loaded.name, "failed", error)
            else:
                self._show_state(loaded.name, "starting", "")
        self.statusBar().addPermanentWidget(self.safety_label)
        self._build_menus()

        self.safety_timer = QTimer(self)
        self.safety_timer.timeout.connect(self.poll_safety)
        self.safety_timer.start(5000)
        self._safety_busy = False
        QTimer.singleShot(0, self.start_session)

    # ------------------------------------------------------------------ session

    def start_session(self, names: list[str] | None = None) -> None:
        """Decide where modules run and connect their tabs (in the background)."""
        names = names or [m.name for m in self.loaded if m.spec is not None]
        wanted = {n: self.endpoints.get(n) or Endpoint(n, "auto", f"http://127.0.0.1:{self._spec(n).port}") for n in names}
        if not wanted:
            self.tabs_ready.emit()
            return
        run_in_background(lambda: plan_session(wanted, self.config, self.run_dir), self._session_planned, self._session_failed)

    def _spec(self, name: str):
        return next(m.spec for m in self.loaded if m.name == name)

    def _session_planned(self, plan: dict) -> None:
        if self._closing:
            stop_all([s for _, s in plan.values() if s is not None])
            return
        for name, (ep, server) in plan.items():
            self._connect(name, ep, server)
        self._check_ready()

    def _session_failed(self, exc: Exception) -> None:
        log.error("could not start the modules: %s", exc)
        for name, host in self.hosts.items():
            if host.content is None:
                host.set_content(BrokenTab(name, f"Could not start the connection: {exc}"), str(exc))
                self._show_state(name, "failed", str(exc))
        self._check_ready()

    def _connect(self, name: str, ep: Endpoint, server: ServerProcess | None) -> None:
        spec = self._spec(name)
        host = self.hosts[name]
        old = self.connections.pop(name, None)
        if old is not None:
            old.stop()
        token = ep.client_token(self.config)
        try:
            client = spec.create_client(ep.url, token=token)
        except Exception as exc:  # the module's client cannot even be imported
            failure = f"{exc.__class__.__name__}: {exc}"
            host.set_content(BrokenTab(spec.title, f"Its client ({spec.client}) failed: {failure}"), failure)
            self.tabs.setTabEnabled(self.tabs.indexOf(host), False)
            self._show_state(name, "failed", failure)
            if server is not None:
                server.stop()
            return
        widget, error = build_module_widget(spec, client)
        host.error = None
        host.set_content(widget, error)
        index = self.tabs.indexOf(host)
        self.tabs.setTabEnabled(index, error is None)
        self.tabs.setTabToolTip(index, error or f"{ep.mode}: {ep.url}")
        conn = ModuleConnection(name, ep.mode, ep.url, token, server=server, parent=self)
        conn.state_changed.connect(self._on_state)
        self.connections[name] = conn
        if error:
            self._show_state(name, "failed", error)
        else:
            host.show_state(conn.state, conn.detail)
            self._show_state(name, conn.state, conn.detail)
        conn.start()

    def _check_all(self) -> None:
        for conn in self.connections.values():
            conn.check()

    def _check_ready(self) -> None:
        if all(h.content is not None for h in self.hosts.values()):
            self.tabs_ready.emit()

    def reconnect(self, endpoints: dict[str, Endpoint]) -> None:
        """Apply new connection settings to the modules whose endpoint changed."""
        changed = [n for n, ep in endpoints.items() if n in self.hosts and self.endpoints.get(n) != ep and self._has_spec(n)]
        self.endpoints.update(endpoints)
        for name in changed:
            old = self.connections.pop(name, None)
            if old is not None:
                old.stop()
            self._show_state(name, "starting", "")
        if changed:
            self.start_session(changed)

    def _has_spec(self, name: str) -> bool:
        return any(m.name == name and m.spec is not None for m in self.loaded)

    # ------------------------------------------------------------------ status

    def _on_state(self, module: str, state: str, detail: str) -> None:
        host = self.hosts.get(module)
        if host is not None:
            host.show_state(state, detail)
        self._show_state(module, state, detail)

    def _show_state(self, module: str, state: str, detail: str) -> None:
        label = self.state_labels[module]
        label.setText(f"<span style='color:{_DOT.get(state, '#777')}'>&#9679;</span> {module}: {state}")
        label.setToolTip(detail)
        label.setProperty("state", state)

    def module_state(self, module: str) -> str:
        """The connection state shown for a module (tests and self-test)."""
        return str(self.state_labels[module].property("state"))

    def poll_safety(self) -> None:
        """Ask the dome for its safety verdict (background); tolerate a dome without it."""
        conn = self.connections.get("dome")
        if conn is None or self._safety_busy:
            if conn is None:
                self._show_safety(None, "no dome module")
            return
        self._safety_busy = True
        client = _DomeStatusClient(conn.url, token=conn.token, timeout=4.0)
        run_in_background(lambda: client.get("/status"),
                          lambda status: self._safety_done(status, None), lambda exc: self._safety_done(None, exc))

    def _safety_done(self, status, exc) -> None:
        self._safety_busy = False
        if exc is not None:
            from rosace_core.errors import NotFoundError

            self._show_safety(None, "the dome has no status yet" if isinstance(exc, NotFoundError) else "dome unreachable")
        else:
            self._show_safety(status if isinstance(status, dict) else None, None)

    def _show_safety(self, status, error) -> None:
        text, colour = safety_text(status, error)
        # Reasons can be long (device errors): the bar shows the start, the tooltip all of it.
        short = text if len(text) <= 70 else text[:67] + "..."
        self.safety_label.setText(f"<b style='color:{colour}'>{short.replace('<', '&lt;')}</b>")
        self.safety_label.setToolTip(text)

    # ------------------------------------------------------------------ menus

    def _build_menus(self) -> None:
        from rosace_desktop import dialogs

        bar = self.menuBar()
        m = bar.addMenu("&File")
        act = QAction("&Quit", self)
        act.setShortcut("Ctrl+Q")
        act.triggered.connect(self.close)
        m.addAction(act)

        m = bar.addMenu("&Connections")
        act = QAction("Connection &settings...", self)
        act.triggered.connect(lambda: dialogs.edit_connections(self))
        m.addAction(act)
        act = QAction("&Reconnect all now", self)
        act.triggered.connect(self._check_all)
        m.addAction(act)
        act = QAction("Check Alpaca &devices...", self)
        act.triggered.connect(lambda: dialogs.check_devices(self))
        m.addAction(act)

        m = bar.addMenu("&Observatory")
        act = QAction("&Open configuration file", self)
        act.triggered.connect(lambda: dialogs.open_configuration(self))
        m.addAction(act)
        act = QAction("&Check configuration", self)
        act.triggered.connect(lambda: dialogs.check_configuration(self))
        m.addAction(act)
        act = QAction("Open &logs folder", self)
        act.triggered.connect(self.open_logs)
        m.addAction(act)

        m = bar.addMenu("&Help")
        act = QAction("&About ROSACE", self)
        act.triggered.connect(lambda: dialogs.about(self))
        m.addAction(act)

    def open_logs(self) -> None:
        """Open the user log folder in the file manager."""
        from rosace_core.logs import log_dir

        folder = log_dir()
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            QMessageBox.information(self, "ROSACE logs", f"The logs are in\n{folder}")

    # ------------------------------------------------------------------ closing

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """Stop watching and stop the local servers this window started."""
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop every connection and local server (idempotent)."""
        if self._closing:
            return
        self._closing = True
        self.safety_timer.stop()
        servers = []
        for conn in self.connections.values():
            conn.timer.stop()
            conn.state = "stopped"
            if conn.server is not None:
                servers.append(conn.server)
        stop_all(servers)
        shutil.rmtree(self.run_dir, ignore_errors=True)

