"""The desktop window: tabs from entry points, broken modules, local and remote servers, no freeze."""

from __future__ import annotations

import threading
import time
from importlib.metadata import EntryPoint

import pytest

from rosace_core import plugins
from rosace_core.plugins import LoadedModule
from rosace_core.rest import BackgroundServer
from rosace_desktop.app import create_window
from rosace_desktop.connection import ModuleConnection
from rosace_desktop.launch import free_port
from rosace_desktop.tab import run_in_background
from rosace_desktop.tabs import BrokenTab, GenericTab

BUILTIN_TITLES = ["Dome", "Scheduler", "Sequencer", "Reduction", "Share"]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    """Poll connections quickly so that state changes show within a test's patience."""
    monkeypatch.setattr(ModuleConnection, "retry_period_ms", 200)
    monkeypatch.setattr(ModuleConnection, "online_period_ms", 300)


def tab_titles(window) -> list[str]:
    return [window.tabs.tabText(i) for i in range(window.tabs.count())]


def test_five_builtin_tabs_in_order_even_when_every_server_is_unreachable(qtbot, close_windows):
    dead = f"http://127.0.0.1:{free_port()}"
    urls = {m: dead for m in ("dome", "scheduler", "sequencer", "reduction", "share")}
    window = create_window(None, mode="remote", urls=urls, use_saved=False)
    close_windows(window)
    qtbot.addWidget(window)
    window.show()
    assert tab_titles(window)[:5] == BUILTIN_TITLES
    qtbot.waitUntil(lambda: all(h.content is not None for h in window.hosts.values()), timeout=20000)
    qtbot.waitUntil(lambda: all(window.module_state(m) == "unreachable" for m in urls), timeout=20000)
    dome = window.hosts["dome"]
    assert dome.banner.isVisibleTo(window) and "Unreachable" in dome.banner.text() and "retrying" in dome.banner.text()
    assert "unknown" in window.safety_label.text().lower()


def test_broken_entry_point_and_broken_widget_give_disabled_tabs(qtbot, close_windows, fake_site, monkeypatch):
    real = plugins.entry_points

    def with_broken(**kw):
        found = list(real(**kw))
        if kw.get("group") == plugins.GROUP:
            found += [
                EntryPoint("zzbroken", "rosace_no_such_package_xyz:MODULE", plugins.GROUP),
                EntryPoint("badwidget", "rosace_fakemod:BROKEN_WIDGET", plugins.GROUP),
            ]
        return found

    monkeypatch.setattr(plugins, "entry_points", with_broken)
    dead = f"http://127.0.0.1:{free_port()}"
    window = create_window(None, mode="remote", urls={"badwidget": dead, "fake": dead}, only=["dome", "fake", "badwidget", "zzbroken"], use_saved=False)
    close_windows(window)
    qtbot.addWidget(window)
    window.show()
    titles = tab_titles(window)
    assert titles[0] == "Dome" and set(titles[1:]) == {"Bad widget", "Fake", "zzbroken"}
    qtbot.waitUntil(lambda: all(h.content is not None for h in window.hosts.values()), timeout=20000)

    broken = window.hosts["zzbroken"]
    assert not window.tabs.isTabEnabled(window.tabs.indexOf(broken))
    assert isinstance(broken.content, BrokenTab) and "rosace_no_such_package_xyz" in broken.content.error
    assert window.module_state("zzbroken") == "failed"

    bad = window.hosts["badwidget"]
    assert not window.tabs.isTabEnabled(window.tabs.indexOf(bad))
    assert isinstance(bad.content, BrokenTab) and "widget exploded on purpose" in bad.content.error
    # A module without gui.py gets the generic tab, enabled.
    assert isinstance(window.hosts["fake"].content, GenericTab)
    assert window.tabs.isTabEnabled(window.tabs.indexOf(window.hosts["fake"]))


