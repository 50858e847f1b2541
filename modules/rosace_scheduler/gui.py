"""Desktop tab of the scheduler: tonight's timeline and altitude curves, the queue, rejected files."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QWidget,
)

from rosace_desktop.tab import ModuleTab

STATE_COLOURS = {
    "observable": "#2e7d32", "in_progress": "#1565c0", "completed": "#616161", "not_due": "#8d6e63",
    "not_tonight": "#c62828", "held": "#ef6c00", "wrong_instrument": "#6a1b9a", "expired": "#9e9e9e",
    "unsupported": "#9e9e9e", "done_tonight": "#616161",
}


def _unix(text: str | None) -> float | None:
    if not text:
        return None
    return _instant(text)


def _instant(text: str) -> float:
    """Unix time of an ISO instant the plan always gives (an observation's start, a curve's time)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _table(headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    t.horizontalHeader().setStretchLastSection(True)
    t.verticalHeader().setVisible(False)
    return t


class SchedulerTab(ModuleTab):
    """Tonight's plan (timeline, altitude curves), the queue with states and reasons, rejected files."""

    interval_ms = 10000

    def __init__(self, client, parent: QWidget | None = None):
        super().__init__(client, parent)
        bar = QHBoxLayout()
        self.night_label = QLabel("night: -")
        bar.addWidget(self.night_label, 1)
        submit = QPushButton("Submit Observing File...")
        submit.clicked.connect(self._submit)
        bar.addWidget(submit)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        bar.addWidget(refresh)
        self.body.addLayout(bar)

        split = QSplitter(Qt.Orientation.Vertical)
        plots = pg.GraphicsLayoutWidget()
        self.timeline = plots.addPlot(row=0, col=0, axisItems={"bottom": pg.DateAxisItem(utcOffset=0)})
        self.timeline.setLabel("left", "plan")
        self.timeline.hideAxis("left")
        self.timeline.setMaximumHeight(140)
        self.altitude = plots.addPlot(row=1, col=0, axisItems={"bottom": pg.DateAxisItem(utcOffset=0)})
        self.altitude.setLabel("left", "altitude", units="deg")
        self.altitude.setYRange(0, 90)
        self.altitude.addLegend(offset=(10, 10))
        self.altitude.setXLink(self.timeline)
        split.addWidget(plots)

        tabs = QTabWidget()
        self.queue_table = _table(["file", "target", "priority", "state", "reason"])
        self.rejected_table = _table(["file", "line", "column", "field", "problem"])
        tabs.addTab(self.queue_table, "Queue")
        tabs.addTab(self.rejected_table, "Rejected files")
        self.tabs = tabs
        split.addWidget(tabs)
        self.body.addWidget(split, 1)
        self.last_data: dict | None = None

    def fetch(self):
        return {"plan": self.client.plan(curves=True), "queue": self.client.queue(), "history": self.client.history(limit=200)}

    def update_view(self, data) -> None:
        self.last_data = data
        plan, queue = data["plan"], data["queue"]
        self.night_label.setText(
            f"night {plan['night']}  sunset {plan.get('sunset') or '-'}  sunrise {plan.get('sunrise') or '-'}  "
            f"{len(plan['observations'])} planned, value {plan['value']:.2f} priority x h  ({plan['spectrograph']} mounted)"
        )
        self._draw_plan(plan, data.get("history"))
        self._fill_queue(queue)
        self._fill_rejected(queue.get("rejected", []))

    def _draw_plan(self, plan: dict, history: list[dict] | None = None) -> None:
        self.timeline.clear()
        self.altitude.clear()
        obs = plan["observations"]
        # The whole night, not only what is left of it: from the night's start (an hour before
        # sunset) to its end, whatever the plan holds (an empty plan broke the axis).
        night_start = _unix(plan.get("night_start")) or _unix(plan.get("sunset")) or _unix(plan.get("start"))
        night_end = _unix(plan.get("end")) or _unix(plan.get("sunrise"))
        now = _unix(plan.get("generated"))
        self._draw_history(history or [], night_start, now)
        if now is not None:
            for plot in (self.timeline, self.altitude):
                plot.addItem(pg.InfiniteLine(now, angle=90, pen=pg.mkPen("#e53935", width=2), label="now",
                                             labelOpts={"position": 0.95, "color": "#e53935"}))
        for k, o in enumerate(obs):
            s, e = _instant(o["start"]), _instant(o["end"])
            colour = pg.intColor(k, hues=max(len(obs), 1))
            self.timeline.addItem(pg.BarGraphItem(x0=[s], y0=[0], width=[e - s], height=[1], brush=colour))
            part = o.get("part")  # a part of a split file: "bet Lyr (part 1 of ~2)"
            label = pg.TextItem(o["target"] + (f" ({part['text'].split(',')[0]})" if part else ""), anchor=(0, 1), angle=90, color="w")
            label.setPos(s, 1.05)
            self.timeline.addItem(label)
        curves = plan.get("curves") or {}
        times = [_instant(t) for t in curves.get("times", [])]
        if times:
            self.altitude.plot(times, curves.get("sun_altitude", []), pen=pg.mkPen("#ffb300", style=Qt.PenStyle.DashLine), name="sun")
            for k, o in enumerate(obs):
                alt = curves.get("altitude", {}).get(o["file_id"])
                if alt:
                    colour = pg.intColor(k, hues=max(len(obs), 1))
                    self.altitude.plot(times, alt, pen=pg.mkPen(colour, width=1), name=o["target"])
                    # the planned interval, thick, so the eye links the curve to its bar
                    s, e = _instant(o["start"]), _instant(o["end"])
                    seg = [(t, a) for t, a in zip(times, alt) if s - 300 <= t <= e + 300]
                    if len(seg) >= 2:
                        self.altitude.plot([p[0] for p in seg], [p[1] for p in seg], pen=pg.mkPen(colour, width=5))
        self.timeline.setYRange(0, 2.5)
        if night_start is not None and night_end is not None and night_end > night_start:
            self.timeline.setXRange(night_start, night_end, padding=0.01)
        if not obs and night_end is not None:
            empty = pg.TextItem("nothing planned for the rest of the night", anchor=(0.5, 0.5), color="#888")
            empty.setPos(((now or night_start or night_end) + night_end) / 2, 1.2)
            self.timeline.addItem(empty)

    def _draw_history(self, history: list[dict], night_start: float | None, now: float | None) -> None:
        """Tonight's past observations: grey when completed, red when failed, amber when interrupted."""
        colours = {"completed": (120, 120, 120, 200), "failed": (198, 40, 40, 220), "interrupted": (255, 179, 0, 220), "pending": (90, 90, 160, 200)}
        for h in history:
            s = _unix(h.get("started")) or _unix(h.get("dispatched"))
            e = _unix(h.get("ended")) or now
            if s is None or e is None or e <= s or (night_start is not None and e < night_start):
                continue
            outcome = h.get("outcome") or "pending"
            self.timeline.addItem(pg.BarGraphItem(x0=[s], y0=[0], width=[e - s], height=[1], brush=colours.get(outcome, colours["pending"]),
                                                  pen=pg.mkPen("#fff", width=0.5)))
            label = pg.TextItem(f"{h.get('target') or h.get('file_id')} ({outcome})", anchor=(0, 1), angle=90, color="#bbb")
            label.setPos(s, 1.05)
            self.timeline.addItem(label)

    def _fill_queue(self, queue: dict) -> None:
        files = queue.get("files", [])
        t = self.queue_table
        t.setRowCount(len(files))
        for row, f in enumerate(files):
            split = f.get("split") or {}
            reason = f["reason"] + (f" [{split['text']}]" if split.get("frames_done") else "")  # a split file's visit under way
            values = [f["id"], f["target"], str(f["priority"]), f["state"].replace("_", " "), reason]
            for col, v in enumerate(values):
                item = QTableWidgetItem(v)
                if col == 3:
                    item.setForeground(pg.mkColor(STATE_COLOURS.get(f["state"], "#000000")))
                t.setItem(row, col, item)
        t.resizeColumnsToContents()

    def _fill_rejected(self, rejected: list[dict]) -> None:
        rows = [(r["filename"], e) for r in rejected for e in r["errors"]]
        t = self.rejected_table
        t.setRowCount(len(rows))
        for row, (name, e) in enumerate(rows):
            for col, v in enumerate([name, e.get("line"), e.get("column"), e.get("path"), e.get("message")]):
                t.setItem(row, col, QTableWidgetItem("" if v is None else str(v)))
        self.tabs.setTabText(1, f"Rejected files ({len(rejected)})")

    def _submit(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Submit an Observing File", "", "Observing Files (*.yaml *.yml *.json)")
        if name:
            self.run_async(lambda: self.client.submit_path(Path(name)), what=f"submit {Path(name).name}")


def create_widget(client) -> QWidget:
    """Return the scheduler's desktop tab for a SchedulerClient."""
    return SchedulerTab(client)
