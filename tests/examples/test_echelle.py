"""examples/echelle: an echelle set-up skeleton whose order stages the user supplies.

The example's toy stages (order tracing, extraction, merging) run inside the
echelle recipe on synthetic frames and the rest of the recipe (flux
calibration, barycentric correction, quality, products) finishes the spectrum;
without them the recipe refuses and says which stages are missing.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from rosace_reduction.output import read_spectrum
from rosace_reduction.pipeline import Options, Plan, ReductionError, reduce_observation

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "echelle"
C_KMS = 299792.458


def _synthetic():
    spec = importlib.util.spec_from_file_location("echelle_synthetic_example", EXAMPLE / "synthetic.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    synthetic = _synthetic()
    folder = tmp_path_factory.mktemp("echelle")
    return synthetic, folder, synthetic.write_frames(folder / "raw")


def _plan(paths) -> Plan:
    return Plan(science=paths["science"], arc=paths["arc"], bias=paths["bias"])


def test_the_users_order_stages_run_in_the_echelle_recipe(frames, tmp_path):
    synthetic, _, paths = frames
    record = reduce_observation(_plan(paths), Options(output_root=str(tmp_path / "reduced"), instrument_search=[str(EXAMPLE / "toy_echelle.toml")]))
    assert record["instrument"] == "toy_echelle"
    assert record["stages"] == ["calibrate", "order_trace", "order_extraction", "merge", "flux_calibration", "telluric",
                                "barycentric", "normalise", "quality", "products"]
    assert record["custom_steps"] == ["order_trace", "order_extraction", "merge"]
    assert "orders_traced:3" in record["flags"] and "no_extraction_checks" in record["flags"]
    assert record["quality"]["grade"] == "fair" and record["wavelength_solution"] is None

    spectrum = read_spectrum(record["products"]["fits"])
    wavelength = spectrum.spectral_axis.to_value("Angstrom")
    flux = spectrum.flux.value
    shift = 1 + record["barycentric_kms"] / C_KMS
    # The three orders merged: 6500-6820 A (barycentric frame).
    assert wavelength[0] == pytest.approx(6500 * shift, abs=0.5) and wavelength[-1] == pytest.approx(6819.8 * shift, abs=0.5)
    # Each absorption line where the star has it, as deep.
    continuum = np.median(flux)
    for centre, depth, _ in synthetic.LINES:
        near = np.abs(wavelength - centre * shift) < 5
        bottom = wavelength[near][np.argmin(flux[near])]
        assert bottom == pytest.approx(centre * shift, abs=0.3)
        assert flux[near].min() / continuum == pytest.approx(1 - depth, abs=0.08)
    # Continuum level (e-/s/A: 400 e-/s/column, 0.2 A/column) the same inside and outside the overlaps.
    line_free = np.ones(wavelength.shape, bool)
    for centre, _, _ in synthetic.LINES:
        line_free &= np.abs(wavelength - centre * shift) > 6
    overlap = ((wavelength > 6602 * shift) & (wavelength < 6618 * shift)) | ((wavelength > 6702 * shift) & (wavelength < 6718 * shift))
    assert np.median(flux[overlap & line_free]) == pytest.approx(np.median(flux[~overlap & line_free]), rel=0.03)
    assert np.median(flux[line_free]) == pytest.approx(400 / 0.2, rel=0.05)


def test_without_the_users_stages_the_echelle_recipe_refuses_and_lists_its_stages(frames, tmp_path):
    _, _, paths = frames
    bare = tmp_path / "setups"
    bare.mkdir()
    text = (EXAMPLE / "toy_echelle.toml").read_text(encoding="utf-8")
    start = text.index("stages = [")
    end = text.index("]\n", text.index("replace = \"merge\"")) + 2
    (bare / "toy_echelle.toml").write_text(text[:start] + text[end:], encoding="utf-8")
    with pytest.raises(ReductionError) as err:
        reduce_observation(_plan(paths), Options(output_root=str(tmp_path / "reduced"), instrument_search=[str(bare)]))
    message = str(err.value)
    assert message.startswith("echelle extraction is not implemented yet; stages: calibrate, order_trace (yours to supply), "
                              "order_extraction (yours to supply), merge (yours to supply), flux_calibration")
    assert "replace = \"order_trace\"" in message
    assert not (tmp_path / "reduced").exists()  # refused before anything was written


def test_a_stage_that_breaks_is_named_in_the_error(frames, tmp_path):
    _, _, paths = frames
    # The user's stage file beside their set-up, with a bug in the merge.
    setups = tmp_path / "setups"
    shutil.copytree(EXAMPLE, setups, ignore=shutil.ignore_patterns("__pycache__", "*.md"))
    stages = setups / "echelle_stages.py"
    stages.write_text(stages.read_text(encoding="utf-8").replace("spectra = state.extra[\"order_spectra\"]", "spectra = state.extra[\"order_spectrum\"]"),
                      encoding="utf-8")
    with pytest.raises(ReductionError, match=r"^stage merge failed: KeyError: 'order_spectrum'"):
        reduce_observation(_plan(paths), Options(output_root=str(tmp_path / "reduced"), instrument_search=[str(setups)]))
