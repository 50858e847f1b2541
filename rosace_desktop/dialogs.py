"""The desktop's dialogs: connection settings, observatory configuration, device check, about."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QUrl
from PySide6.QtGui import QColor, QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from rosace_desktop.settings import MODES, Endpoint, save


class ConnectionDialog(QDialog):
    """Edit, per module, where it runs: auto, local (started here) or remote (URL + token)."""

    def __init__(self, endpoints: dict[str, Endpoint], parent=None):
        super().__init__(parent)
        self.setWindowTitle("ROSACE: connection settings")
        self.rows: dict[str, tuple[QComboBox, QLineEdit, QLineEdit]] = {}
        self.original = endpoints
        layout = QVBoxLayout(self)
        intro = QLabel("<b>auto</b>: use the server at the URL if one answers, else start it here. "
                       "<b>local</b>: always start the module on this PC. <b>remote</b>: connect to the "
                       "server at the URL (another PC: give its token).")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        grid = QGridLayout()
        for col, text in enumerate(("Module", "Mode", "URL", "Token", "", "Test result")):
            grid.addWidget(QLabel(f"<b>{text}</b>"), 0, col)
        self.results: dict[str, QLabel] = {}
        for row, (name, ep) in enumerate(endpoints.items(), start=1):
            mode = QComboBox()
            mode.addItems(MODES)
            mode.setCurrentText(ep.mode)
            url = QLineEdit(ep.url)
            # Wide enough for "https://observatory-pc.local:8705" without cutting it.
            url.setMinimumWidth(url.fontMetrics().horizontalAdvance("https://observatory-pc.example:18705") + 16)
            token = QLineEdit(ep.token or "")
            token.setEchoMode(QLineEdit.EchoMode.Password)
            token.setPlaceholderText("(this installation's)")
            token.setMinimumWidth(token.fontMetrics().horizontalAdvance("(this installation's)") + 16)
            test = QPushButton("Test")
            test.setObjectName(f"test_{name}")
            test.setToolTip("ask the server at this URL for its health, with this token")
            test.clicked.connect(lambda _=False, n=name: self.test(n))
            result = QLabel("")
            result.setObjectName(f"result_{name}")
            result.setMinimumWidth(result.fontMetrics().horizontalAdvance("unreachable: connection refused") + 8)
            grid.addWidget(QLabel(name), row, 0)
            grid.addWidget(mode, row, 1)
            grid.addWidget(url, row, 2)
            grid.addWidget(token, row, 3)
            grid.addWidget(test, row, 4)
            grid.addWidget(result, row, 5)
            self.rows[name] = (mode, url, token)
            self.results[name] = result
        grid.setColumnStretch(2, 1)
        layout.addLayout(grid)
        self.error = QLabel()
        self.error.setStyleSheet("color:#8a1020")
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def test(self, name: str) -> None:
        """Check one row's server off the GUI thread: health, then whether the token is accepted."""
        from rosace_desktop.tab import run_in_background

        mode, url, token = self.rows[name]
        base, key, label = url.text().strip().rstrip("/"), token.text().strip() or None, self.results[name]
        label.setText("testing...")
        label.setStyleSheet("color:#555")

        def done(text: str) -> None:
            label.setText(text)
            label.setStyleSheet("color:#1a7f37" if text.startswith("OK") else "color:#8a1020")

        run_in_background(lambda: probe_server(base, name, key), done, lambda exc: done(f"failed: {exc}"))

    def endpoints(self) -> dict[str, Endpoint]:
        """The endpoints as edited."""
        return {
            name: replace(self.original[name], mode=mode.currentText(), url=url.text().strip().rstrip("/"), token=token.text().strip() or None)
            for name, (mode, url, token) in self.rows.items()
        }

    def _accept(self) -> None:
        bad = [n for n, e in self.endpoints().items() if not e.url.startswith(("http://", "https://"))]
        if bad:
            self.error.setText(f"URL must start with http:// or https:// ({', '.join(bad)})")
            return
        self.accept()


def probe_server(url: str, module: str, token: str | None, timeout: float = 5.0) -> str:
    """One line on the server at ``url``: reachable, the right module, token accepted (worker thread)."""
    import requests

    from rosace_core.auth import resolve_token

    if not url.startswith(("http://", "https://")):
        return "URL must start with http:// or https://"
    try:
        health = requests.get(f"{url}/api/v1/health", timeout=timeout)
    except requests.RequestException as exc:
        reason = "connection refused" if isinstance(exc, requests.ConnectionError) else exc.__class__.__name__
        return f"unreachable: {reason}"
    if health.status_code != 200:
        return f"answers HTTP {health.status_code}: not a ROSACE server?"
    try:
        served = health.json().get("modules") or []
    except ValueError:
        return "answers, but not a ROSACE server"
    if module not in served:
        return f"a ROSACE server, but of {', '.join(served) or 'no module'}"
    # A request that changes nothing but needs the token: an unknown job to abort (404 when the
    # token is accepted, 401 when not). Modules without jobs answer 404/405 either way.
    key = token or resolve_token(None, module)
    probe = requests.post(f"{url}/api/v1/{module}/jobs/none/abort", headers={"Authorization": f"Bearer {key}"}, timeout=timeout)
    if probe.status_code == 401:
        return "reachable, but the token is refused"
    return f"OK: {module} {health.json().get('version', '')}".strip()


