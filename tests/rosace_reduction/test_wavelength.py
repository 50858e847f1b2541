"""Arc line identification: synthetic arcs with a known solution (real arcs: test_wavelength_corpus.py)."""

import numpy as np
import pytest

from rosace_reduction.instrument import load_instrument
from rosace_reduction.wavelength import WavelengthError, find_arc_lines, identify, load_line_lists


def synthetic_arc(setup, shift, scale, rng, noise=5.0):
    nx = setup.detector.nx
    x = np.arange(nx)
    true_wl = setup.nominal_wavelength(nx / 2 + (x + shift - nx / 2) * scale)
    ll = load_line_lists(setup.line_lists)
    sig = np.median(true_wl) / setup.resolving_power / 2.3548
    arc = np.zeros(nx)
    for w0, a in zip(ll.wavelength, ll.intensity):
        arc += 30 * a * np.exp(-0.5 * ((true_wl - w0) / sig) ** 2)
    arc = rng.poisson(arc + 200).astype(float) + rng.normal(0, noise, nx)
    return arc, true_wl


@pytest.mark.parametrize("name,shift,scale", [("alpy600", 23.0, 1.012), ("alpy600", -140.0, 0.975), ("lhires2400", 60.0, 1.02)])
def test_identify_recovers_the_true_solution(name, shift, scale):
    setup = load_instrument(name)
    rng = np.random.default_rng(3)
    arc, true_wl = synthetic_arc(setup, shift, scale, rng)
    nominal = setup.nominal_wavelength(np.arange(setup.detector.nx))
    fwhm = np.median(nominal) / setup.resolving_power / abs(setup.dispersion.dispersion)
    sol = identify(arc, nominal, load_line_lists(setup.line_lists), fwhm=fwhm, order=3)
    x = np.arange(setup.detector.nx)
    xs = [l["x"] for l in sol.lines]
    inside = (x >= min(xs)) & (x <= max(xs))
    err_px = (sol(x) - true_wl)[inside] / np.abs(sol.dispersion(x))[inside]
    assert sol.n_lines >= (6 if name == "lhires2400" else 8)  # 7 Ne lines fall in the LHIRES window
    assert np.sqrt(np.mean(err_px**2)) < 0.05
    assert sol.rms_px < 0.1
    # Resolving power measured from the line widths, within 10 % of the rendered one
    # (rendered with a constant FWHM in A, so R grows with wavelength).
    fwhm_a = np.median(true_wl) / setup.resolving_power
    expected = np.median([l["wavelength"] for l in sol.lines]) / fwhm_a
    assert sol.resolving_power == pytest.approx(expected, rel=0.1)


def test_find_arc_lines_centroids():
    x = np.arange(400, dtype=float)
    centres = [50.3, 120.7, 250.25, 333.9]
    arc = sum(1000 * np.exp(-0.5 * ((x - c) / 1.7) ** 2) for c in centres) + 50
    lines = find_arc_lines(arc, 4.0)
    assert [round(l.x, 2) for l in lines] == pytest.approx(centres, abs=0.01)


def test_no_lines_is_a_clear_error():
    setup = load_instrument("alpy600")
    nominal = setup.nominal_wavelength(np.arange(3000))
    flat = np.random.default_rng(0).normal(100, 1, 3000)
    with pytest.raises(WavelengthError, match="arc lines"):
        identify(flat, nominal, load_line_lists(["ne"]), fwhm=7.0)


@pytest.mark.parametrize("name", ["alpy600", "lhires2400"])
def test_vectorised_line_fits_match_curve_fit_reference(name):
    """The batched Gaussian fits give the centres, widths and errors of one curve_fit per line."""
    from rosace_reduction.wavelength import find_arc_lines_curve_fit

    setup = load_instrument(name)
    arc, _ = synthetic_arc(setup, 10.0, 1.0, np.random.default_rng(1))
    nominal = setup.nominal_wavelength(np.arange(setup.detector.nx))
    fwhm = np.median(nominal) / setup.resolving_power / abs(setup.dispersion.dispersion)
    fast, ref = find_arc_lines(arc, fwhm), find_arc_lines_curve_fit(arc, fwhm)
    assert len(fast) == len(ref) >= 7
    real = [(a, b) for a, b in zip(fast, ref) if b.amplitude > 1.0]  # a blend leaves an empty fit in both
    assert len(real) >= len(ref) - 2
    assert max(abs(a.x - b.x) for a, b in real) < 5e-3  # optimiser tolerances; 10x below the 0.05 px goal
    assert [a.sigma for a, _ in real] == pytest.approx([b.sigma for _, b in real], rel=0.01)
    assert [a.x_err for a, _ in real] == pytest.approx([b.x_err for _, b in real], rel=0.02)


