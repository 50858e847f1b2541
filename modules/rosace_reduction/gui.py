"""Desktop tab of the reduction module: jobs, reduced spectra, the 2D frame with the trace and
extraction window, arc residuals and the spectrum."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)
from PySide6.QtCore import QRectF, Qt

from rosace_core.outbox import waiting_text
from rosace_desktop.tab import ModuleTab, run_in_background


class ReductionTab(ModuleTab):
    """Reduce a night folder; browse results with their spectrum and arc identification."""

    interval_ms = 3000

    def __init__(self, client, parent=None):
        super().__init__(client, parent)
        top = QHBoxLayout()
        self.reduce_button = QPushButton("Reduce a night folder...")
        self.reduce_button.clicked.connect(self._choose_folder)
        top.addWidget(self.reduce_button)
        self.jobs_label = QLabel("no job")
        top.addWidget(self.jobs_label, 1)
        self.uploads_label = QLabel("")  # the outbox of uploads to share
        top.addWidget(self.uploads_label)
        self.body.addLayout(top)
        split = QSplitter(Qt.Orientation.Horizontal)
        self.results_list = QListWidget()
        self.results_list.currentItemChanged.connect(self._selected)
        split.addWidget(self.results_list)
        right = QWidget()
        rl = QVBoxLayout(right)
        self.info = QLabel("")
        self.info.setWordWrap(True)
        rl.addWidget(self.info)
        # The raw frame around the trace: was the right star traced, do the
        # aperture and the sky windows sit where they should?
        self.frame_plot = pg.PlotWidget(title="2D frame: trace (yellow), aperture (green), sky windows (blue)")
        self.frame_plot.setLabel("bottom", "column (px)")
        self.frame_plot.setLabel("left", "row (px)")
        self.frame_image = pg.ImageItem(axisOrder="row-major")
        self.frame_plot.addItem(self.frame_image)
        self.frame_curves = {
            "trace": self.frame_plot.plot(pen=pg.mkPen("y", width=1)),
            "aperture": [self.frame_plot.plot(pen=pg.mkPen("g", width=1)) for _ in range(2)],
            "sky": [self.frame_plot.plot(pen=pg.mkPen((80, 140, 255), width=1, style=Qt.PenStyle.DashLine)) for _ in range(4)],
        }
        rl.addWidget(self.frame_plot, 2)
        self.spectrum_plot = pg.PlotWidget(title="spectrum")
        self.spectrum_plot.setLabel("bottom", "wavelength (A)")
        rl.addWidget(self.spectrum_plot, 3)
        self.arc_plot = pg.PlotWidget(title="arc identification: residuals (A)")
        rl.addWidget(self.arc_plot, 1)
        split.addWidget(right)
        split.setStretchFactor(1, 3)
        self.body.addWidget(split, 1)
        self._ids: list[str] = []

    def fetch(self):
        return {"results": self.client.results(), "jobs": self.client.jobs(), "status": self.client.status()}

    def update_view(self, data) -> None:
        self.uploads_label.setText(waiting_text((data.get("status") or {}).get("uploads"), "share"))
        jobs = data["jobs"]
        running = [j for j in jobs if j["state"] in ("queued", "running")]
        if running:
            j = running[-1]
            self.jobs_label.setText(f"job {j['id']}: {j['state']} {j['fraction'] * 100:.0f} % {j['message']}")
        elif jobs:
            j = jobs[-1]
            self.jobs_label.setText(f"last job {j['id']}: {j['state']} {j.get('error') or ''}")
        # Stable order (observation time, then id): a new result is inserted at its place and
        # the rest stay where they are, with the selection (the list was rebuilt under the mouse).
        results = sorted(data["results"], key=lambda r: (r.get("date_obs") or "", r["id"]))
        ids = [r["id"] for r in results]
        if ids != self._ids:
            known = {self.results_list.item(i).data(Qt.ItemDataRole.UserRole)["id"]: i for i in range(self.results_list.count())}
            for row in sorted((known[i] for i in known if i not in ids), reverse=True):
                self.results_list.takeItem(row)
            for pos, r in enumerate(results):
                if r["id"] in known:
                    continue
                q = r["quality"]
                item = QListWidgetItem(f"{r['object']}  {r['date_obs'][:16]}  {r['instrument']}  S/N {q['snr']:.0f}")
                item.setData(Qt.ItemDataRole.UserRole, r)
                self.results_list.insertItem(pos, item)
            self._ids = ids

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Night folder of raw frames")
        if folder:
            self.run_async(lambda: self.client.reduce(folder=folder), what="reduce")

    def _selected(self, item, _previous=None) -> None:
        if item is None:
            return
        rec = item.data(Qt.ItemDataRole.UserRole)
        q = rec["quality"]
        self.info.setText(
            f"<b>{rec['object']}</b> {rec['date_obs']} - S/N {q['snr']:.0f}, wavelength RMS {q['wavelength_rms_angstrom']:.3f} A "
            f"({q['wavelength_rms_px']:.3f} px, {q['arc_lines']} lines), R {q['resolving_power']:.0f}, "
            f"trace FWHM {q['trace']['fwhm_px']:.1f} px, tilt {q['geometry']['tilt_deg']:.2f} deg, "
            f"cosmic-ray px {q['cosmic_ray_pixels']}; flags: {', '.join(rec['flags']) or 'none'}"
        )
        lines = rec.get("wavelength_solution", {}).get("lines", [])
        self.arc_plot.clear()
        self.arc_plot.plot([l["wavelength"] for l in lines], [l["residual"] for l in lines], pen=None, symbol="o", symbolSize=5)
        rid = rec["id"]
        run_in_background(lambda: self.client.spectrum(rid), self._show_spectrum, lambda exc: self.status_line.setText(f"spectrum: {exc}"))
        run_in_background(lambda: self.client.frame(rid), self.show_frame, lambda exc: self.status_line.setText(f"2D frame: {exc}"))

    def show_frame(self, data) -> None:
        """Draw the frame band (``client.frame`` document) with the trace, aperture and sky windows."""
        img = np.asarray(data["data"], dtype=np.float32)
        lo, hi = np.percentile(img, [1.0, 99.7])
        self.frame_image.setImage(img, levels=(float(lo), float(max(hi, lo + 1))))
        step, row0 = data["column_bin"], data["row0"]
        self.frame_image.setRect(QRectF(-0.5, row0 - 0.5, img.shape[1] * step, img.shape[0]))
        x, y = np.asarray(data["trace"]["x"]), np.asarray(data["trace"]["y"])
        w = data["window"]
        ap, s0, s1 = w["aperture_half_width"], w["sky_offset"], w["sky_offset"] + w["sky_width"]
        self.frame_curves["trace"].setData(x, y)
        for curve, off in zip(self.frame_curves["aperture"], (-ap, ap)):
            curve.setData(x, y + off)
        for curve, off in zip(self.frame_curves["sky"], (-s1, -s0, s0, s1)):
            curve.setData(x, y + off)
        self.frame_plot.setXRange(0, img.shape[1] * step, padding=0)
        self.frame_plot.setYRange(row0, row0 + img.shape[0], padding=0)

    def _show_spectrum(self, data) -> None:
        self.spectrum_plot.clear()
        self.spectrum_plot.plot(data["wavelength"], data["flux"], pen=pg.mkPen(width=1))
        self.spectrum_plot.setLabel("left", data.get("unit") or "flux")


def create_widget(client) -> QWidget:
    """The reduction tab for the desktop shell."""
    return ReductionTab(client)