def edit_connections(window) -> None:
    """Show the connection dialog; save and apply the changes."""
    dialog = ConnectionDialog(dict(window.endpoints), window)
    if dialog.exec() == QDialog.DialogCode.Accepted:
        endpoints = dialog.endpoints()
        path = save(endpoints)
        window.statusBar().showMessage(f"connection settings saved to {path}", 5000)
        window.reconnect(endpoints)


def _config_path(window):
    from rosace_core.config import default_config_path

    cfg = window.config
    return cfg.source if cfg is not None and cfg.source and cfg.source.exists() else default_config_path()


def open_configuration(window) -> None:
    """Open the observatory configuration (TOML) in the user's editor, writing the example first if absent."""
    from rosace_core.config import example_config_text

    path = _config_path(window)
    if not path.exists():
        answer = QMessageBox.question(window, "ROSACE configuration", f"There is no configuration file yet.\nWrite the commented example to\n{path}?")
        if answer != QMessageBox.StandardButton.Yes:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(example_config_text(), encoding="utf-8")
    if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))):
        QMessageBox.information(window, "ROSACE configuration", f"The configuration file is\n{path}")


def check_configuration(window) -> str:
    """Load and validate the configuration file; show and return the verdict."""
    from rosace_core.config import load_config
    from rosace_core.errors import ConfigError

    path = _config_path(window)
    if not path.exists():
        text = f"No configuration file at {path}: the built-in defaults (simulated observatory) are used."
        QMessageBox.information(window, "ROSACE configuration", text)
        return text
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        text = f"{path} has errors:\n\n{exc}"
        QMessageBox.warning(window, "ROSACE configuration", text)
        return text
    text = (f"{path}: OK\n\nSite: {cfg.site.name} ({cfg.site.latitude:.4f}, {cfg.site.longitude:.4f})\n"
            f"Shelter: {cfg.devices.shelter}; spectrograph: {cfg.instrument.spectrograph}\n"
            + "\n".join(f"{m}: {e.url}" for m, e in cfg.modules.items())
            + "\n\nChanges apply to servers started after the change (Connections > settings, or restart).")
    QMessageBox.information(window, "ROSACE configuration", text)
    return text


STATUS_COLOURS = {"ok": "#1a7f37", "limited": "#9a6700", "refused": "#cf222e", "missing": "#cf222e"}


class DevicesDialog(QDialog):
    """``rosace devices check`` in the desktop: every configured device, what ROSACE uses, what is missing.

    The check runs on the thread pool (it connects to every device: seconds, more
    for a device that does not answer); "Check again" runs it anew.
    """

    COLUMNS = ("Device", "Status", "Alpaca device", "ROSACE will use", "Missing / refused")

    def __init__(self, config, parent=None):
        super().__init__(parent)
        self.config = config
        self.reports = None
        self.setWindowTitle("ROSACE: devices")
        self.resize(1000, 560)
        layout = QVBoxLayout(self)
        self.summary = QLabel("checking the devices...")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setWordWrap(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        layout.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.again = QPushButton("Check again")
        buttons.addButton(self.again, QDialogButtonBox.ButtonRole.ActionRole)
        self.again.clicked.connect(self.run_check)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.run_check()

    def run_check(self) -> None:
        """Check every device in the background; the table fills when done."""
        from rosace_core.devices import check_devices
        from rosace_desktop.tab import run_in_background

        self.again.setEnabled(False)
        self.summary.setText("checking the devices (connecting to each)...")
        config = self.config
        run_in_background(lambda: check_devices(config), self._show, self._failed)

    def _show(self, reports) -> None:
        from rosace_core.devices import BAD

        self.reports = reports
        self.again.setEnabled(True)
        self.table.setRowCount(len(reports))
        for row, r in enumerate(reports):
            cells = (f"{r.title}\n{r.role}: {r.url} #{r.device_number}", r.status, r.name or "-",
                     "\n".join(r.uses) or "-", "\n".join(r.missing) or "-")
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 1:
                    item.setForeground(QColor(STATUS_COLOURS.get(r.status, "#000000")))
                self.table.setItem(row, col, item)
        self.table.resizeRowsToContents()
        bad = [r.title for r in reports if r.status in BAD]
        self.summary.setText(f"<b style='color:#cf222e'>not usable: {', '.join(bad)}</b>" if bad
                             else "<b style='color:#1a7f37'>every device is usable</b>")

    def _failed(self, exc: Exception) -> None:
        self.again.setEnabled(True)
        self.summary.setText(f"<b style='color:#cf222e'>the check failed: {str(exc).replace('<', '&lt;')}</b>")


def check_devices(window) -> DevicesDialog:
    """Show the device check for the window's configuration (defaults when none)."""
    from rosace_core.config import ObservatoryConfig

    dialog = DevicesDialog(window.config if window.config is not None else ObservatoryConfig(), window)
    dialog.show()
    return dialog


def about_text(window) -> str:
    """The About box's text: version and the modules with where they run."""
    from PySide6 import __version__ as qt_version

    from rosace_core import __version__

    lines = []
    for loaded in window.loaded:
        conn = window.connections.get(loaded.name)
        where = f"{conn.mode}, {conn.url}, {conn.state}" if conn else (loaded.error or "not connected")
        lines.append(f"<li><b>{loaded.spec.title if loaded.spec else loaded.name}</b>: {where}</li>")
    return (f"<h3>ROSACE {__version__}</h3><p>Robotic Observations and Spectroscopic Astronomy, a Collaborative "
            f"Experience.</p><ul>{''.join(lines)}</ul><p>PySide6 {qt_version}. BSD-3-Clause licence.</p>")


def about(window) -> None:
    """Show the About box."""
    QMessageBox.about(window, "About ROSACE", about_text(window))
