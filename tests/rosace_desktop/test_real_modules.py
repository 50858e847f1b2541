"""The desktop against the five real modules (in-process servers): every tab, one screenshot each."""

from __future__ import annotations

import pytest

from rosace_core import plugins
from rosace_core.config import ObservatoryConfig
from rosace_core.rest import BackgroundServer
from rosace_desktop.app import create_window


@pytest.fixture
def module_servers(tmp_path, earth_orientation):
    """Every registered module's REST app on its own free localhost port (IERS table read first, as `serve` does)."""
    config = ObservatoryConfig.model_validate({"data": {"root": str(tmp_path / "data")}})
    servers = {}
    try:
        for loaded in plugins.discover_modules():
            if loaded.spec is not None:
                servers[loaded.name] = BackgroundServer(loaded.spec.create_app(config)).start()
        yield config, servers
    finally:
        for server in servers.values():
            server.stop()


def test_five_tabs_connect_to_the_real_modules_and_are_photographed(qtbot, close_windows, module_servers, screenshots):
    config, servers = module_servers
    assert list(servers)[:5] == ["dome", "scheduler", "sequencer", "reduction", "share"]
    window = create_window(config, mode="remote", urls={n: s.url for n, s in servers.items()}, use_saved=False)
    close_windows(window)
    qtbot.addWidget(window)
    window.resize(1100, 720)
    window.show()
    try:
        qtbot.waitUntil(lambda: all(window.module_state(n) == "online" for n in servers), timeout=30000)
    except Exception:
        raise AssertionError({n: (window.module_state(n), window.connections[n].detail if n in window.connections else None) for n in servers}) from None
    window.poll_safety()
    qtbot.waitUntil(lambda: "Safety:" in window.safety_label.text(), timeout=5000)
    qtbot.wait(1500)  # let each tab's first refresh land before the pictures
    saved = []
    for i in range(window.tabs.count()):
        window.tabs.setCurrentIndex(i)
        qtbot.wait(200)
        path = screenshots / f"tab-{i + 1}-{window.tabs.tabText(i).lower()}.png"
        assert window.grab().save(str(path))
        saved.append(path)
    assert [p.stat().st_size > 5000 for p in saved] == [True] * window.tabs.count()
    # What the pictures must not show (the interface audit): a share tab saying "unreachable"
    # while online, a scheduler plot without its night and now-line.
    import pyqtgraph as pg

    share, scheduler = window.hosts["share"].content, window.hosts["scheduler"].content
    qtbot.waitUntil(lambda: share.online is True, timeout=10000)
    assert "unreachable" not in share.status_line.text() and share.status_line.text().endswith("spectra")
    qtbot.waitUntil(lambda: scheduler.last_data is not None, timeout=20000)
    assert any(isinstance(i, pg.InfiniteLine) for i in scheduler.timeline.items)
    (x0, x1), _ = scheduler.timeline.getViewBox().viewRange()
    assert x1 - x0 > 8 * 3600  # the whole night, not only what is left of it
    # Every tab loaded (own widget or generic) and is enabled.
    assert all(window.tabs.isTabEnabled(i) for i in range(window.tabs.count())), [
        (window.tabs.tabText(i), window.hosts[n].error) for i, n in enumerate(window.hosts)
    ]
