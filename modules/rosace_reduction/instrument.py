"""Instrument set-ups as the reduction sees them.

The model of the set-up file and its one cached loader live in
:mod:`rosace_core.instrument` (shared with the simulator and the sequencer);
they are re-exported here under the names the reduction has always used
(``InstrumentSetup``, ``Detector``, ``load_instrument``, ``find_instrument``).
What is the reduction's own is here: where an image's pixels lie on the
set-up's detector (:class:`Layout`, :func:`layout_of`).
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from rosace_core.instrument import (Detector, Dispersion, Geometry, InstrumentSetup, Recipe, Render, find_instrument,  # noqa: F401 (the reduction's API)
                                    instrument_path, observing_file_problems)
from rosace_core.instrument import load_instrument as _load_setup

def load_instrument(name: str, search: tuple[str, ...] = ()) -> InstrumentSetup:
    """Load an instrument set-up by name (``alpy600``) or TOML path, for reducing its frames.

    :func:`rosace_core.instrument.load_instrument` (one cached loader: an edited
    file is read again). Which set-ups can be reduced is the recipe's business
    (:mod:`rosace_reduction.stages` picks the stages by ``kind`` and refuses, naming
    them, a kind it has no stages for), so an echelle set-up with the user's own
    order stages loads here like any other.
    """
    return _load_setup(name, tuple(search))


@dataclass(frozen=True)
class Layout:
    """Where an image's pixels lie on the set-up's detector (whose geometry is in unbinned pixels).

    Image pixel (row i, column j) sums unbinned rows ``y0 + by*i ... + by-1``
    and columns ``x0 + bx*j ... + bx-1`` (``x0``, ``y0``: unbinned origin of
    the subframe). ``x_known``/``y_known`` are False when a subframe does not
    say where it was read (no XORGSUBF/YORGSUBF): the origin is then a guess
    (the subframe centred on the detector) and the searches that start from
    the set-up's geometry cover the whole image instead.
    """

    bx: int = 1
    by: int = 1
    x0: int = 0
    y0: int = 0
    x_known: bool = True
    y_known: bool = True

    def unbinned_column(self, j):
        """Unbinned detector column at the centre of image column(s) ``j``."""
        return self.x0 + (self.bx - 1) / 2 + self.bx * np.asarray(j, dtype=float)

    def image_row(self, y_unbinned: float) -> float:
        """Image row at the centre of which unbinned detector row ``y_unbinned`` falls."""
        return (float(y_unbinned) - self.y0 - (self.by - 1) / 2) / self.by

    def rows(self, n_unbinned: float, minimum: int = 1) -> int:
        """A length along the slit given in unbinned rows, in image rows (at least ``minimum``)."""
        return max(int(round(float(n_unbinned) / self.by)), minimum)

    def columns(self, n_unbinned: float) -> float:
        """A length along the dispersion given in unbinned columns, in image columns."""
        return float(n_unbinned) / self.bx

    def to_dict(self) -> dict:
        return {"binning": [self.bx, self.by], "origin_unbinned": [self.x0, self.y0], "origin_known": [self.x_known, self.y_known]}


def layout_of(detector: Detector, shape: tuple[int, int], binning: tuple[int, int] = (1, 1),
              origin: tuple[int | None, int | None] = (None, None)) -> Layout:
    """The :class:`Layout` of an image of ``shape`` (rows, columns) read with ``binning`` (XBINNING, YBINNING)
    and subframe ``origin`` in binned pixels (XORGSUBF, YORGSUBF; None when not written).

    An image as large as the binned detector (or larger: a set-up whose
    detector size is only approximate) starts at the detector's corner; a
    smaller one without an origin is taken as centred, its origin unknown.
    """
    bx, by = int(binning[0]), int(binning[1])
    ny, nx = int(shape[0]), int(shape[1])

    def axis(n: int, full: int, scale: int, given: int | None) -> tuple[int, bool]:
        if given is not None:
            return int(given) * scale, True
        if n >= full // scale:
            return 0, True
        return max((full - n * scale) // 2, 0), False

    x0, x_known = axis(nx, detector.nx, bx, origin[0])
    y0, y_known = axis(ny, detector.ny, by, origin[1])
    return Layout(bx, by, x0, y0, x_known, y_known)

