"""Server-side plots of spectra as PNG (matplotlib, Agg, no pyplot: safe in server threads).

matplotlib is imported by the first plot, not with this module: a share server
that is never asked for a plot (a night's archive) does not carry it (~35 MB).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

from rosace_share.analysis import DynamicSpectrum, line_view, normalised_flux
from rosace_share.spectra import SpectrumData

JD_MJD = 2400000.5
DPI = 160


def _png(fig: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _figure(width: float = 8.0, height: float = 3.6) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    # 160 dpi: a 8-inch figure is 1280 px, sharp on a high-density screen once the page
    # scales it to its column (90 dpi looked blurry there).
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig, fig.add_subplot()


def _plain_mjd_axis(axis) -> None:
    """MJD as plain numbers (matplotlib's default offset made '+6.07e4' axes)."""
    from matplotlib.ticker import ScalarFormatter

    fmt = ScalarFormatter(useOffset=False)
    fmt.set_scientific(False)
    axis.set_major_formatter(fmt)


def spectrum_png(spec: SpectrumData, title: str = "") -> bytes:
    """The spectrum with its 1-sigma band."""
    fig, ax = _figure()
    ax.plot(spec.wavelength, spec.flux, lw=0.7, color="k")
    if spec.error is not None:
        ax.fill_between(spec.wavelength, spec.flux - spec.error, spec.flux + spec.error, color="tab:blue", alpha=0.3, lw=0, label="1 sigma")
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("wavelength (Å)")
    ax.set_ylabel(str(spec.header.get("BUNIT", "")) or "flux")
    ax.set_title(title, fontsize=10)
    ax.set_xlim(spec.wavelength[0], spec.wavelength[-1])
    return _png(fig)


def _colours(n: int):
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(i / max(n - 1, 1)) for i in range(n)]


def overlay_png(epochs: list[tuple[float, SpectrumData]], title: str = "") -> bytes:
    """Every epoch normalised to its continuum, coloured by date (oldest dark)."""
    fig, ax = _figure()
    for (jd, spec), colour in zip(epochs, _colours(len(epochs))):
        ax.plot(spec.wavelength, normalised_flux(spec), lw=0.6, color=colour)
    ax.set_xlabel("wavelength (Å)")
    ax.set_ylabel("normalised flux")
    ax.set_title(title, fontsize=10)
    _date_colourbar(fig, ax, [jd for jd, _ in epochs])
    return _png(fig)


def _date_colourbar(fig, ax, jds) -> None:
    if len(jds) < 2:
        return
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    sm = ScalarMappable(norm=Normalize(min(jds) - JD_MJD, max(jds) - JD_MJD), cmap="viridis")
    fig.colorbar(sm, ax=ax, label="MJD", pad=0.01)


def line_png(epochs: list[tuple[float, SpectrumData]], rest: float, name: str, vmax: float = 1500.0) -> bytes:
    """Zoom on one line on a velocity axis, epochs overlaid."""
    fig, ax = _figure()
    shown = []
    for (jd, spec), colour in zip(epochs, _colours(len(epochs))):
        view = line_view(spec, rest, vmax)
        if view.covered:
            ax.plot(view.velocity, view.flux, lw=0.7, color=colour)
            shown.append(jd)
    ax.axvline(0, color="0.5", lw=0.5, ls="--")
    ax.set_xlabel(f"velocity relative to {name} {rest:.2f} Å (km/s)")
    ax.set_ylabel("flux / local continuum")
    ax.set_xlim(-vmax, vmax)
    if not shown:
        ax.text(0.5, 0.5, f"no spectrum covers {name}", transform=ax.transAxes, ha="center")
    _date_colourbar(fig, ax, shown)
    return _png(fig)


def dynamic_png(dyn: DynamicSpectrum, name: str) -> bytes:
    """Dynamic spectrum: velocity across, time (MJD) upwards, flux as colour."""
    fig, ax = _figure(8.0, 4.5)
    if dyn.image.shape[0] < 2:
        # One epoch has no time axis: a one-row "dynamic spectrum" only stretched it.
        what = f"no epoch covers {name}" if dyn.image.shape[0] == 0 else f"one epoch covers {name} so far: a dynamic spectrum needs two or more"
        ax.text(0.5, 0.5, what, transform=ax.transAxes, ha="center")
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        mjd = dyn.jd - JD_MJD
        # Row edges half-way between epochs: uneven sampling stays honest in time.
        if mjd.size > 1:
            mids = (mjd[1:] + mjd[:-1]) / 2
            edges = np.concatenate([[mjd[0] - (mids[0] - mjd[0])], mids, [mjd[-1] + (mjd[-1] - mids[-1])]])
        else:
            edges = np.array([mjd[0] - 0.5, mjd[0] + 0.5])
        dv = dyn.velocity[1] - dyn.velocity[0]
        vedges = np.concatenate([dyn.velocity - dv / 2, [dyn.velocity[-1] + dv / 2]])
        mesh = ax.pcolormesh(vedges, edges, np.ma.masked_invalid(dyn.image), cmap="inferno", shading="flat")
        fig.colorbar(mesh, ax=ax, label="flux / continuum", pad=0.01)
        ax.axvline(0, color="w", lw=0.5, ls="--")
        _plain_mjd_axis(ax.yaxis)
    ax.set_xlabel(f"velocity relative to {name} (km/s)")
    ax.set_ylabel("MJD")
    ax.set_title(f"dynamic spectrum, {name}", fontsize=10)
    return _png(fig)


def ew_png(jds: list[float], ews: list[float | None], name: str) -> bytes:
    """Equivalent width of a line against time (emission is negative: axis inverted upwards)."""
    fig, ax = _figure(8.0, 3.0)
    pts = [(jd - JD_MJD, ew) for jd, ew in zip(jds, ews) if ew is not None]
    if pts:
        x, y = zip(*pts)
        ax.plot(x, y, "o-", ms=4, lw=0.8, color="tab:red")
        if len(pts) == 1 or max(x) - min(x) < 1:
            # One night: a day either side, not matplotlib's +-1e-5 d around a single point.
            ax.set_xlim(min(x) - 1, max(x) + 1)
        span = max(y) - min(y)
        pad = max(0.1 * span, 0.05 * max(abs(v) for v in y), 0.5)
        ax.set_ylim(min(y) - pad, max(y) + pad)
        ax.invert_yaxis()
        _plain_mjd_axis(ax.xaxis)
    else:
        ax.text(0.5, 0.5, f"no spectrum covers {name}", transform=ax.transAxes, ha="center")
    ax.set_xlabel("MJD")
    ax.set_ylabel(f"EW {name} (Å)")
    return _png(fig)
