"""A custom reduction step for the LISA-like set-up: mark the telluric bands.

Without a reference star of the night the reduction cannot remove the
atmosphere's O2 and H2O bands. Rather than let a line fit trust those pixels,
this step multiplies their variance (so the `STD` uncertainty extension and any S/N
weighting say "do not trust") and adds a flag to the quality record.

It is named in the set-up's recipe (``steps = ["lisa_steps:TelluricBandMask"]``)
and reads its parameters from the set-up's own ``[telluric_mask]`` table. The
reduction calls ``run(ctx)`` after the wavelength axis is final; ``ctx`` holds
``wavelength`` (A), ``flux``, ``variance`` (numpy arrays of the same length,
change them in place or replace them; a step may shift or resample the
wavelength axis, the FITS axis is computed after the steps),
``setup`` (the instrument set-up), ``header`` (of the first raw frame) and
``flags`` (a list of strings that goes to the quality record).
"""

from __future__ import annotations

import numpy as np

from rosace_reduction.pipeline import Step

DEFAULT_BANDS = [(6860.0, 6890.0), (7590.0, 7630.0)]


class TelluricBandMask(Step):
    """Inflate the variance inside telluric bands of a spectrum reduced without a reference star."""

    name = "telluric_band_mask"

    def run(self, ctx: dict) -> None:
        # A night with a reference star got its telluric correction: nothing to mark.
        if "no_response" not in ctx["flags"]:
            return
        params = getattr(ctx["setup"], "telluric_mask", None) or {}
        bands = params.get("bands", DEFAULT_BANDS)
        factor = float(params.get("factor", 100.0))
        wavelength = np.asarray(ctx["wavelength"])
        inside = np.zeros(wavelength.shape, bool)
        for lo, hi in bands:
            inside |= (wavelength >= lo) & (wavelength <= hi)
        if not inside.any():
            return
        ctx["variance"] = np.where(inside, ctx["variance"] * factor, ctx["variance"])
        ctx["flags"].append(f"telluric_bands_masked:{int(inside.sum())}px")
