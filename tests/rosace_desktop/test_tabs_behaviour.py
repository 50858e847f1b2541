"""Tab behaviours a user relies on: a tab that refreshes on request still comes online by itself;
the reduction's result list keeps its order and selection when a new result arrives; the share
tab's spectrum plot spans the spectrum, not 0 Å."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt", reason="pytest-qt is not installed")


def test_share_tab_fills_itself_once_its_server_answers(qtbot, tmp_path):
    from rosace_core.config import config_from_dict
    from rosace_core.rest import BackgroundServer
    from rosace_desktop.launch import free_port
    from rosace_share.api import create_app
    from rosace_share.client import ShareClient
    from rosace_share.gui import ShareTab

    port = free_port()
    tab = ShareTab(ShareClient(f"http://127.0.0.1:{port}", token="tok"))
    tab.retry_ms = 300
    qtbot.addWidget(tab)
    qtbot.waitUntil(lambda: tab.online is False, timeout=15000)
    assert "retrying" in tab.status_line.text()
    app = create_app(config_from_dict({"data": {"root": str(tmp_path)}}), token="tok")
    with BackgroundServer(app, port=port):
        qtbot.waitUntil(lambda: tab.online is True, timeout=15000)
        assert tab.status_line.text() == "0 spectra"
    app.extensions["rosace_share"].archive.close()


def _result(rid: str, date: str) -> dict:
    return {"id": rid, "object": f"star {rid}", "date_obs": date, "instrument": "alpy600", "quality": {"snr": 100.0}}


def test_reduction_list_keeps_order_and_selection(qtbot):
    from rosace_reduction.gui import ReductionTab

    class Offline:
        def results(self):
            raise ConnectionError("offline")

        def health(self):
            raise ConnectionError("offline")

    tab = ReductionTab(Offline())
    tab.timer.stop()
    qtbot.addWidget(tab)
    first = [_result("b", "2026-11-20T21:00"), _result("a", "2026-11-20T20:00")]
    tab.update_view({"results": first, "jobs": []})
    names = lambda: [tab.results_list.item(i).text().split()[1] for i in range(tab.results_list.count())]  # noqa: E731
    assert names() == ["a", "b"]
    tab.results_list.blockSignals(True)
    tab.results_list.setCurrentRow(1)
    tab.results_list.blockSignals(False)
    selected = tab.results_list.currentItem()
    # A newer result arrives (listed first by the server): inserted at its place, nothing else moves.
    tab.update_view({"results": [_result("c", "2026-11-20T22:00"), *first], "jobs": []})
    assert names() == ["a", "b", "c"]
    assert tab.results_list.currentItem() is selected


def test_share_spectrum_plot_spans_the_spectrum(qtbot):
    from rosace_share.gui import ShareTab

    class Offline:
        def search(self, **_):
            raise ConnectionError("offline")

    tab = ShareTab(Offline())
    tab.retry_ms = 10**6
    qtbot.addWidget(tab)
    wl = np.linspace(6400.0, 6700.0, 500)
    flux = 1 + np.exp(-0.5 * ((wl - 6563) / 3) ** 2)
    data = {"wavelength": wl.tolist(), "flux": flux.tolist(), "error": (0.01 * flux).tolist()}
    lines = {"image": [], "velocity": [], "ew": [], "rest": 6562.85}
    tab.plot(({"object": "gam Cas", "date_obs": "2026-11-20T21:00"}, data, lines))
    (x0, x1), _ = tab.spectrum_plot.getViewBox().viewRange()
    assert 6390 < x0 < 6405 and 6695 < x1 < 6710


def test_connection_dialog_tests_each_server_and_shows_whole_urls(qtbot, tmp_path):
    from rosace_core.config import config_from_dict
    from rosace_core.rest import BackgroundServer
    from rosace_desktop.dialogs import ConnectionDialog
    from rosace_desktop.launch import free_port
    from rosace_desktop.settings import Endpoint
    from rosace_reduction.api import create_app

    with BackgroundServer(create_app(config_from_dict({"data": {"root": str(tmp_path)}}), token="right")) as server:
        endpoints = {
            "reduction": Endpoint("reduction", "remote", server.url, "right"),
            "share": Endpoint("share", "remote", f"http://127.0.0.1:{free_port()}", None),
            "dome": Endpoint("dome", "remote", server.url, "x"),
        }
        dialog = ConnectionDialog(endpoints)
        qtbot.addWidget(dialog)
        dialog.show()
        url_edit = dialog.rows["reduction"][1]
        assert url_edit.width() >= url_edit.fontMetrics().horizontalAdvance(server.url)
        for name in endpoints:
            dialog.test(name)
        qtbot.waitUntil(lambda: all(r.text() not in ("", "testing...") for r in dialog.results.values()), timeout=20000)
        assert dialog.results["reduction"].text().startswith("OK: reduction")
        assert dialog.results["share"].text().startswith("unreachable")
        assert "ROSACE server, but of reduction" in dialog.results["dome"].text()
        dialog.rows["reduction"][2].setText("wrong")
        dialog.test("reduction")
        qtbot.waitUntil(lambda: "token is refused" in dialog.results["reduction"].text(), timeout=20000)
