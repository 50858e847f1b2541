"""Desktop tab of the share module: archive browser, plots (pyqtgraph), export and upload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
)

from rosace_core.outbox import waiting_text
from rosace_desktop.tab import ModuleTab, run_in_background

COLUMNS = ("id", "object", "date_obs", "observer", "instrument", "snr", "quality", "campaign")
LINES = {"H-alpha": 6562.85, "H-beta": 4861.35, "He I 6678": 6678.15, "He I 5876": 5875.62}


class ShareTab(ModuleTab):
    """Browse the archive, plot a spectrum or an object's epochs, export and upload."""

    interval_ms = 0  # the archive changes on request, not continuously

    def __init__(self, client, parent=None):
        super().__init__(client, parent)
        bar = QHBoxLayout()
        self.object_edit = QLineEdit(placeholderText="object")
        self.observer_edit = QLineEdit(placeholderText="observer")
        self.start_edit = QLineEdit(placeholderText="from YYYY-MM-DD")
        self.end_edit = QLineEdit(placeholderText="to YYYY-MM-DD")
        self.line_combo = QComboBox()
        self.line_combo.addItems(list(LINES))
        search = QPushButton("Search")
        search.clicked.connect(self.refresh)
        self.upload_button = QPushButton("Upload FITS...")
        self.upload_button.clicked.connect(self.upload)
        self.export_button = QPushButton("Export...")
        self.export_button.clicked.connect(self.export)
        for w in (self.object_edit, self.observer_edit, self.start_edit, self.end_edit, search, self.line_combo, self.upload_button, self.export_button):
            bar.addWidget(w)
        self.body.addLayout(bar)
        self.forwards_label = QLabel("")  # the outbox of forwards to the upstream share server
        self.body.addWidget(self.forwards_label)

        split = QSplitter(Qt.Orientation.Vertical)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.itemSelectionChanged.connect(self.show_selected)
        split.addWidget(self.table)
        self.plots = QTabWidget()
        self.spectrum_plot = pg.PlotWidget(labels={"bottom": "wavelength (Å)", "left": "flux"})
        self.overlay_plot = pg.PlotWidget(labels={"bottom": "wavelength (Å)", "left": "normalised flux"})
        self.dynamic_plot = pg.PlotWidget(labels={"bottom": "velocity (km/s)", "left": "epoch"})
        self.ew_plot = pg.PlotWidget(labels={"bottom": "MJD", "left": "EW (Å)"})
        self.ew_plot.invertY(True)
        self.dynamic_image = pg.ImageItem()
        self.dynamic_plot.addItem(self.dynamic_image)
        for w, name in ((self.spectrum_plot, "Spectrum"), (self.overlay_plot, "Epochs"), (self.dynamic_plot, "Dynamic spectrum"), (self.ew_plot, "Equivalent width")):
            self.plots.addTab(w, name)
        split.addWidget(self.plots)
        self.body.addWidget(split, 1)
        self.rows: list[dict] = []

    # ------------------------------------------------------------------ data

    def fetch(self):
        filters = {"object": self.object_edit.text().strip() or None, "observer": self.observer_edit.text().strip() or None,
                   "start": self.start_edit.text().strip() or None, "end": self.end_edit.text().strip() or None, "limit": 500}
        return {**self.client.search(**filters), "status": self.client.status()}

    def update_view(self, data):
        self.forwards_label.setText(waiting_text((data.get("status") or {}).get("forwards"), "the upstream share server"))
        self.rows = data["items"]
        self.table.setRowCount(len(self.rows))
        for r, item in enumerate(self.rows):
            for c, key in enumerate(COLUMNS):
                value = item.get(key)
                self.table.setItem(r, c, QTableWidgetItem("" if value is None else str(value)))
        total = data["total"]
        self.status_line.setText(f"{total} spectrum" if total == 1 else f"{total} spectra")

    def selected(self) -> dict | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return self.rows[rows[0].row()] if rows else None

    def show_selected(self) -> None:
        row = self.selected()
        if row is None:
            return
        client, line = self.client, self.line_combo.currentText()

        def load():
            return row, client.spectrum_data(row["id"]), client.line_analysis(row["object"], line)

        run_in_background(load, self.plot, lambda exc: self.status_line.setText(f"plot failed: {exc}"))

    def plot(self, result) -> None:
        row, data, lines = result
        wl = np.array(data["wavelength"], dtype=float)
        flux = np.array([np.nan if f is None else f for f in data["flux"]], dtype=float)
        self.spectrum_plot.clear()
        if data.get("error"):
            err = np.array([np.nan if e is None else e for e in data["error"]], dtype=float)
            lo = pg.PlotDataItem(wl, flux - err, pen=None)
            hi = pg.PlotDataItem(wl, flux + err, pen=None)
            self.spectrum_plot.addItem(pg.FillBetweenItem(lo, hi, brush=(80, 120, 200, 90)))
        self.spectrum_plot.plot(wl, flux, pen=pg.mkPen("w", width=1))
        self.spectrum_plot.setTitle(f"{row['object']} {row['date_obs'][:16]}")
        # The error band's items pulled the automatic range to 0 Å: the spectrum's own span.
        finite = np.isfinite(wl) & np.isfinite(flux)
        if finite.any():
            self.spectrum_plot.setXRange(float(wl[finite].min()), float(wl[finite].max()), padding=0.01)
            self.spectrum_plot.setYRange(float(np.nanmin(flux[finite])), float(np.nanmax(flux[finite])), padding=0.05)
        image = np.array([[np.nan if v is None else v for v in r] for r in lines["image"]], dtype=float)
        if image.size:
            v = lines["velocity"]
            self.dynamic_image.setImage(np.nan_to_num(image.T, nan=1.0), autoLevels=True)
            self.dynamic_image.setRect(v[0], 0, v[-1] - v[0], image.shape[0])
        self.ew_plot.clear()
        pts = [(e["jd"] - 2400000.5, e["ew"]) for e in lines["ew"] if e["ew"] is not None]
        if pts:
            x, y = zip(*pts)
            self.ew_plot.plot(x, y, pen=pg.mkPen("r"), symbol="o", symbolSize=5)
        self.overlay_plot.clear()
        rest = lines["rest"]
        # Overlay: each epoch's line profile on the dynamic-spectrum grid, back in wavelength.
        for k, prof in enumerate(image):
            colour = pg.intColor(k, hues=max(len(image), 1))
            self.overlay_plot.plot(rest * (1 + np.array(lines["velocity"]) / 299792.458), prof, pen=colour)

    # ------------------------------------------------------------------ actions

    def upload(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Upload reduced spectra", "", "FITS (*.fits *.fit *.fts)")
        if paths:
            client = self.client
            self.run_async(lambda: [client.upload(Path(p)) for p in paths], what=f"upload of {len(paths)} file(s)")

    def export(self) -> None:
        row = self.selected()
        if row is None:
            self.status_line.setText("select a spectrum to export")
            return
        path, chosen = QFileDialog.getSaveFileName(self, "Export spectrum", row["aras_name"], "BeSS FITS (*.fit);;CSV (*.csv)")
        if path:
            kind = "csv" if path.endswith(".csv") or "CSV" in chosen else "bess"
            self.export_to(row["id"], Path(path), kind)

    def export_to(self, spectrum_id: int, path: Path, kind: str = "bess") -> None:
        """Write a spectrum export to ``path`` (kind: bess, csv or fits), off the GUI thread."""
        client = self.client
        self.run_async(lambda: path.write_bytes(client.download(spectrum_id, kind)), what=f"export to {path.name}")


def create_widget(client):
    """The Share tab for the desktop."""
    return ShareTab(client)
