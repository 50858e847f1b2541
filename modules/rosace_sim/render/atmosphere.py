"""The atmosphere between the star and the slit: continuum extinction, telluric
O2 and H2O absorption, and the night-sky emission.

Telluric bands are synthetic but placed where the real ones are (O2 B band
6867-6884 A, O2 A band 7594-7621 A, H2O bands around 5900, 6280, 6500-6600,
6900-7000 and 7160-7350 A): each band is a comb of narrow lines drawn from a
fixed seed, so that a given set-up always sees the same lines. Optical depth
scales with airmass (and, for water, with ``pwv_scale``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .instrument import extinction_curve

# (name, first A, last A, number of lines, peak optical depth at airmass 1, line gaussian sigma A, molecule)
TELLURIC_BANDS = [
    ("O2 gamma", 6276.0, 6306.0, 26, 0.05, 0.10, "O2"),
    ("O2 B", 6867.0, 6884.0, 34, 0.9, 0.09, "O2"),
    ("O2 A", 7594.0, 7621.0, 40, 2.5, 0.10, "O2"),
    ("H2O 5900", 5880.0, 5990.0, 40, 0.04, 0.10, "H2O"),
    ("H2O 6500", 6470.0, 6600.0, 45, 0.25, 0.09, "H2O"),
    ("H2O 6900", 6880.0, 7000.0, 60, 0.15, 0.10, "H2O"),
    ("H2O 7200", 7160.0, 7350.0, 120, 0.35, 0.10, "H2O"),
]

# Night-sky emission lines (air A, relative to the continuum per A: an EW in A of continuum).
SKY_LINES = [
    (5577.34, 12.0, "[O I]"),
    (6300.30, 6.0, "[O I]"),
    (6363.78, 2.0, "[O I]"),
    (5889.95, 4.0, "Na I"),
    (5895.92, 3.0, "Na I"),
    (4358.33, 5.0, "Hg I"),
    (5460.74, 7.0, "Hg I"),
    (5769.60, 1.5, "Hg I"),
    (5790.66, 1.5, "Hg I"),
]


@lru_cache(maxsize=1)
def telluric_lines() -> dict[str, np.ndarray]:
    """All telluric lines: centre (A), depth tau at airmass 1, sigma (A), molecule flag (1 = water)."""
    rng = np.random.default_rng(20261124)
    centres, taus, sigmas, water = [], [], [], []
    for _name, lo, hi, n, tau, sig, mol in TELLURIC_BANDS:
        if mol == "O2":
            # P and R branches: doublets evenly spaced, strongest near the head.
            pos = np.linspace(lo + 0.4, hi - 0.3, n // 2)
            pos = np.concatenate([pos, pos + 0.35])
            strength = np.exp(-((pos - lo) / (hi - lo)) * 1.8) * (0.6 + 0.4 * rng.random(pos.size))
        else:
            pos = np.sort(rng.uniform(lo, hi, n))
            strength = rng.random(n) ** 2
        centres.append(pos)
        taus.append(tau * strength)
        sigmas.append(np.full(pos.size, sig))
        water.append(np.full(pos.size, mol == "H2O"))
    return {"centre": np.concatenate(centres), "tau": np.concatenate(taus), "sigma": np.concatenate(sigmas), "water": np.concatenate(water)}


def telluric_optical_depth(wavelength: np.ndarray, min_sigma: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Optical depth at airmass 1 of (O2, H2O) on ``wavelength`` (A, observed frame).

    Lines narrower than ``min_sigma`` (A) are widened keeping their integrated depth.
    """
    wl = np.asarray(wavelength, dtype=np.float64)
    lines = telluric_lines()
    tau_o2 = np.zeros_like(wl)
    tau_h2o = np.zeros_like(wl)
    order = np.argsort(wl)
    ws = wl[order]
    for c, t, s, w in zip(lines["centre"], lines["tau"], lines["sigma"], lines["water"]):
        if s < min_sigma:
            t, s = t * s / min_sigma, min_sigma
        i0, i1 = np.searchsorted(ws, [c - 6 * s, c + 6 * s])
        if i1 <= i0:
            continue
        idx = order[i0:i1]
        prof = t * np.exp(-0.5 * ((wl[idx] - c) / s) ** 2)
        if w:
            tau_h2o[idx] += prof
        else:
            tau_o2[idx] += prof
    return tau_o2, tau_h2o


def telluric_transmission(wavelength: np.ndarray, airmass: float, pwv_scale: float = 1.0, tau: tuple | None = None) -> np.ndarray:
    """Telluric transmission (0-1) at ``airmass``; ``pwv_scale`` multiplies the water column."""
    tau_o2, tau_h2o = tau if tau is not None else telluric_optical_depth(wavelength)
    return np.exp(-airmass * (tau_o2 + pwv_scale * tau_h2o))


def extinction(wavelength: np.ndarray, airmass: float, curve: str = "orm") -> np.ndarray:
    """Continuum transmission 10^(-0.4 k(lambda) X) from ``resources/extinction/<curve>.csv``."""
    wl, k = extinction_curve(curve)
    return 10 ** (-0.4 * np.interp(wavelength, wl, k) * airmass)


def sky_continuum(wavelength: np.ndarray) -> np.ndarray:
    """Relative night-sky continuum photon flux (1 at 5500 A): reddish, as a light-polluted sky is."""
    wl = np.asarray(wavelength, dtype=np.float64)
    return (wl / 5500.0) ** 0.8
