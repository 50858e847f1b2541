"""``rosace selftest``: prove an installation works, from source or frozen.

1. import every registered module (spec, app factory, client, widget);
2. start each module's REST server as a child process on a free port and check
   ``/api/v1/health``;
3. open the desktop offscreen against those servers and wait for every tab to
   be connected;
4. stop everything and exit 0 only if every step passed.

The installer's build and CI run it on the frozen bundle, where a missing
hidden import or data file shows up as a failing step with its error.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Step:
    """One check and its outcome."""

    name: str
    ok: bool
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Report:
    """Every check of a self-test run."""

    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    def add(self, name: str, ok: bool, detail: str = "", started: float | None = None) -> Step:
        step = Step(name, ok, detail, round(time.monotonic() - started, 2) if started else 0.0)
        self.steps.append(step)
        print(f"selftest: {'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
        return step


def check_imports(report: Report) -> list:
    """Import every module's parts; return the specs that loaded."""
    from rosace_core import plugins
    from rosace_desktop.tabs import _is_missing

    specs = []
    loaded = plugins.discover_modules()
    if not loaded:
        report.add("modules registered", False, f"no entry point in group {plugins.GROUP} (distribution metadata missing?)")
    for m in loaded:
        t = time.monotonic()
        if m.spec is None:
            report.add(f"import {m.name}", False, m.error or "failed")
            continue
        try:
            plugins.load_object(m.spec.app)
            plugins.load_object(m.spec.client)
            widget = "generic tab"
            if m.spec.widget:
                try:
                    plugins.load_object(m.spec.widget)
                    widget = "own tab"
                except ModuleNotFoundError as exc:
                    if not _is_missing(exc, m.spec.widget):
                        raise
        except Exception as exc:
            report.add(f"import {m.name}", False, f"{exc.__class__.__name__}: {exc}", t)
            continue
        report.add(f"import {m.name}", True, widget, t)
        specs.append(m.spec)
    return specs


def start_servers(report: Report, specs, folder: Path, config_path, timeout: float) -> tuple[dict, dict]:
    """Start every module server on a free port; return (all servers, those healthy) by module."""
    from rosace_core.http import RestClient
    from rosace_desktop.launch import ServerProcess, free_port

    servers = {s.id: ServerProcess(s.id, free_port(), folder / f"{s.id}.out", config_path=config_path).start() for s in specs}
    healthy = {}
    t = time.monotonic()
    deadline = t + timeout
    pending = dict(servers)
    while pending and time.monotonic() < deadline:
        for name, server in list(pending.items()):
            if not server.running:
                report.add(f"serve {name}", False, f"exited with status {server.returncode}: {server.tail(6)}", t)
                del pending[name]
                continue
            try:
                health = RestClient(server.url, timeout=2).health()
            except Exception:
                continue
            ok = isinstance(health, dict) and health.get("status") == "ok"
            report.add(f"serve {name}", ok, f"{server.url} health {health.get('status') if isinstance(health, dict) else health}", t)
            if ok:
                healthy[name] = server
            del pending[name]
        time.sleep(0.2)
    for name, server in pending.items():
        report.add(f"serve {name}", False, f"no answer on {server.url} after {timeout:.0f} s: {server.tail(6)}", t)
    return servers, healthy


def open_desktop(report: Report, healthy: dict, config, timeout: float, screenshots: Path | None) -> None:
    """Open the desktop offscreen against the running servers; check every tab connects."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, QTimer

    from rosace_desktop.app import create_window

    t = time.monotonic()
    urls = {name: server.url for name, server in healthy.items()}
    window = create_window(config, mode="remote", urls=urls, only=list(urls), use_saved=False)
    window.show()
    loop = QEventLoop()
    deadline = time.monotonic() + timeout

    def done() -> bool:
        return all(h.content is not None for h in window.hosts.values()) and all(
            window.module_state(n) == "online" for n in urls
        )

    def poll():
        if done() or time.monotonic() > deadline:
            loop.quit()

    timer = QTimer()
    timer.timeout.connect(poll)
    timer.start(100)
    loop.exec()
    timer.stop()
    states = {n: window.module_state(n) for n in urls}
    report.add("desktop window", window.tabs.count() == len(urls), f"{window.tabs.count()} tabs: {', '.join(window.tabs.tabText(i) for i in range(window.tabs.count()))}", t)
    report.add("desktop tabs connected", done(), ", ".join(f"{n} {s}" for n, s in states.items()), t)
    if screenshots is not None:
        screenshots.mkdir(parents=True, exist_ok=True)
        for i in range(window.tabs.count()):
            window.tabs.setCurrentIndex(i)
            window.grab().save(str(screenshots / f"tab-{i + 1}-{window.tabs.tabText(i).lower()}.png"))
    window.close()
    window.shutdown()
    release_qt(window)


def release_qt(window) -> None:
    """Delete the window and let background calls finish, so that the process exits cleanly.

    Widgets outliving the event loop, or worker threads still running Python at
    interpreter exit, crash Qt on the way out.
    """
    from PySide6.QtCore import QCoreApplication, QThreadPool

    window.deleteLater()
    QThreadPool.globalInstance().waitForDone(10000)
    QCoreApplication.sendPostedEvents(None, 0)
    QCoreApplication.processEvents()


def run_selftest(args) -> int:
    """Run every check; print the report; return 0 when all passed."""
    from rosace_core.astro import configure_offline
    from rosace_core.config import load_config
    from rosace_desktop.launch import stop_all

    report = Report()
    started = time.monotonic()
    t = time.monotonic()
    try:
        configure_offline()
        config = load_config(args.config)
        report.add("configuration", True, str(config.source or "built-in defaults"), t)
    except Exception as exc:
        report.add("configuration", False, f"{exc.__class__.__name__}: {exc}", t)
        return _finish(report, args, started)
    specs = check_imports(report)
    folder = Path(tempfile.mkdtemp(prefix="rosace-selftest-"))
    servers: dict = {}
    try:
        servers, healthy = start_servers(report, specs, folder, args.config, args.timeout)
        if healthy:
            open_desktop(report, healthy, config, args.timeout, Path(args.screenshots) if args.screenshots else None)
    except Exception as exc:  # the report says what broke; no traceback for the user
        report.add("self-test", False, f"{exc.__class__.__name__}: {exc}")
    finally:
        stop_all(list(servers.values()))
    return _finish(report, args, started)


def _finish(report: Report, args, started: float) -> int:
    total = time.monotonic() - started
    if getattr(args, "json", False):
        print(json.dumps({"ok": report.ok, "seconds": round(total, 1), "frozen": bool(getattr(sys, "frozen", False)),
                          "steps": [asdict(s) for s in report.steps]}))
    else:
        failed = [s for s in report.steps if not s.ok]
        print(f"selftest: {'PASSED' if report.ok else 'FAILED'} ({len(report.steps) - len(failed)}/{len(report.steps)} checks, {total:.1f} s)", flush=True)
    return 0 if report.ok else 1
