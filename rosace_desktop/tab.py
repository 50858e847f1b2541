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

from PySide6.QtCore import QCoreApplication, QObject, QRunnable, QThreadPool, QTimer, Signal, Slot
from PySide6.QtWidgets import QLabel, QMessageBox, QVBoxLayout, QWidget

log = logging.getLogger(__name__)


class _Dispatcher(QObject):
    """Lives on the GUI thread and calls the callbacks workers hand it there.

    One long-lived object, rather than a signal object per task, so that a
    result is never lost because the task that produced it was already
    deleted by the thread pool (which drops queued calls to plain functions).
    """

    deliver = Signal(object, object)

    def __init__(self):
        super().__init__()
        self.deliver.connect(self._call)

    @Slot(object, object)
    def _call(self, callback, value) -> None:
        try:
            callback(value)
        except RuntimeError as exc:  # the widget owning the callback was closed meanwhile
            log.debug("callback dropped: %s", exc)


_dispatcher: _Dispatcher | None = None


def _get_dispatcher() -> _Dispatcher:
    global _dispatcher
    if _dispatcher is None:
        _dispatcher = _Dispatcher()
        app = QCoreApplication.instance()
        if app is not None:
            _dispatcher.moveToThread(app.thread())
    return _dispatcher


class _Task(QRunnable):
    def __init__(self, fn: Callable[[], Any], on_done=None, on_error=None):
        super().__init__()
        self.fn = fn
        self.on_done = on_done
        self.on_error = on_error
        self.dispatcher = _get_dispatcher()
        self.setAutoDelete(True)

    @Slot()
    def run(self) -> None:
        try:
            result = self.fn()
        except Exception as exc:  # reported in the tab, not raised into Qt
            log.debug("background call failed: %s", traceback.format_exc())
            if self.on_error is not None:
                self.dispatcher.deliver.emit(self.on_error, exc)
            return
        if self.on_done is not None:
            self.dispatcher.deliver.emit(self.on_done, result)


def run_in_background(fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None, on_error: Callable[[Exception], None] | None = None) -> _Task:
    """Run ``fn`` on the global thread pool; deliver its result or error on the GUI thread.

    Call it from the GUI thread. ``on_done(result)`` / ``on_error(exception)``
    run on the GUI thread, whatever they are (bound methods, lambdas, functions).
    """
    task = _Task(fn, on_done, on_error)
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

    #: a tab without periodic refresh retries a failed fetch after this many milliseconds
    retry_ms = 3000

    def _fetch_failed(self, exc: Exception) -> None:
        self._busy = False
        self.online = False
        self.status_line.setText(f"unreachable: {exc} (retrying)")
        if not self.timer.isActive():
            # Tabs that refresh on request only (share) said "retrying" and never did, so they
            # stayed empty once the server came up: retry until one fetch succeeds.
            QTimer.singleShot(self.retry_ms, self.refresh)

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
