"""Wavelength calibration on real arcs with published solutions (arc_corpus.py cites each).

The contract: an arc is either accepted with a solution that agrees with the
published one (inside the solution's valid range: RMS <= 0.3 px, every pixel
within 1 px) or refused with a WavelengthError. Never accepted and wrong.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # arc_corpus.py beside this file (pytest runs with --import-mode=importlib)
from arc_corpus import CORPUS, increasing, perturbed, quadratic_nominal  # noqa: E402
from rosace_reduction.wavelength import WavelengthError, identify, load_line_lists  # noqa: E402

RMS_BOUND, MAX_BOUND = 0.3, 1.0  # px, against the published solution


def solve(arc, offset=30.0, scale=1.01, linear=False):
    """(published wavelengths, solution or None when refused) from a nominal ``offset`` px off and ``scale`` x the dispersion."""
    loaded = arc.load()
    if loaded is None:
        pytest.skip("pykosmos (dev extra; the CI installs it) not installed")
    wave, flux = increasing(*loaded)
    u = np.arange(len(wave)) - len(wave) / 2
    base = np.polyval(np.polyfit(u, wave, 1), u) if linear else quadratic_nominal(wave)
    try:
        sol = identify(flux, perturbed(base, offset, scale), load_line_lists(list(arc.lists)), fwhm=arc.fwhm, order=3,
                       search_shift=160, search_scale=0.035)
    except WavelengthError as exc:
        assert "refused" in str(exc) or "identified" in str(exc) or "lines" in str(exc)
        return wave, None
    return wave, sol


def error_px(wave, sol):
    x = np.arange(len(wave))
    inside = ~sol.extrapolated(x)
    return (np.abs(sol(x) - wave) / np.abs(np.gradient(wave)))[inside]


def test_corpus_spans_the_resolving_powers():
    assert len(CORPUS) >= 20
    assert {"pykosmos", "pypeit"} <= {a.source for a in CORPUS}


@pytest.mark.parametrize("arc", CORPUS, ids=[a.name for a in CORPUS])
def test_arc_is_right_or_refused(arc):
    wave, sol = solve(arc)
    if sol is None:
        return
    err = error_px(wave, sol)
    assert np.sqrt(np.mean(err**2)) <= RMS_BOUND + arc.published_px and err.max() <= MAX_BOUND + arc.published_px, f"{arc.name}: accepted with a wrong solution"
    assert sol.rms_px <= 0.25


# Arcs the solver must accept (their figures are in docs/benchmarks.md): a solver that refuses everything fails here.
MUST_SOLVE = ["ArRed0.86-high", "ArRed1.18-ctr", "KrRed0.86-high", "DIS_R300", "keck_kcwi_BH2", "keck_esi_ECH_order9"]


@pytest.mark.parametrize("name", MUST_SOLVE)
def test_arc_is_solved(name):
    arc = next(a for a in CORPUS if a.name == name)
    wave, sol = solve(arc)
    assert sol is not None, f"{name} refused"
    assert np.sqrt(np.mean(error_px(wave, sol) ** 2)) <= RMS_BOUND


SWEEP_ARCS = ["ArRed1.18-ctr", "NeRed1.18-ctr", "DIS_B400", "keck_kcwi_BH2", "vlt_xshooter_vis1x1_order24", "keck_esi_ECH_order9"]


@pytest.mark.slow
@pytest.mark.parametrize("name", SWEEP_ARCS)
def test_nominal_error_sweep_gives_no_silently_wrong_solution(name):
    """Offsets to +-150 px, dispersion +-3 %, and a linear nominal on the curved solution: right or refused, never wrong."""
    arc = next(a for a in CORPUS if a.name == name)
    wrong = []
    cases = [(o, s) for o in (-150.0, -60.0, 60.0, 150.0) for s in (0.97, 1.03)] + [(0.0, 1.0)]
    for linear in (False, True):
        for offset, scale in cases:
            wave, sol = solve(arc, offset, scale, linear)
            if sol is None:
                continue
            err = error_px(wave, sol)
            if err.max() > MAX_BOUND + arc.published_px:
                wrong.append((linear, offset, scale, round(float(err.max()), 1)))
    assert wrong == []
