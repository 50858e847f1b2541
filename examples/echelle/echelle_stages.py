"""The three stages an echelle set-up supplies to ROSACE's echelle recipe (a toy that works).

ROSACE reduces long-slit spectra; for an echelle it has a recipe skeleton
(``kind = "echelle"`` in the set-up) whose order stages are yours:

- ``order_trace``: where each order lies on the calibrated 2D frame;
- ``order_extraction``: a wavelength-calibrated 1D spectrum of each order;
- ``merge``: the orders merged into the one spectrum the rest of the recipe
  (flux calibration, telluric, barycentric correction, quality, products) works on.

Each stage is a class with a ``name`` and ``run(state)``: ``state`` is the
reduction's :class:`rosace_reduction.stages.State`. Before these stages the
``calibrate`` stage left the bias-, dark- and flat-corrected sum of the science
exposures in ``state.science`` (rows x columns, the whole frame for an echelle)
and its variance in ``state.science_variance``; the raw arc frames are in
``state.arc_frames``. ``merge`` must end with ``state.set_spectrum(wavelength,
flux, variance)``.

This toy traces straight or gently tilted orders, sums a box of rows, and takes
each order's wavelengths from the set-up's nominal ``[[orders]]`` table: a real
one would fit curved orders, extract optimally and solve each order's arc.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

from rosace_reduction.stages import Stage, State

HALF_WIDTH = 4  # rows either side of an order summed
SKY_GAP = 8  # rows from the order's centre to its background windows
SKY_WIDTH = 4


class TraceOrders(Stage):
    """Each order's centre (a straight line: row = a + b * column) from its peak in bins of 50 columns."""

    name = "order_trace"

    def run(self, state: State) -> None:
        image = state.science
        ny, nx = image.shape
        traces = []
        for order in state.setup.order_table:
            guess = int(round(order["row"]))
            xs, ys = [], []
            for start in range(0, nx - 49, 50):
                profile = image[:, start: start + 50].sum(axis=1)
                lo, hi = max(guess - 15, 1), min(guess + 16, ny - 1)
                peak = lo + int(np.argmax(profile[lo:hi]))
                # Centroid of the peak's rows.
                rows = np.arange(peak - 2, peak + 3)
                weights = np.clip(profile[rows] - np.median(profile[lo:hi]), 0, None)
                if weights.sum() > 0:
                    xs.append(start + 24.5)
                    ys.append(float((rows * weights).sum() / weights.sum()))
            if len(xs) < 2:
                raise ValueError(f"order {order['number']}: no light found near row {guess}")
            slope, intercept = np.polyfit(xs, ys, 1)
            traces.append({"number": order["number"], "intercept": float(intercept), "slope": float(slope)})
        state.extra["orders"] = traces
        state.flags.append(f"orders_traced:{len(traces)}")


class ExtractOrders(Stage):
    """A box of rows around each order, its background from windows either side; wavelengths from the set-up."""

    name = "order_extraction"

    def run(self, state: State) -> None:
        image, variance = state.science, state.science_variance
        ny, nx = image.shape
        columns = np.arange(nx)
        per_second = state.exptime if state.exptime > 0 else 1.0
        nominal = {o["number"]: o for o in state.setup.order_table}
        spectra = []
        for trace in state.extra["orders"]:
            centre = np.rint(trace["intercept"] + trace["slope"] * columns).astype(int)
            offsets = np.arange(-HALF_WIDTH, HALF_WIDTH + 1)
            rows = np.clip(centre[None, :] + offsets[:, None], 0, ny - 1)
            sky_offsets = np.r_[np.arange(-SKY_GAP - SKY_WIDTH, -SKY_GAP), np.arange(SKY_GAP + 1, SKY_GAP + SKY_WIDTH + 1)]
            sky_rows = np.clip(centre[None, :] + sky_offsets[:, None], 0, ny - 1)
            sky = np.median(image[sky_rows, columns], axis=0)
            flux = (image[rows, columns] - sky).sum(axis=0)
            var = variance[rows, columns].sum(axis=0)
            order = nominal[trace["number"]]
            wavelength = order["start"] + order["dispersion"] * columns
            spectra.append({"number": trace["number"], "wavelength": wavelength,
                            "flux": flux / per_second / order["dispersion"],
                            "variance": var / per_second**2 / order["dispersion"] ** 2})
        state.extra["order_spectra"] = spectra
        state.bunit = "adu / (s Angstrom)"


class MergeOrders(Stage):
    """The orders on one linear grid, overlaps weighted by the inverse variance."""

    name = "merge"

    def run(self, state: State) -> None:
        spectra = state.extra["order_spectra"]
        step = min(float(np.median(np.diff(s["wavelength"]))) for s in spectra)
        lo = min(s["wavelength"][0] for s in spectra)
        hi = max(s["wavelength"][-1] for s in spectra)
        grid = lo + step * np.arange(int(np.floor((hi - lo) / step)) + 1)
        weight_sum = np.zeros(grid.shape)
        flux_sum = np.zeros(grid.shape)
        for s in spectra:
            inside = (grid >= s["wavelength"][0]) & (grid <= s["wavelength"][-1])
            flux = np.interp(grid[inside], s["wavelength"], s["flux"])
            var = np.interp(grid[inside], s["wavelength"], s["variance"])
            # The ends of an order are the faintest (blaze): smooth the weights so noise does not pick pixels.
            weight = 1.0 / np.maximum(uniform_filter1d(var, 15), 1e-30)
            weight_sum[inside] += weight
            flux_sum[inside] += weight * flux
        covered = weight_sum > 0
        state.set_spectrum(grid[covered], flux_sum[covered] / weight_sum[covered], 1.0 / weight_sum[covered])
