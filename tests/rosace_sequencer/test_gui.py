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
