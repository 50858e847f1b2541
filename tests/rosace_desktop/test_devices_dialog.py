"""The desktop's device check (Connections > Check Alpaca devices) against the simulator over HTTP, Qt offscreen."""

from __future__ import annotations

import pytest

from rosace_core.config import config_from_dict
from rosace_sim import devices_config
from rosace_sim.testing import SimObservatory

pytest.importorskip("pytestqt")

BOX = [
    {"name": "Mount power", "value": 1},
    {"name": "NeAr", "lamp": "NeAr"},
    {"name": "tungsten", "lamp": "tungsten"},
    {"name": "Dimmer", "max": 255, "value": 40},
]


def test_the_dialog_fills_its_table_in_the_background_and_says_what_is_missing(qtbot):
    from rosace_desktop.dialogs import DevicesDialog

    scenario = {"clock": {"start": "2025-01-15T21:00:00Z", "rate": 1.0}, "switch": {"channels": BOX}}
    with SimObservatory(scenario) as sim:
        devices = devices_config(sim.url, retries=1)
        devices["guide_camera"]["device_number"] = 5  # no such camera on the server
        dialog = DevicesDialog(config_from_dict({"devices": devices}))
        qtbot.addWidget(dialog)
        assert not dialog.again.isEnabled()  # the check runs on the thread pool
        qtbot.waitUntil(lambda: dialog.reports is not None, timeout=60000)
        rows = {dialog.table.item(r, 0).text().split("\n")[1].split(":")[0]: r for r in range(dialog.table.rowCount())}
        assert len(rows) == 7
        switch = rows["switch"]
        assert dialog.table.item(switch, 1).text() == "ok"
        assert "never touched: 0 'Mount power', 3 'Dimmer'" in dialog.table.item(switch, 3).text()
        guide = rows["guide_camera"]
        assert dialog.table.item(guide, 1).text() == "missing"
        assert "no camera number 5" in dialog.table.item(guide, 4).text()
        assert "not usable: guide camera" in dialog.summary.text()
        # Check again, after fixing the configuration: every device usable.
        devices["guide_camera"]["device_number"] = 1
        dialog.config = config_from_dict({"devices": devices})
        dialog.reports = None
        dialog.again.click()
        qtbot.waitUntil(lambda: dialog.reports is not None, timeout=60000)
        assert "every device is usable" in dialog.summary.text()
        assert all(c is None for c in sim.observatory.switch._changed)
