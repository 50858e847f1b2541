"""What fills a module's tab: its own widget, the generic tab, or the error that stopped it.

- :func:`build_module_widget` asks the module for its widget (``gui.py``
  ``create_widget(client)``); a module without ``gui.py`` gets the
  :class:`GenericTab` (health, module URL, list of REST endpoints); a widget
  that fails to import or build gives a :class:`BrokenTab` showing the error.
- :class:`TabHost` is the page in the tab bar: a connection banner on top
  (what is wrong, that it retries) and the module's widget below; it exists
  before the connection is decided, so that the window opens at once.
"""

from __future__ import annotations

import logging
import traceback

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from rosace_core.plugins import ModuleSpec, load_object
from rosace_desktop.tab import ModuleTab

log = logging.getLogger(__name__)

_STATE_STYLE = {
    "online": "",
    "starting": "background:#fff4ce; color:#5c4400; padding:6px;",
    "unreachable": "background:#fde7e9; color:#8a1020; padding:6px;",
    "failed": "background:#fde7e9; color:#8a1020; padding:6px;",
}


class GenericTab(ModuleTab):
    """The tab of a module that has no widget of its own: health, URL and REST endpoints."""

    interval_ms = 5000

    def __init__(self, client, title: str = "", parent: QWidget | None = None):
        self._paths: list[tuple[str, str, str]] | None = None
        super().__init__(client, parent)
        self.setObjectName("genericTab")
        heading = QLabel(f"<h2>{title or client.module or 'module'}</h2>"
                         "<p>This module has no tab of its own yet; here is what its server offers.</p>")
        heading.setWordWrap(True)
        self.body.addWidget(heading)
        form = QFormLayout()
        self.url_label = QLabel(client.base_url)
        self.url_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.health_label = QLabel("-")
        self.version_label = QLabel("-")
        self.time_label = QLabel("-")
        form.addRow("Module URL:", self.url_label)
        form.addRow("Health:", self.health_label)
        form.addRow("Version:", self.version_label)
        form.addRow("Server time:", self.time_label)
        self.body.addLayout(form)
        self.endpoints = QTreeWidget()
        self.endpoints.setHeaderLabels(["Method", "Path", "Summary"])
        self.endpoints.setRootIsDecorated(False)
        self.endpoints.setObjectName("endpoints")
        self.body.addWidget(QLabel("REST endpoints (from /api/v1/openapi.json):"))
        self.body.addWidget(self.endpoints, 1)

    def fetch(self) -> dict:
        """Return the health document and, the first time, the endpoint list (worker thread)."""
        health = self.client.health()
        paths = self._paths
        if paths is None:
            doc = self.client.get(f"{self.client.base_url}/api/v1/openapi.json")
            paths = [
                (method.upper(), path, (op or {}).get("summary", ""))
                for path, item in sorted(doc.get("paths", {}).items())
                for method, op in item.items()
                if method in ("get", "post", "put", "patch", "delete")
            ]
        return {"health": health, "paths": paths}

    def update_view(self, data: dict) -> None:
        """Show health and endpoints (GUI thread)."""
        health = data["health"] or {}
        self.health_label.setText(str(health.get("status", "?")))
        self.version_label.setText(str(health.get("version", "?")))
        self.time_label.setText(str(health.get("time", "?")))
        if self._paths is None:
            self._paths = data["paths"]
            self.endpoints.clear()
            for method, path, summary in self._paths:
                self.endpoints.addTopLevelItem(QTreeWidgetItem([method, path, summary]))
            for col in range(2):
                self.endpoints.resizeColumnToContents(col)


class BrokenTab(QWidget):
    """The page of a module that could not be loaded: what failed, and where to look."""

    def __init__(self, name: str, error: str, details: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("brokenTab")
        self.error = error
        layout = QVBoxLayout(self)
        label = QLabel(f"<h2>{name}: not available</h2><p>This module failed to load, so its tab is disabled. "
                       "The other modules are not affected.</p>")
        label.setWordWrap(True)
        layout.addWidget(label)
        message = QLabel(error)
        message.setObjectName("error")
        message.setWordWrap(True)
        message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        message.setStyleSheet("color:#8a1020; font-family:monospace;")
        layout.addWidget(message)
        if details:
            more = QLabel(details)
            more.setWordWrap(True)
            more.setStyleSheet("color:#555; font-family:monospace; font-size:9pt;")
            layout.addWidget(more)
        layout.addStretch(1)


def _is_missing(exc: ModuleNotFoundError, ref: str) -> bool:
    """True when the widget's own module is absent (not yet written), not one of its imports."""
    target = ref.partition(":")[0]
    return exc.name is not None and (target == exc.name or target.startswith(exc.name + "."))


def build_module_widget(spec: ModuleSpec, client) -> tuple[QWidget, str | None]:
    """Return ``(widget, error)``: the module's own tab, the generic tab, or a BrokenTab and its error."""
    if spec.widget:
        try:
            factory = load_object(spec.widget)
        except ModuleNotFoundError as exc:
            if not _is_missing(exc, spec.widget):
                return _broken(spec, exc)
            factory = None
        except Exception as exc:  # an import-time bug in the module's gui.py
            return _broken(spec, exc)
        if factory is not None:
            try:
                return factory(client), None
            except Exception as exc:  # the widget's constructor failed
                return _broken(spec, exc)
    return GenericTab(client, spec.title), None


def _broken(spec: ModuleSpec, exc: Exception) -> tuple[QWidget, str]:
    error = f"{exc.__class__.__name__}: {exc}"
    log.error("the %s tab failed to load: %s", spec.id, error)
    log.debug("%s", traceback.format_exc())
    details = "".join(traceback.format_exception_only(exc)).strip()
    return BrokenTab(spec.title, f"Its widget ({spec.widget}) failed: {error}", details if details != error else ""), error


class TabHost(QWidget):
    """One page of the tab bar: a connection banner above the module's widget."""

    def __init__(self, name: str, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.name = name
        self.title = title
        self.content: QWidget | None = None
        self.error: str | None = None
        self.setObjectName(f"tab_{name}")
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(4, 4, 4, 4)
        self.banner = QLabel()
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.layout_.addWidget(self.banner)
        self.placeholder: QLabel | None = QLabel(f"Starting {title}...")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.layout_.addWidget(self.placeholder, 1)
        self.show_state("starting", f"looking for the {title} server...")

    def set_content(self, widget: QWidget, error: str | None = None) -> None:
        """Put the module's widget (or its BrokenTab) in the page, replacing any previous one."""
        if self.placeholder is not None:
            self.placeholder.deleteLater()
            self.placeholder = None
        if self.content is not None:
            self._dispose(self.content)
        self.content = widget
        self.error = error
        self.layout_.addWidget(widget, 1)
        if error:
            self.banner.hide()

    def _dispose(self, widget: QWidget) -> None:
        timer = getattr(widget, "timer", None)
        if timer is not None:
            timer.stop()
        self.layout_.removeWidget(widget)
        widget.deleteLater()

    def show_state(self, state: str, detail: str) -> None:
        """Show or hide the banner for a connection state."""
        if self.error:
            return
        if state == "online":
            self.banner.hide()
            return
        prefix = {"starting": "Starting", "unreachable": "Unreachable", "failed": "Failed"}.get(state, state.title())
        self.banner.setText(f"<b>{prefix}:</b> {detail}".replace("\n", "<br>"))
        self.banner.setStyleSheet(_STATE_STYLE.get(state, ""))
        self.banner.show()
