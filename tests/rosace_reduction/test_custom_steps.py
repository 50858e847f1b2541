"""Custom reduction steps: their own name, and an output axis computed after they ran."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from rosace_core.resources import resource_path
from rosace_reduction.batch import plan_folder
from rosace_reduction.frames import scan_folder
from rosace_reduction.pipeline import Options, Step, reduce_observation

STEPS = '''
import numpy as np
from rosace_reduction.pipeline import Step


class ShiftAxis(Step):
    name = "shift_axis"

    def run(self, ctx):
        ctx["wavelength"] = np.asarray(ctx["wavelength"]) + 10.0


class HalfResolution(Step):
    name = "half_resolution"

    def run(self, ctx):
        wl = np.asarray(ctx["wavelength"])
        ctx["wavelength"] = wl[::2].copy()
        ctx["flux"] = np.asarray(ctx["flux"])[::2].copy()
        ctx["variance"] = np.asarray(ctx["variance"])[::2].copy()
'''


class Named(Step):
    name = "named_by_subclass"


def test_a_subclass_name_wins_over_the_base_default():
    assert Named().name == "named_by_subclass"
    assert Named(name="given").name == "given"
    assert Step().name == "custom"


def _axis(path):
    with fits.open(path) as hdul:
        h = hdul[0].header
        return h["CRVAL1"], h["CDELT1"], h["NAXIS1"]


def test_the_fits_axis_is_computed_after_the_custom_steps(synthetic_night, tmp_path, monkeypatch):
    folder, _ = synthetic_night
    plan = plan_folder(scan_folder(folder)[0])[0][0]
    plain = reduce_observation(plan, Options(output_root=str(tmp_path / "plain")))
    assert plain["custom_steps"] == []

    # The user's own Alpy set-up (same name as the built-in one: theirs wins) with two steps.
    setups = tmp_path / "setups"
    setups.mkdir()
    text = resource_path("instruments", "alpy600.toml").read_text(encoding="utf-8")
    assert "\n[recipe]\n" in text and "steps =" not in text
    text = text.replace("\n[recipe]\n", '\n[recipe]\nsteps = ["axis_steps:ShiftAxis", "axis_steps:HalfResolution"]\n')
    (setups / "alpy600.toml").write_text(text, encoding="utf-8")
    (tmp_path / "axis_steps.py").write_text(STEPS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    stepped = reduce_observation(plan, Options(output_root=str(tmp_path / "stepped"), instrument_search=[str(setups)]))
    assert stepped["custom_steps"] == ["shift_axis", "half_resolution"]

    crval, cdelt, n = _axis(plain["products"]["fits"])
    crval2, cdelt2, n2 = _axis(stepped["products"]["fits"])
    assert n2 == (n + 1) // 2
    assert crval2 == pytest.approx(crval + 10.0, abs=1e-6)
    assert cdelt2 == pytest.approx(2 * cdelt, rel=1e-9)
    with fits.open(plain["products"]["fits"]) as a, fits.open(stepped["products"]["fits"]) as b:
        assert np.allclose(b[0].data, a[0].data[::2], equal_nan=True, rtol=1e-5)
