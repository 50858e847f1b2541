"""Desktop tab of the dome module: the shelter and the safety verdict, large and unmistakable."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QListWidget,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from rosace_desktop.tab import ModuleTab

_STATE_COLOURS = {"open": "#1b7f3b", "closed": "#37474f", "opening": "#b26a00", "closing": "#b26a00", "error": "#b00020", "unknown": "#6a1b9a"}


def _big(text: str, size: int = 26) -> QLabel:
    label = QLabel(text)
    font = QFont()
    font.setPointSize(size)
    font.setBold(True)
    label.setFont(font)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setMinimumHeight(60)
    return label


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


class DomeTab(ModuleTab):
    """Shelter state, verdict with reasons, sensors, leases, alarms, event log and the buttons."""

    interval_ms = 1000

    def __init__(self, client, parent: QWidget | None = None):
        super().__init__(client, parent)
        self._last_seq = 0
        self.status: dict | None = None

        top = QHBoxLayout()
        self.state_label = _big("SHELTER ?")
        self.safe_label = _big("SAFETY ?")
        top.addWidget(self.state_label, 1)
        top.addWidget(self.safe_label, 1)
        self.body.addLayout(top)

        self.reasons_label = QLabel("")
        self.reasons_label.setWordWrap(True)
        self.reasons_label.setObjectName("reasons")
        self.body.addWidget(self.reasons_label)

        info = QGridLayout()
        self.mount_label = QLabel("mount: ?")
        self.reopen_label = QLabel("")
        self.maint_label = QLabel("")
        self.lease_label = QLabel("leases: none")
        info.addWidget(self.mount_label, 0, 0)
        info.addWidget(self.lease_label, 0, 1)
        info.addWidget(self.maint_label, 1, 0)
        info.addWidget(self.reopen_label, 1, 1)
        self.body.addLayout(info)

        buttons = QHBoxLayout()
        self.open_button = QPushButton("Open")
        self.close_button = QPushButton("Close")
        self.park_button = QPushButton("Park mount")
        self.maint_button = QPushButton("Maintenance lock")
        self.maint_button.setCheckable(True)
        for b in (self.open_button, self.close_button, self.park_button, self.maint_button):
            b.setMinimumHeight(36)
            buttons.addWidget(b)
        self.body.addLayout(buttons)
        self.open_button.clicked.connect(self.open_roof)
        self.close_button.clicked.connect(self.close_roof)
        self.park_button.clicked.connect(self.park_mount)
        self.maint_button.clicked.connect(self.toggle_maintenance)

        split = QSplitter(Qt.Orientation.Vertical)
        sensors_box = QGroupBox("Sensors")
        lay = QVBoxLayout(sensors_box)
        self.sensors = QTableWidget(0, 5)
        self.sensors.setHorizontalHeaderLabels(["sensor", "value", "limit", "age (s)", "state"])
        self.sensors.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.sensors.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.sensors.verticalHeader().setVisible(False)
        lay.addWidget(self.sensors)
        split.addWidget(sensors_box)

        alarms_box = QGroupBox("Alarms")
        lay = QVBoxLayout(alarms_box)
        self.alarms = QListWidget()
        lay.addWidget(self.alarms)
        split.addWidget(alarms_box)

        events_box = QGroupBox("Event log")
        lay = QVBoxLayout(events_box)
        self.events = QListWidget()
        lay.addWidget(self.events)
        split.addWidget(events_box)
        self.body.addWidget(split, 1)

    # ------------------------------------------------------------------ data

    def fetch(self):
        status = self.client.status()
        events = self.client.events(since=self._last_seq, limit=500)
        return {"status": status, "events": events}

    def update_view(self, data) -> None:
        st = data["status"]
        self.status = st
        state = st["shelter"]["state"]
        colour = _STATE_COLOURS.get(state, "#6a1b9a")
        self.state_label.setText(f"{st['shelter']['type'].upper().replace('ROLLOFF', 'ROOF')} {state.upper()}")
        self.state_label.setStyleSheet(f"color: white; background: {colour}; border-radius: 6px;")
        safe = st["verdict"]["safe"]
        self.safe_label.setText("SAFE" if safe else "UNSAFE")
        self.safe_label.setStyleSheet(f"color: white; background: {'#1b7f3b' if safe else '#b00020'}; border-radius: 6px;")
        reasons = st["verdict"]["reasons"]
        self.reasons_label.setText("All conditions within limits." if safe else "Why: " + "; ".join(reasons))

        mount = st["mount"]
        park = mount.get("at_park")
        self.mount_label.setText("mount: " + ("parked" if park else "NOT parked" if park is False else f"unknown ({mount.get('error') or '-'})"))
        leases = st["leases"]
        self.lease_label.setText("leases: " + (", ".join(f"{lease['holder']} ({lease.get('remaining', 0):.0f} s)" for lease in leases) if leases else "none"))
        self.maint_label.setText(f"MAINTENANCE LOCK: {st.get('maintenance_reason') or 'on'}" if st["maintenance"] else "maintenance lock: off")
        self.maint_button.setChecked(bool(st["maintenance"]))
        self.reopen_label.setText(f"may re-open at {st['reopen_at'][11:19]}" if st.get("reopen_at") else "")
        self.open_button.setEnabled(bool(st.get("can_open")))

        self.sensors.setRowCount(len(st["sensors"]))
        for row, s in enumerate(st["sensors"]):
            lim = s.get("limit") or {}
            limit = " ".join(p for p in (f"min {lim['min']:g}" if lim.get("min") is not None else "", f"max {lim['max']:g}" if lim.get("max") is not None else "") if p)
            cells = [s["name"], f"{_fmt(s['value'])} {s.get('unit') or ''}".strip(), limit or "-", _fmt(s.get("age"), 0), "ok" if s["ok"] else (s.get("reason") or "unsafe")]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if not s["ok"]:
                    item.setForeground(Qt.GlobalColor.red)
                self.sensors.setItem(row, col, item)

        self.alarms.clear()
        for a in st["alarms"]:
            self.alarms.addItem(f"{'ACTIVE' if a['active'] else 'cleared'}  {a['raised'][11:19]}  {a['message']}")

        for e in data["events"]:
            self.events.insertItem(0, f"{e['time'][11:19]}  {e['kind']:<11} {e['message']}")
            self._last_seq = max(self._last_seq, e["seq"])
        while self.events.count() > 1000:
            self.events.takeItem(self.events.count() - 1)

    # ------------------------------------------------------------------ actions

    def open_roof(self) -> None:
        if not self.confirm("Open the roof now? Make sure nobody is near the moving parts."):
            return
        self.run_async(lambda: self.client.open(source="desktop"), what="open")

    def close_roof(self) -> None:
        self.run_async(lambda: self.client.close(reason="closed from the desktop", source="desktop"), what="close")

    def park_mount(self) -> None:
        self.run_async(lambda: self.client.park(source="desktop"), what="park")

    def toggle_maintenance(self) -> None:
        locked = self.maint_button.isChecked()
        reason = ""
        if locked:
            reason, ok = QInputDialog.getText(self, "Maintenance lock", "Reason (shown to everyone):")
            if not ok:
                self.maint_button.setChecked(False)
                return
        self.run_async(lambda: self.client.set_maintenance(locked, reason), what="maintenance lock")


def create_widget(client) -> QWidget:
    """Build the dome tab for a DomeClient."""
    return DomeTab(client)