@pytest.mark.parametrize("lamp,lists", [("NeAr", ["ne", "ar"]), ("ThAr", ["thar"]), ("HgArNe", ["hg", "ar", "ne"]), ("He-Ne-Ar", ["he", "ne", "ar"]), ("CuAr", ["cu", "ar"])])
def test_lamp_names_select_line_lists(lamp, lists):
    from rosace_reduction.wavelength import lamp_line_lists

    assert lamp_line_lists(lamp) == lists
    assert len(load_line_lists(lists).wavelength) > 5


def test_unknown_lamp_is_a_clear_error():
    from rosace_reduction.wavelength import lamp_line_lists

    with pytest.raises(WavelengthError, match="unknown calibration lamp 'Sodium'"):
        lamp_line_lists("Sodium")


def test_solution_valid_range_is_the_span_of_its_lines():
    setup = load_instrument("alpy600")
    arc, _ = synthetic_arc(setup, 23.0, 1.012, np.random.default_rng(3))
    nominal = setup.nominal_wavelength(np.arange(setup.detector.nx))
    fwhm = np.median(nominal) / setup.resolving_power / abs(setup.dispersion.dispersion)
    sol = identify(arc, nominal, load_line_lists(setup.line_lists), fwhm=fwhm, order=3)
    xs = [l["x"] for l in sol.lines]
    lo, hi = sol.valid_range
    assert lo == pytest.approx(max(min(xs) - 3 * 7.6, 0), abs=1) and hi == pytest.approx(min(max(xs) + 3 * 7.6, 2999), abs=1)
    assert sol.extrapolated([lo - 1, (lo + hi) / 2, hi + 1]).tolist() == [True, False, True]
    assert sol.checks["chance_probability"] < 1e-8 and sol.checks["n_lines"] == sol.n_lines


def test_wrong_lamp_is_refused_not_fitted():
    """A neon arc identified against the Hg/Kr lists: refused, never a confident solution."""
    setup = load_instrument("alpy600")
    arc, _ = synthetic_arc(setup, 23.0, 1.012, np.random.default_rng(3))
    nominal = setup.nominal_wavelength(np.arange(setup.detector.nx))
    with pytest.raises(WavelengthError, match="refused|identified|lines"):
        identify(arc, nominal, load_line_lists(["hg", "kr"]), fwhm=7.6, order=3)


def test_reduced_spectrum_records_its_valid_wavelength_range(synthetic_night, tmp_path):
    """The quality record gives the range the arc lines constrain, and flags the extrapolated columns."""
    import json
    import shutil

    from rosace_core.cli import main

    folder, _ = synthetic_night
    night = tmp_path / "20261120"
    shutil.copytree(folder, night)
    assert main(["reduce", str(night), "--output", str(tmp_path / "out"), "--workers", "1"]) == 0
    rec = json.loads(next((tmp_path / "out").rglob("*.json")).read_text())
    lo, hi = rec["quality"]["wavelength_valid_range_angstrom"]
    waves = [l["wavelength"] for l in rec["wavelength_solution"]["lines"]]
    assert lo < min(waves) < max(waves) < hi
    sol = rec["wavelength_solution"]
    assert sol["checks"]["n_lines"] == sol["n_lines"] and sol["checks"]["chance_probability"] < 1e-8
    n_extra = rec["quality"]["wavelength_extrapolated_px"]
    flagged = [f for f in rec["flags"] if f.startswith("wavelength_extrapolated:")]
    assert (n_extra > 0) == bool(flagged)
    if flagged:
        assert flagged[0] == f"wavelength_extrapolated:{n_extra}px:valid_{lo:.0f}-{hi:.0f}A"
