"""Start the desktop: Qt application, main window, clean exit.

``run_desktop(args)`` is what ``rosace desktop`` calls; :func:`create_window`
is the piece tests and the self-test use.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from rosace_core.errors import RosaceError

log = logging.getLogger(__name__)

_T0 = time.perf_counter()


def qt_application():
    """Return the QApplication, creating it once."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
        app.setApplicationName("ROSACE")
        app.setOrganizationName("ROSACE")
    return app


def create_window(config=None, *, mode: str | None = None, urls: dict[str, str] | None = None, token: str | None = None,
                  only: list[str] | None = None, use_saved: bool = True, modules=None):
    """Build the main window for the discovered modules (the event loop starts it connecting)."""
    from rosace_core import plugins
    from rosace_desktop.settings import resolve_endpoints
    from rosace_desktop.window import MainWindow

    qt_application()
    loaded = modules if modules is not None else plugins.discover_modules()
    names = [m.name for m in loaded if not only or m.name in only]
    endpoints = resolve_endpoints(names, config, mode=mode, urls=urls, token=token, use_saved=use_saved)
    return MainWindow(endpoints, config, modules=loaded, only=only)


def run_desktop(args) -> int:
    """Run ``rosace desktop``: open the window and the event loop; return the exit status."""
    from rosace_core.astro import configure_offline
    from rosace_core.config import load_config
    from rosace_core.logs import setup_logging
    from rosace_desktop.settings import parse_module_urls

    setup_logging("desktop", getattr(args, "log_level", "INFO"))
    configure_offline()
    try:
        urls = parse_module_urls(args.module_url)
    except ValueError as exc:
        raise RosaceError(f"--module-url: {exc}") from None
    config = load_config(args.config)
    mode = "remote" if args.remote else ("local" if args.local else None)
    only = [m.strip() for m in args.only.split(",") if m.strip()] if args.only else None

    app = qt_application()
    _install_excepthook()
    _quit_on_termination(app)
    # A configuration named on the command line describes the whole set-up (a demo
    # run, another observatory): choices saved from the dialog do not override it.
    window = create_window(config, mode=mode, urls=urls, token=args.token, only=only, use_saved=args.config is None)
    window.show()
    if args.report_ready:
        def ready():
            print(json.dumps({"ready_s": round(time.perf_counter() - _T0, 3), "tabs": window.tabs.count()}), flush=True)

        window.tabs_ready.connect(ready)
    if args.exit_after is not None:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(int(args.exit_after * 1000), window.close)
    status = app.exec()
    window.shutdown()
    from rosace_desktop.selftest import release_qt

    release_qt(window)
    return int(status)


def _quit_on_termination(app) -> None:
    """SIGTERM / SIGINT (Ctrl+Break on Windows) end the event loop, so the window's shutdown
    stops the servers it started (the default action killed the desktop and orphaned them)."""
    import signal

    from PySide6.QtCore import QTimer

    def quit_app(signum, _frame):
        log.info("signal %s: closing the desktop", signum)
        app.quit()

    for name in ("SIGTERM", "SIGINT", "SIGBREAK"):
        if hasattr(signal, name):
            try:
                signal.signal(getattr(signal, name), quit_app)
            except (ValueError, OSError):  # not the main thread, or not settable here
                pass
    # Python runs signal handlers only between bytecodes: a timer lets it out of Qt's loop.
    timer = QTimer(app)
    timer.timeout.connect(lambda: None)
    timer.start(250)


def _install_excepthook() -> None:
    """Log an exception escaping a Qt slot instead of letting it abort the program."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        if issubclass(kind, KeyboardInterrupt):
            return previous(kind, value, tb)
        log.error("unexpected error in the desktop", exc_info=(kind, value, tb))

    sys.excepthook = hook
