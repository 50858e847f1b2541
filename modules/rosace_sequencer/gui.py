"""The sequencer's desktop tab: current observation and step, progress, last frame, profile, controls, log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)
from PySide6.QtCore import Qt

from rosace_core.outbox import waiting_text
from rosace_desktop.tab import ModuleTab


class SequencerTab(ModuleTab):
    """Live view of the sequencer, through its REST client only."""

    interval_ms = 1000

    def __init__(self, client, parent=None):
        self._log_seq = 0
        self._shown_frame: str | None = None
        super().__init__(client, parent)
        grid = QGridLayout()
        self.mode_label = QLabel("-")
        self.obs_label = QLabel("-")
        self.step_label = QLabel("-")
        self.time_left = QLabel("-")
        self.handoff_label = QLabel("-")  # the outbox of hand-offs to the reduction
        for row, (name, widget) in enumerate((("Mode", self.mode_label), ("Observation", self.obs_label),
                                              ("Step", self.step_label), ("Time left", self.time_left),
                                              ("Hand-offs", self.handoff_label))):
            grid.addWidget(QLabel(name + ":"), row, 0)
            grid.addWidget(widget, row, 1)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        grid.addWidget(self.progress, 5, 0, 1, 2)
        self.body.addLayout(grid)

        buttons = QHBoxLayout()
        self.buttons = {}
        for key, text, fn in (("night", "Start night", self._start_night), ("stop", "Stop night", lambda: self._act("stop_night")),
                              ("run", "Run file...", self._run_file), ("pause", "Pause", lambda: self._act("pause")),
                              ("resume", "Resume", lambda: self._act("resume")), ("abort", "Abort", self._abort)):
            b = QPushButton(text)
            b.clicked.connect(fn)
            buttons.addWidget(b)
            self.buttons[key] = b
        self.body.addLayout(buttons)

        split = QSplitter(Qt.Orientation.Vertical)
        self.frame_label = QLabel("last frame: none")
        self.image_view = pg.PlotWidget()
        self.image_view.setAspectLocked(False)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.image_view.addItem(self.image_item)
        self.image_view.setLabel("bottom", "column (dispersion)")
        self.image_view.setLabel("left", "row (slit)")
        self.profile_view = pg.PlotWidget()
        self.profile_view.setLabel("bottom", "column (dispersion)")
        self.profile_view.setLabel("left", "ADU")
        self.profile_curve = self.profile_view.plot([], [])
        # Pixel and ADU axes: plain numbers, never "x0.001" or "x1e3" prefixes.
        for view in (self.image_view, self.profile_view):
            for side in ("bottom", "left"):
                view.getPlotItem().getAxis(side).enableAutoSIPrefix(False)
        self.image_view.setRange(xRange=(0, 3000), yRange=(0, 2000), padding=0)  # until the first frame
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(2000)
        top = QWidget()
        tl = QHBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(self.image_view, 3)
        tl.addWidget(self.profile_view, 2)
        split.addWidget(top)
        split.addWidget(self._build_live())
        split.addWidget(self.log_view)
        self.body.addWidget(self.frame_label)
        self.body.addWidget(split, 1)

    def _build_live(self) -> QWidget:
        """Slit-jaw view (slit and star drawn), guide-error graph, temperatures and mount position."""
        live = QWidget()
        ll = QHBoxLayout(live)
        ll.setContentsMargins(0, 0, 0, 0)
        self.jaw_view = pg.PlotWidget(title="slit-jaw camera")
        self.jaw_view.setAspectLocked(True)
        self.jaw_item = pg.ImageItem(axisOrder="row-major")
        self.jaw_view.addItem(self.jaw_item)
        self.slit_lines = [self.jaw_view.plot([], [], pen=pg.mkPen("#4fc3f7", width=1)) for _ in range(2)]
        self.star_marker = pg.ScatterPlotItem(size=14, pen=pg.mkPen("#ffeb3b", width=2), brush=None, symbol="o")
        self.jaw_view.addItem(self.star_marker)
        self.guide_view = pg.PlotWidget(title="guiding: star - slit (arcsec)")
        self.guide_view.addLegend(offset=(5, 5))
        self.guide_view.setLabel("bottom", "guide frame")
        self.guide_curves = {"east": self.guide_view.plot([], [], pen=pg.mkPen("#ef5350"), name="RA (east)"),
                             "north": self.guide_view.plot([], [], pen=pg.mkPen("#42a5f5"), name="Dec (north)")}
        self.guide_view.addItem(pg.InfiniteLine(0, angle=0, pen=pg.mkPen("#888", style=Qt.PenStyle.DashLine)))
        for view in (self.jaw_view, self.guide_view):
            for side in ("bottom", "left"):
                view.getPlotItem().getAxis(side).enableAutoSIPrefix(False)
        self.devices_label = QLabel("cameras and mount: -")
        self.devices_label.setWordWrap(True)
        self.devices_label.setObjectName("devicesLabel")
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.guide_view, 1)
        rl.addWidget(self.devices_label)
        ll.addWidget(self.jaw_view, 2)
        ll.addWidget(right, 3)
        self._telemetry_tick = 0
        return live

    # ------------------------------------------------------------------ data

    def fetch(self):
        status = self.client.status()
        # Telemetry reads the devices: every third refresh is often enough for temperatures
        # and the mount, and the slit-jaw frame comes at the guide cadence anyway.
        telemetry = None
        self._telemetry_tick += 1
        if self._telemetry_tick % 3 == 1:
            try:
                telemetry = self.client.telemetry()
            except Exception:  # an older sequencer without /telemetry, or a device hanging
                telemetry = None
        lines = self.client.log(since=self._log_seq)
        preview = None
        if status.get("last_frame") and status["last_frame"] != self._shown_frame:
            try:
                preview = self.client.last_frame(max_size=300)
            except Exception:  # the frame may be moved or still being written: next refresh
                preview = None
        return {"status": status, "log": lines, "preview": preview, "telemetry": telemetry}

    def update_view(self, data):
        st = data["status"]
        state = st.get("state", "?")
        self.mode_label.setText(f"{st.get('mode', '?')} / {state}" + (f" - {st['message']}" if st.get("message") else ""))
        obs = st.get("observation") or {}
        if obs:
            self.obs_label.setText(f"{obs.get('target', '?')} ({obs.get('file_id', '?')}) - {obs.get('observation_id', '')}")
            steps = obs.get("steps") or []
            idx = obs.get("step_index") or 0
            frame = f", {obs['frame']}" if obs.get("frame") else ""
            self.step_label.setText(f"{obs.get('step', '-')} ({idx}/{len(steps)}){frame}")
            left = obs.get("time_left")
            self.time_left.setText(f"{left / 60:.1f} min" if isinstance(left, (int, float)) else "-")
            self.progress.setValue(int(1000 * float(obs.get("fraction") or 0.0)))
        else:
            self.obs_label.setText("-")
            self.step_label.setText("-")
            self.time_left.setText("-")
            self.progress.setValue(0)
        self.handoff_label.setText(waiting_text(st.get("handoffs"), "reduction") or "all handed to the reduction")
        busy = st.get("mode") not in (None, "idle")
        self.buttons["night"].setEnabled(not busy)
        self.buttons["run"].setEnabled(not busy)
        self.buttons["stop"].setEnabled(st.get("mode") == "night")
        self.buttons["abort"].setEnabled(busy)
        self.buttons["pause"].setEnabled(busy and not st.get("paused"))
        self.buttons["resume"].setEnabled(bool(st.get("paused")))
        for line in data["log"]:
            self._log_seq = max(self._log_seq, int(line["seq"]))
            self.log_view.appendPlainText(f"{line['time'][11:19]} {line['level'][0]} {line['message']}")
        preview = data.get("preview")
        if preview:
            self.show_preview(preview)
        if data.get("telemetry"):
            self.show_telemetry(data["telemetry"])

    def show_telemetry(self, tele: dict) -> None:
        """Slit-jaw image with the slit and the star, the guide offsets, temperatures and mount position."""
        jaw = tele.get("jaw")
        if jaw:
            img = np.asarray(jaw["image"], dtype=float)
            f = jaw.get("binning", 1)
            lo, hi = np.percentile(img, [1, 99.7]) if img.size else (0, 1)
            self.jaw_item.setImage(img, levels=(lo, hi if hi > lo else lo + 1))
            self.jaw_item.setRect(0, 0, img.shape[1] * f, img.shape[0] * f)
            sx, sy = jaw["slit"]
            half, height = jaw["slit_width_px"] / 2, img.shape[0] * f
            for line, x in zip(self.slit_lines, (sx - half, sx + half)):
                line.setData([x, x], [0, height])
            star = jaw.get("star")
            self.star_marker.setData([star[0]] if star else [], [star[1]] if star else [])
        guide = tele.get("guide") or []
        if guide:
            n = np.arange(len(guide))
            for key, curve in self.guide_curves.items():
                curve.setData(n, np.array([np.nan if g[key] is None else g[key] for g in guide], dtype=float), connect="finite")
        self.devices_label.setText(devices_text(tele.get("devices") or {}))

    def show_preview(self, preview: dict) -> None:
        """Show a frame preview (``GET /last_frame``): the 2D image and its profile."""
        self._shown_frame = preview["path"]
        img = np.asarray(preview["image"], dtype=float)
        f = preview.get("binning", 1)
        lo, hi = np.percentile(img, [1, 99.5]) if img.size else (0, 1)
        self.image_item.setImage(img, levels=(lo, hi if hi > lo else lo + 1))
        self.image_item.setRect(0, 0, img.shape[1] * f, img.shape[0] * f)
        profile = np.asarray(preview["profile"], dtype=float)
        self.profile_curve.setData(np.arange(profile.size), profile)
        self.frame_label.setText(f"last frame: {preview['name']} - {preview.get('imagetyp')} {preview.get('object')} "
                                 f"{preview.get('exptime')} s, {preview.get('date_obs')}")

    # ------------------------------------------------------------------ actions

    def _act(self, method: str) -> None:
        self.run_async(getattr(self.client, method), what=method.replace("_", " "))

    def _start_night(self) -> None:
        if self.confirm("Start the robotic night? The telescope will move and the roof may open."):
            self.run_async(self.client.start_night, what="start night")

    def _abort(self) -> None:
        if self.confirm("Abort the current exposure and observation?"):
            self._act("abort")

    def _run_file(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Run an Observing File", "", "Observing Files (*.yaml *.yml *.json)")
        if name:
            text = Path(name).read_text(encoding="utf-8")
            self.run_async(lambda: self.client.run(text), what=f"run {Path(name).name}")


def devices_text(devices: dict) -> str:
    """One line per device: camera temperatures and cooler, mount position and state."""
    parts = []
    for name, title in (("camera", "spectrograph camera"), ("guider", "guide camera")):
        cam = devices.get(name)
        if cam:
            if cam.get("temperature") is None:
                parts.append(f"{title}: temperature unknown ({cam.get('error') or 'not offered'})")
            else:
                cooler = "cooler on" if cam.get("cooler_on") else "cooler off" if cam.get("cooler_on") is False else "cooler ?"
                parts.append(f"{title}: {cam['temperature']:.1f} °C, {cooler}")
    mount = devices.get("mount")
    if mount:
        if mount.get("ra_hours") is None:
            parts.append(f"mount: position unknown ({mount.get('error')})")
        else:
            from astropy.coordinates import Angle

            ra = Angle(mount["ra_hours"], unit="hourangle").to_string(sep=":", precision=0, pad=True)
            dec = Angle(mount.get("dec_deg") or 0.0, unit="deg").to_string(sep=":", precision=0, alwayssign=True, pad=True)
            state = "parked" if mount.get("parked") else "slewing" if mount.get("slewing") else "tracking" if mount.get("tracking") else "not tracking"
            alt, az = mount.get("altitude_deg"), mount.get("azimuth_deg")
            where = f", alt {alt:.1f}° az {az:.1f}°" if isinstance(alt, (int, float)) and isinstance(az, (int, float)) else ""
            parts.append(f"mount: RA {ra} Dec {dec}{where}, {state}")
    return " | ".join(parts) if parts else "cameras and mount: -"


def create_widget(client) -> QWidget:
    """Return the sequencer tab for the desktop shell."""
    return SequencerTab(client)
