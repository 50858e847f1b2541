"""The desktop tab against a real reduction server: results list, 2D frame with trace and
extraction window, arc residuals and spectrum; a screenshot is saved for a human to look at."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from rosace_core.config import config_from_dict
from rosace_core.rest import BackgroundServer

pytest.importorskip("pytestqt", reason="pytest-qt is not installed")


def test_tab_shows_frame_trace_aperture_and_spectrum(qtbot, synthetic_night, tmp_path):
    from rosace_reduction.api import create_app
    from rosace_reduction.batch import options_from_config, reduce_paths
    from rosace_reduction.client import ReductionClient
    from rosace_reduction.gui import create_widget

    folder, truth = synthetic_night
    night = tmp_path / "raw" / "20261120"
    shutil.copytree(folder, night)
    cfg = config_from_dict({"data": {"root": str(tmp_path)}})
    report = reduce_paths([night], options_from_config(cfg))
    assert report.counts == {"reduced": 1}
    with BackgroundServer(create_app(cfg, token="tok")) as server:
        client = ReductionClient(server.url, token="tok")
        tab = create_widget(client)
        qtbot.addWidget(tab)
        tab.resize(1200, 900)
        tab.show()
        qtbot.waitUntil(lambda: tab.results_list.count() == 1, timeout=15000)
        tab.results_list.setCurrentRow(0)
        qtbot.waitUntil(lambda: tab.frame_image.image is not None and len(tab.spectrum_plot.listDataItems()) >= 1, timeout=15000)
        img = tab.frame_image.image
        # The band holds the star: its brightest rows are where the trace is drawn.
        x, y = tab.frame_curves["trace"].getData()
        row0 = client.frame(tab._ids[0])["row0"]
        for j in (20, img.shape[1] // 2, img.shape[1] - 20):  # the trace is inclined: check along it
            peak_row = row0 + int(np.argmax(img[:, j - 3 : j + 4].sum(axis=1)))
            assert abs(peak_row - y[j]) <= 1
        expected_row = truth.trace_row + truth.trace_slope * (x - 1500)
        assert np.max(np.abs(y - expected_row)) < 0.5
        # Aperture and sky windows either side of the trace, at the recipe's distances.
        lo, hi = (c.getData()[1] for c in tab.frame_curves["aperture"])
        assert np.allclose(hi - y, 12) and np.allclose(y - lo, 12)
        sky = [c.getData()[1] - y for c in tab.frame_curves["sky"]]
        assert [round(float(s[0])) for s in sky] == [-70, -30, 30, 70]
        assert len(tab.arc_plot.listDataItems()) == 1
        qtbot.wait(200)
        shot = tmp_path / "reduction_tab.png"
        assert tab.grab().save(str(shot))
        assert shot.stat().st_size > 10000
        tab.timer.stop()
        client.session.close()
