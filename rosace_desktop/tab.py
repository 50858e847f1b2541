"""The small shared base of every module tab: network calls off the GUI thread.

A tab subclasses :class:`ModuleTab`, implements ``fetch()`` (runs in a worker
thread, may call the module's REST client, returns plain data) and
``update_view(data)`` (runs on the GUI thread). Button actions go through
``run_async(fn, on_done)`` so that a slow or dead server never freezes the
window. Errors are shown in the tab's status line, never raised to Qt.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal, Slot
from PySide6.QtWidgets import QLabel, QMessageBox, QVBoxLayout, QWidget

log = logging.getLogger(__name__)


class _Signals(QObject):
    done = Signal(object)
    failed = Signal(object)


class _Task(QRunnable):
    def __init__(self, fn: Callable[[], Any]):
        super().__init__()
        self.fn = fn
        self.signals = _Signals()
        self.setAutoDelete(True)

    @Slot()
    def run(self) -> None:
        try:
            result = self.fn()
        except Exception as exc:  # reported in the tab, not raised into Qt
            log.debug("background call failed: %s", traceback.format_exc())
            try:
                self.signals.failed.emit(exc)
            except RuntimeError:  # the tab was closed meanwhile
                pass
            return
        try:
            self.signals.done.emit(result)
        except RuntimeError:
            pass


def run_in_background(fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None, on_error: Callable[[Exception], None] | None = None) -> _Task:
    """Run ``fn`` on the global thread pool; deliver its result or error on the GUI thread."""
    task = _Task(fn)
    if on_done is not None:
        task.signals.done.connect(on_done)
    if on_error is not None:
        task.signals.failed.connect(on_error)
    QThreadPool.globalInstance().start(task)
    return task


class ModuleTab(QWidget):
    """Base class of a module tab: periodic background refresh plus async actions.

    Subclasses build their widgets in ``__init__`` (calling ``super().__init__``
    first, then adding to ``self.body``, a QVBoxLayout), and implement ``fetch``
    and ``update_view``.
    """

    #: refresh period in milliseconds (0 disables the periodic refresh)
    interval_ms = 2000

    def __init__(self, client, parent: QWidget | None = None):
        super().__init__(parent)
        self.client = client
        self._busy = False
        self.online: bool | None = None
        outer = QVBoxLayout(self)
        self.body = QVBoxLayout()
        outer.addLayout(self.body, 1)
        self.status_line = QLabel("connecting...")
        self.status_line.setObjectName("statusLine")
        outer.addWidget(self.status_line)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        if self.interval_ms:
            self.timer.start(self.interval_ms)
        QTimer.singleShot(0, self.refresh)

    def fetch(self) -> Any:
        """Return fresh data from the module (worker thread; network calls allowed)."""
        return self.client.health()

    def update_view(self, data: Any) -> None:
        """Show ``data`` (GUI thread)."""

    def refresh(self) -> None:
        """Start a background fetch unless one is still running."""
        if self._busy:
            return
        self._busy = True
        run_in_background(self.fetch, self._fetched, self._fetch_failed)

    def _fetched(self, data: Any) -> None:
        self._busy = False
        self.online = True
        self.status_line.setText("connected")
        try:
            self.update_view(data)
        except Exception as exc:  # a display bug must not kill the tab
            log.exception("update_view failed")
            self.status_line.setText(f"display error: {exc}")

    def _fetch_failed(self, exc: Exception) -> None:
        self._busy = False
        self.online = False
        self.status_line.setText(f"unreachable: {exc} (retrying)")

    def run_async(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None, *, what: str = "action") -> None:
        """Run an action off the GUI thread; report its error in the status line, then refresh."""

        def done(result):
            self.status_line.setText(f"{what}: done")
            if on_done is not None:
                on_done(result)
            self.refresh()

        def failed(exc):
            self.status_line.setText(f"{what} failed: {exc}")

        self.status_line.setText(f"{what}...")
        run_in_background(fn, done, failed)

    def confirm(self, question: str) -> bool:
        """Ask a yes/no question (used before opening a roof)."""
        return QMessageBox.question(self, "ROSACE", question) == QMessageBox.StandardButton.Yes
