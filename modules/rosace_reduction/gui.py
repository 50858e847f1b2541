"""Desktop tab of the reduction module: jobs, reduced spectra, arc residuals and the spectrum."""

from __future__ import annotations

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
from PySide6.QtCore import Qt

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
        return {"results": self.client.results(), "jobs": self.client.jobs()}

    def update_view(self, data) -> None:
        jobs = data["jobs"]
        running = [j for j in jobs if j["state"] in ("queued", "running")]
        if running:
            j = running[-1]
            self.jobs_label.setText(f"job {j['id']}: {j['state']} {j['fraction'] * 100:.0f} % {j['message']}")
        elif jobs:
            j = jobs[-1]
            self.jobs_label.setText(f"last job {j['id']}: {j['state']} {j.get('error') or ''}")
        ids = [r["id"] for r in data["results"]]
        if ids != self._ids:
            self._ids = ids
            self.results_list.clear()
            for r in data["results"]:
                q = r["quality"]
                item = QListWidgetItem(f"{r['object']}  {r['date_obs'][:16]}  {r['instrument']}  S/N {q['snr']:.0f}")
                item.setData(Qt.ItemDataRole.UserRole, r)
                self.results_list.addItem(item)

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

    def _show_spectrum(self, data) -> None:
        self.spectrum_plot.clear()
        self.spectrum_plot.plot(data["wavelength"], data["flux"], pen=pg.mkPen(width=1))
        self.spectrum_plot.setLabel("left", data.get("unit") or "flux")


def create_widget(client) -> QWidget:
    """The reduction tab for the desktop shell."""
    return ReductionTab(client)