def test_remote_module_connects_says_unreachable_and_reconnects(qtbot, close_windows, fake_loaded, tmp_path, monkeypatch):
    # The "remote" server is a separate process the window did not start (as on the
    # observatory PC), protected by a token the desktop is given.
    from rosace_desktop.launch import ServerProcess

    monkeypatch.setenv("ROSACE_TOKEN", "remote-secret")
    server = ServerProcess("fake", free_port(), tmp_path / "remote.out").start()
    try:
        window = create_window(None, urls={"fake": server.url}, token="remote-secret", use_saved=False, modules=fake_loaded)
        close_windows(window)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitUntil(lambda: window.module_state("fake") == "online", timeout=60000)
        assert window.connections["fake"].server is None  # not started by the window
        tab = window.hosts["fake"].content
        assert isinstance(tab, GenericTab)
        assert tab.client.token == "remote-secret" and tab.client.base_url == server.url
        qtbot.waitUntil(lambda: tab.endpoints.topLevelItemCount() > 0, timeout=10000)
        paths = {tab.endpoints.topLevelItem(i).text(1) for i in range(tab.endpoints.topLevelItemCount())}
        assert {"/api/v1/fake/slow", "/api/v1/health"} <= paths

        server.popen.kill()  # the observatory PC goes away
        server.popen.wait(timeout=10)
        qtbot.waitUntil(lambda: window.module_state("fake") == "unreachable", timeout=20000)
        assert "cannot reach" in window.hosts["fake"].banner.text()

        server.start()  # back on the same port: the tab reconnects by itself
        qtbot.waitUntil(lambda: window.module_state("fake") == "online", timeout=60000)
        assert not window.hosts["fake"].banner.isVisibleTo(window)
    finally:
        server.stop()


def test_local_module_runs_in_a_child_process_and_is_restarted_when_it_dies(qtbot, close_windows, fake_loaded):
    window = create_window(None, mode="local", use_saved=False, modules=fake_loaded)
    close_windows(window)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: "fake" in window.connections, timeout=20000)
    conn = window.connections["fake"]
    assert conn.mode == "local" and conn.server is not None and conn.server.running
    qtbot.waitUntil(lambda: window.module_state("fake") == "online", timeout=60000)
    assert conn.url == conn.server.url
    # The tab's client presents this installation's token: a write is refused for
    # its path (404), not for its credentials (401).
    from rosace_core.errors import NotFoundError

    with pytest.raises(NotFoundError):
        window.hosts["fake"].content.client.post("/no-such-action")

    conn.server.popen.kill()
    conn.server.popen.wait(timeout=10)
    qtbot.waitUntil(lambda: conn.server.restarts == 1, timeout=20000)
    qtbot.waitUntil(lambda: window.module_state("fake") == "online" and conn.server.running, timeout=60000)

    server = conn.server
    window.shutdown()
    assert not server.running


def test_slow_module_leaves_the_event_loop_responsive(qtbot, close_windows, fake_spec, fake_loaded):
    app = fake_spec.create_app(None, token="", slow_health=1.5)
    ticks: list[float] = []
    with BackgroundServer(app) as server:
        window = create_window(None, urls={"fake": server.url}, use_saved=False, modules=fake_loaded)
        close_windows(window)
        qtbot.addWidget(window)
        window.show()
        from PySide6.QtCore import QTimer

        timer = QTimer()
        timer.timeout.connect(lambda: ticks.append(time.monotonic()))
        timer.start(20)
        started = time.monotonic()
        qtbot.waitUntil(lambda: window.module_state("fake") == "online", timeout=30000)
        qtbot.wait(1000)  # more slow refreshes in flight meanwhile
        timer.stop()
        elapsed = time.monotonic() - started
    assert elapsed > 1.4  # the server really was slow
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert len(ticks) > elapsed / 0.02 * 0.3, f"only {len(ticks)} ticks in {elapsed:.1f} s"
    assert max(gaps) < 0.5, f"event loop blocked for {max(gaps):.2f} s"


def test_background_results_arrive_on_the_gui_thread(qtbot):
    seen = {}

    def work():
        seen["worker"] = threading.current_thread() is threading.main_thread()
        return 42

    def done(value):
        seen["gui"] = threading.current_thread() is threading.main_thread()
        seen["value"] = value

    run_in_background(work, done)
    qtbot.waitUntil(lambda: "value" in seen, timeout=5000)
    assert seen == {"worker": False, "gui": True, "value": 42}


def test_status_bar_shows_the_dome_safety_verdict(qtbot, close_windows, fake_site):
    from dataclasses import replace

    import rosace_fakemod

    # A dome stand-in that answers GET /api/v1/dome/status like the real one (unsafe, rain).
    from rosace_core.rest import Api, create_module_app

    api = Api("dome", "Dome")

    @api.route("/status")
    def status():
        return {"safe": False, "verdict": {"safe": False, "reasons": ["rain detected"], "since": None}}

    spec = replace(rosace_fakemod.MODULE, id="dome", title="Dome", widget=None)
    with BackgroundServer(create_module_app(api, token="")) as server:
        window = create_window(None, urls={"dome": server.url}, use_saved=False, modules=[LoadedModule("dome", spec)])
        close_windows(window)
        qtbot.addWidget(window)
        qtbot.waitUntil(lambda: "dome" in window.connections, timeout=20000)
        window.poll_safety()
        qtbot.waitUntil(lambda: "UNSAFE" in window.safety_label.text(), timeout=10000)
        assert "rain detected" in window.safety_label.text()
