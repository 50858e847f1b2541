"""The desktop tab shows the plan, the queue with states and the rejected files."""

import pytest

from rosace_core.rest import BackgroundServer
from rosace_scheduler.api import create_app
from rosace_scheduler.client import SchedulerClient
from rosace_scheduler.scheduler import Scheduler

pytest.importorskip("pytestqt")


def test_tab_shows_queue_plan_and_rejections(qtbot, config, queue_folder):
    shipped = len(list(queue_folder.iterdir()))
    (queue_folder / "broken.yaml").write_text("rosace: 1\nid: x\npriority: 99\n", encoding="utf-8")
    sched = Scheduler(config, database=":memory:", queue_folder=queue_folder)
    app = create_app(config, token="t", scheduler_instance=sched, watch=False)
    from rosace_scheduler.gui import create_widget

    with BackgroundServer(app) as srv:
        widget = create_widget(SchedulerClient(srv.url, token="t"))
        qtbot.addWidget(widget)
        qtbot.waitUntil(lambda: widget.last_data is not None, timeout=20000)
        assert widget.queue_table.rowCount() == shipped
        states = {widget.queue_table.item(r, 0).text(): widget.queue_table.item(r, 3).text() for r in range(shipped)}
        assert states["sb-betlyr-lhires"] == "wrong instrument"
        assert widget.rejected_table.rowCount() >= 3  # missing observer, target, ... and the bad priority
        assert "Rejected files (1)" == widget.tabs.tabText(1)
        assert widget.night_label.text().startswith("night ")
        widget.timer.stop()


def test_plan_view_shows_the_whole_night_now_and_past_blocks(qtbot, config, queue_folder):
    """The timeline spans the night (not only what is left), marks now, and draws tonight's past
    observations (failed in red); with nothing planned the axis still spans the night."""
    import pyqtgraph as pg

    from rosace_core.clock import get_clock
    from rosace_scheduler.gui import SchedulerTab, _unix

    sched = Scheduler(config, database=":memory:", queue_folder=queue_folder)
    app = create_app(config, token="t", scheduler_instance=sched, watch=False)
    with BackgroundServer(app) as srv:
        client = SchedulerClient(srv.url, token="t")
        widget = SchedulerTab(client)
        widget.timer.stop()
        qtbot.addWidget(widget)
        qtbot.waitUntil(lambda: widget.last_data is not None, timeout=20000)
        plan = widget.last_data["plan"]
        t_now = get_clock().now().timestamp()
        failed = {"observation_id": "o-1", "file_id": "x", "target": "gam Cas", "outcome": "failed",
                  "started": plan["night_start"], "ended": plan["sunset"]}
        widget._draw_plan({**plan, "observations": []}, [failed])
        (x0, x1), _ = widget.timeline.getViewBox().viewRange()
        night_start, night_end = _unix(plan["night_start"]), _unix(plan["end"])
        assert x0 <= night_start + 600 and x1 >= night_end - 600
        lines = [i for i in widget.timeline.items if isinstance(i, pg.InfiniteLine)]
        assert len(lines) == 1 and abs(lines[0].value() - t_now) < 3600
        bars = [i for i in widget.timeline.items if isinstance(i, pg.BarGraphItem)]
        assert len(bars) == 1 and bars[0].opts["brush"] == (198, 40, 40, 220)
        assert any(isinstance(i, pg.TextItem) and "nothing planned" in i.toPlainText() for i in widget.timeline.items)


def test_parts_of_a_split_file_show_in_the_timeline_and_the_queue(qtbot, config, tmp_path):
    import pyqtgraph as pg

    from rosace_scheduler.gui import SchedulerTab
    from tests.rosace_scheduler.test_split import _split_night

    sched = Scheduler(config, database=":memory:", queue_folder=tmp_path / "none")
    _split_night(sched)
    plan = sched.plan("2026-11-20", start="2026-11-20T21:00:00Z")
    first = sched.next("2026-11-20T21:00:00Z")["observation"]
    sched.record_outcome(first["observation_id"], "long-block", "completed", started=first["start"], ended=first["end"])
    queue = sched.queue(first["end"])
    app = create_app(config, token="t", scheduler_instance=sched, watch=False)
    with BackgroundServer(app) as srv:
        widget = SchedulerTab(SchedulerClient(srv.url, token="t"))
        widget.timer.stop()
        qtbot.addWidget(widget)
        widget._draw_plan(plan, [])
        labels = [i.toPlainText() for i in widget.timeline.items if isinstance(i, pg.TextItem)]
        assert "long-block (part 1 of ~2)" in labels and "long-block (part 2 of ~2)" in labels
        widget._fill_queue(queue)
        rows = {widget.queue_table.item(r, 0).text(): widget.queue_table.item(r, 4).text() for r in range(widget.queue_table.rowCount())}
        assert f"1 part(s) done, {first['science_frames']}/70 frames" in rows["long-block"]
