"""The desktop tab against a real sequencer server: status, controls state, last frame and profile."""

from datetime import datetime, timezone

import numpy as np

from rosace_core.config import config_from_dict
from rosace_core.rest import BackgroundServer
from rosace_sequencer.api import create_app
from rosace_sequencer.client import SequencerClient
from rosace_sequencer.frames import FrameInfo, build_header, load_setup, write_frame


def test_tab_shows_status_log_and_last_frame(qtbot, tmp_path):
    cfg = config_from_dict({"data": {"root": str(tmp_path)}})
    app = create_app(cfg, token="tok")
    seq = app.extensions["rosace_sequencer"]
    image = np.full((200, 300), 1000, dtype=np.uint16)
    image[95:105] += (np.linspace(0, 5000, 300)).astype(np.uint16)  # a trace whose flux grows along the columns
    info = FrameInfo(imagetyp="LIGHT", exptime=60, date_obs=datetime(2026, 1, 1, 20, tzinfo=timezone.utc), obj="gam Cas")
    path = write_frame(tmp_path / "f" / "o_05_LIGHT_001.fits", image, build_header(info, cfg, load_setup("alpy600")))
    seq.last_frame = str(path)
    seq.logbuf.emit(__import__("logging").LogRecord("rosace_sequencer", 20, __file__, 1, "hello from the sequencer", None, None))
    with BackgroundServer(app) as server:
        from rosace_sequencer.gui import create_widget

        widget = create_widget(SequencerClient(server.url, token="tok"))
        qtbot.addWidget(widget)
        qtbot.waitUntil(lambda: widget._shown_frame == str(path), timeout=10000)
        assert "idle" in widget.mode_label.text()
        assert "hello from the sequencer" in widget.log_view.toPlainText()
        x, y = widget.profile_curve.getData()
        assert len(y) == 300 and y[-1] > y[0] + 3500  # the profile follows the trace along the dispersion
        assert widget.buttons["night"].isEnabled() and not widget.buttons["abort"].isEnabled()
        assert "o_05_LIGHT_001.fits" in widget.frame_label.text()


def test_tab_shows_slit_jaw_guide_graph_temperatures_and_mount(qtbot, tmp_path):
    """Against the simulated observatory: device reads are real; the slit-jaw frame and offsets
    are handed to the telemetry as the guide loop does."""
    from rosace_sim import devices_config
    from rosace_sim.testing import SimObservatory

    with SimObservatory({"clock": {"start": "2025-01-15T20:00:00Z", "rate": 20}}) as sim:
        cfg = config_from_dict({"data": {"root": str(tmp_path)}, "devices": devices_config(sim.url, retries=1)})
        app = create_app(cfg, token="tok")
        seq = app.extensions["rosace_sequencer"]
        jaw = np.full((120, 160), 300.0)
        yy, xx = np.mgrid[:120, :160]
        jaw += 5000 * np.exp(-((xx - 82.0) ** 2 + (yy - 60.0) ** 2) / 8.0)
        seq.telemetry.jaw_frame(jaw, slit=(80.0, 60.0), slit_width_px=4.0, star=(82.0, 60.0))
        for e, n in ((0.8, -0.3), (None, None), (0.4, 0.1)):
            seq.telemetry.guide_offset(e, n)
        with BackgroundServer(app) as server:
            from rosace_sequencer.gui import create_widget

            widget = create_widget(SequencerClient(server.url, token="tok"))
            qtbot.addWidget(widget)
            qtbot.waitUntil(lambda: widget.jaw_item.image is not None, timeout=20000)
            assert widget.jaw_item.image.shape == (120, 160)
            xs, _ = widget.slit_lines[0].getData()
            assert list(xs) == [78.0, 78.0]
            assert list(widget.star_marker.getData()[0]) == [82.0]
            _, east = widget.guide_curves["east"].getData()
            assert east[0] == 0.8 and np.isnan(east[1])
            text = widget.devices_label.text()
            assert "spectrograph camera:" in text and "°C" in text and "mount: RA" in text and "Dec" in text
            widget.timer.stop()
        seq.close()


def test_tab_shows_the_hand_offs_waiting_for_a_reduction_that_is_down(qtbot, tmp_path):
    from rosace_demo.processes import free_port

    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the reduction is down
    cfg = config_from_dict({"data": {"root": str(tmp_path)}, "modules": {"reduction": {"url": down, "token": "tok"}},
                            "sequencer": {"handoff_backoff": 30.0}})
    app = create_app(cfg, token="tok")
    seq = app.extensions["rosace_sequencer"]
    for i in range(3):
        frame = tmp_path / f"obs{i}_05_LIGHT_001.fits"
        frame.write_bytes(b"frame %d" % i)
        assert seq._reduce(f"obs{i}", [str(frame)]) is not None
    assert seq.outbox.counts()["waiting"] == 3 and "unreachable" in seq.outbox.counts()["last_error"]
    with BackgroundServer(app) as server:
        from rosace_sequencer.gui import create_widget

        widget = create_widget(SequencerClient(server.url, token="tok"))
        qtbot.addWidget(widget)
        qtbot.waitUntil(lambda: widget.handoff_label.text().startswith("3 waiting for reduction"), timeout=10000)
        assert seq.status()["handoffs"]["pending"] == 3
