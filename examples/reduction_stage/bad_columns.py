"""A custom 2D reduction stage: bad detector columns interpolated before the trace is fitted.

A dead or trapped column reads no light in the science frames: extracted as it
is, it leaves a deep one-column hole in the spectrum (and a ``spikes`` flag).
This stage runs on the calibrated 2D science band, before ``trace``, and
replaces each bad column by the linear interpolation of its good neighbours,
row by row (IRAF's fixpix does the same; ccdproc has no column interpolation).

Name the columns (unbinned detector columns, counted from 0) in your set-up
file, the reduction keeps tables it does not know::

    [bad_columns]
    columns = [1500, 1501]

and the stage in the observatory configuration (every set-up)::

    [reduction]
    stages = [{ use = "D:/rosace/bad_columns.py:FixBadColumns", before = "trace" }]

or in the set-up's own ``[recipe] stages`` (a relative path is taken from the
set-up file's folder). Walk-through: docs/adapting/reduction-stage.md.
"""

from __future__ import annotations

import numpy as np

from rosace_reduction.stages import Stage, State


class FixBadColumns(Stage):
    """Interpolate the set-up's ``[bad_columns] columns`` in the 2D science band (variance too)."""

    name = "fix_bad_columns"

    def run(self, state: State) -> None:
        columns = (getattr(state.setup, "bad_columns", None) or {}).get("columns", [])
        nx = state.science.shape[1]
        layout = state.layout  # the frame's binning and subframe: detector columns -> image columns
        bad = np.zeros(nx, bool)
        for column in columns:
            j = int((int(column) - layout.x0) // layout.bx)
            if 0 <= j < nx:
                bad[j] = True
        if not bad.any() or bad.all():
            return
        good = np.flatnonzero(~bad)
        for image in (state.science, state.science_variance):
            for row in image:
                row[bad] = np.interp(np.flatnonzero(bad), good, row[good])
        state.flags.append(f"bad_columns_interpolated:{int(bad.sum())}")
