"""The dome tab against a real dome server (in-memory devices)."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from rosace_core.rest import BackgroundServer  # noqa: E402
from rosace_dome.api import create_app  # noqa: E402
from rosace_dome.client import DomeClient  # noqa: E402
from rosace_dome.gui import create_widget  # noqa: E402
from rosace_dome.settings import DomeSettings  # noqa: E402
from rosace_dome.shelter import Shelter  # noqa: E402


def test_tab_shows_state_verdict_sensors_and_opens_after_confirmation(qtbot, fast_clock, fakes, tmp_path, monkeypatch):
    shelter = Shelter(fakes, DomeSettings(poll_period=1.0, min_poll_wall=0.01), state_file=tmp_path / "dome.json")
    app = create_app(None, token="t", shelter=shelter)
    with BackgroundServer(app) as server:
        client = DomeClient(server.url, token="t")
        widget = create_widget(client)
        qtbot.addWidget(widget)
        qtbot.waitUntil(lambda: widget.status is not None and widget.status["verdict"]["checked"] is not None, timeout=10000)
        qtbot.waitUntil(lambda: widget.state_label.text() == "ROOF CLOSED" and widget.safe_label.text() == "SAFE", timeout=10000)
        assert widget.sensors.rowCount() == 6
        assert widget.events.count() > 0

        # Refused confirmation: nothing moves.
        monkeypatch.setattr(widget, "confirm", lambda q: False)
        widget.open_roof()
        qtbot.wait(200)
        assert not [w for _, w in fakes.dome.calls if w == "open_shutter"]
        monkeypatch.setattr(widget, "confirm", lambda q: True)
        widget.open_roof()
        qtbot.waitUntil(lambda: widget.state_label.text() == "ROOF OPEN", timeout=10000)

        fakes.conditions.values["rain_rate"] = 4.0
        qtbot.waitUntil(lambda: widget.safe_label.text() == "UNSAFE" and "rain_rate" in widget.reasons_label.text(), timeout=10000)
        qtbot.waitUntil(lambda: widget.state_label.text() == "ROOF CLOSED", timeout=10000)
        assert not widget.open_button.isEnabled()
        rain = [widget.sensors.item(r, 4).text() for r in range(widget.sensors.rowCount()) if widget.sensors.item(r, 0).text() == "rain_rate"]
        assert rain and "above limit" in rain[0]
        widget.timer.stop()
        client.session.close()
    shelter.stop()
