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
