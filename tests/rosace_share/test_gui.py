"""The desktop tab against a real share server: search, plots, export."""

from __future__ import annotations

import pytest

from rosace_core.rest import BackgroundServer

pytest.importorskip("pytestqt", reason="pytest-qt is not installed")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_share_tab_browses_plots_and_exports(qtbot, app, be_series, tmp_path):
    from rosace_share.client import ShareClient
    from rosace_share.gui import create_widget

    archive = app.extensions["rosace_share"].archive
    for data, _, _ in be_series[:5]:
        archive.add(data, owner="observatory")
    with BackgroundServer(app) as server:
        client = ShareClient(server.url, token="admin-token-for-tests")
        tab = create_widget(client)
        qtbot.addWidget(tab)
        qtbot.waitUntil(lambda: tab.table.rowCount() == 5, timeout=10000)
        tab.table.selectRow(0)
        qtbot.waitUntil(lambda: len(tab.ew_plot.listDataItems()) == 1, timeout=10000)
        assert tab.dynamic_image.image is not None and tab.dynamic_image.image.shape[1] == 5
        assert len(tab.spectrum_plot.listDataItems()) >= 1
        out = tmp_path / "x.fit"
        tab.export_to(tab.selected()["id"], out, "bess")
        qtbot.waitUntil(lambda: out.exists() and out.stat().st_size > 2880, timeout=10000)
        assert out.read_bytes().startswith(b"SIMPLE  =")
        tab.object_edit.setText("zet Tau")
        # refresh() is skipped while an earlier fetch runs: ask again until the new filter shows.
        qtbot.waitUntil(lambda: (tab.refresh(), tab.table.rowCount() == 0)[1], timeout=10000)
        tab.timer.stop()
        client.session.close()
