"""examples/reduction_stage: a custom 2D stage inserted before "trace" changes the result.

A simulated Alpy 600 observation whose science frame has a dead column is
reduced twice, through the configuration (``[reduction] stages``): without
the example's stage the spectrum has a one-column hole there; with it, inserted
before ``trace``, the column is interpolated in the 2D band and the spectrum is
continuous.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from rosace_core.config import ObservatoryConfig
from rosace_core.errors import ConfigError
from rosace_core.resources import resource_path
from rosace_reduction.batch import options_from_config
from rosace_reduction.pipeline import Plan, reduce_observation
from rosace_sim.render import Renderer, Star

pytestmark = pytest.mark.slow  # two reductions of full Alpy frames (about 25 s; 60 s on a loaded machine)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "reduction_stage"
DEAD = 1500  # the dead detector column


def write_frame(path: Path, image, kind: str, exptime: float) -> str:
    header = fits.Header()
    header.update({
        "IMAGETYP": kind, "OBJECT": "48 Lib", "RA": 239.3971, "DEC": -14.2792, "DATE-OBS": "2026-11-20T21:00:00", "EXPTIME": exptime,
        "AIRMASS": 1.2, "SITENAME": "example", "SITELAT": 43.75, "SITELONG": 6.92, "SITEELEV": 1270.0, "INSTRUME": "alpy600",
        "OBSERVER": "Example", "CCD-TEMP": -10.0, "ROSOBSID": "stage-example-1", "LAMP": {"ARC": "NeAr", "FLAT": "tungsten"}.get(kind, "none"),
    })
    fits.PrimaryHDU(image, header=header).writeto(path)
    return str(path)


@pytest.fixture(scope="module")
def observation(tmp_path_factory):
    """A rendered Alpy observation with a dead column in the science frame, and the user's set-up naming it."""
    tmp = tmp_path_factory.mktemp("stage")
    renderer = Renderer("alpy600")
    rng = np.random.default_rng(3)
    t = datetime(2026, 11, 20, 21, 0, tzinfo=timezone.utc)
    star = Star("48 Lib", 239.3971, -14.2792, 4.88, "B3IVe", be_emission={"ew": -25})
    science, _ = renderer.science(star, exposure=30.0, airmass=1.2, time=t, site=(43.75, 6.92, 1270), rng=rng)
    bias, _ = renderer.bias(rng=rng)
    science = science.copy()
    science[:, DEAD] = bias[:, DEAD]  # no light in that column
    raw = tmp / "raw"
    raw.mkdir()
    plan = Plan(
        science=[write_frame(raw / "light.fits", science, "LIGHT", 30.0)],
        arc=[write_frame(raw / "arc.fits", renderer.arc("NeAr", exposure=5.0, rng=rng)[0], "ARC", 5.0)],
        flat=[write_frame(raw / "flat.fits", renderer.flat(rng=rng)[0], "FLAT", 2.0)],
        bias=[write_frame(raw / f"bias{i}.fits", renderer.bias(rng=rng)[0], "BIAS", 0.0) for i in range(3)],
    )
    # The user's Alpy set-up (same name as the built-in one: theirs wins) names its bad column.
    setups = tmp / "setups"
    setups.mkdir()
    text = resource_path("instruments", "alpy600.toml").read_text(encoding="utf-8")
    (setups / "alpy600.toml").write_text(text + f"\n[bad_columns]\ncolumns = [{DEAD}]\n", encoding="utf-8")
    return plan, setups


def _config(tmp_path, setups, stages=()):
    return ObservatoryConfig(reduction={"output": str(tmp_path / "reduced"), "instruments_dir": str(setups), "stages": list(stages)})


def _spectrum(record):
    """Flux and the image column of each output pixel (through the record's wavelength solution)."""
    with fits.open(record["products"]["fits"]) as hdul:
        head = hdul[0].header
        wavelength = head["CRVAL1"] + head["CDELT1"] * (np.arange(head["NAXIS1"]) + 1 - head["CRPIX1"])
        flux = hdul[0].data.astype(float)
    solution = record["wavelength_solution"]
    x = np.arange(3000)
    from numpy.polynomial import polynomial as P

    rest = wavelength / (1 + record["barycentric_kms"] / 299792.458)
    column = np.interp(rest, P.polyval(x - solution["x0"], solution["coeffs"]), x)
    return flux, column


def _hole_depth(record) -> float:
    """Flux at the dead column relative to the median of the columns 5 to 15 either side."""
    flux, column = _spectrum(record)
    at = np.argmin(np.abs(column - DEAD))
    around = (np.abs(column - DEAD) > 5) & (np.abs(column - DEAD) < 15)
    return float(flux[at] / np.median(flux[around]))


def test_a_2d_stage_before_the_trace_mends_a_dead_column(observation, tmp_path):
    plan, setups = observation
    plain = reduce_observation(plan, options_from_config(_config(tmp_path / "plain", setups)))
    assert plain["custom_steps"] == [] and "fix_bad_columns" not in plain["stages"]
    assert _hole_depth(plain) < 0.5  # the dead column is a hole in the spectrum

    use = f"{EXAMPLE / 'bad_columns.py'}:FixBadColumns"
    mended = reduce_observation(plan, options_from_config(_config(tmp_path / "mended", setups, [{"use": use, "before": "trace"}])))
    assert mended["stages"][:3] == ["calibrate", "fix_bad_columns", "trace"]
    assert mended["custom_steps"] == ["fix_bad_columns"]
    assert "bad_columns_interpolated:1" in mended["flags"]
    assert _hole_depth(mended) == pytest.approx(1.0, abs=0.05)


def test_a_stage_placed_by_an_unknown_name_is_refused_naming_the_entry(observation, tmp_path):
    plan, setups = observation
    use = f"{EXAMPLE / 'bad_columns.py'}:FixBadColumns"
    with pytest.raises(ConfigError) as err:
        reduce_observation(plan, options_from_config(_config(tmp_path, setups, [{"use": use, "before": "tracing"}])))
    assert "reduction.stages[0].before: no stage 'tracing' in the longslit recipe; its stages: calibrate, trace, arc" in str(err.value)
    with pytest.raises(ConfigError) as err:
        options_from_config(_config(tmp_path, setups, [{"use": use}]))
    assert "reduction.stages.0" in str(err.value) and "exactly one of before, after or replace" in str(err.value)
