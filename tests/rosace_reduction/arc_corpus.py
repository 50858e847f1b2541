"""Real arc spectra with published wavelength solutions (the wavelength-calibration regression corpus).

Each arc: the published solution (air wavelength of every pixel), the flux,
the lamp's line lists, the line FWHM in pixels and where it comes from.

- KOSMOS (APO 3.5 m) Ne, Ar, Kr arcs, blue and red grisms at three slit
  positions, and APO DIS B400/R300 HeNeAr arcs: ``pykosmos`` (PyPI, MIT
  licence), ``pykosmos/resources/arctemplates/*.spec`` (developed in
  github.com/jradavenport/kosmos-arc), read from the installed package (the
  CI installs it; the arcs skip without it). Air wavelengths.
- Keck KCWI BH2 and KCRM RH3 (FeAr), VLT X-shooter VIS orders 28/24/20
  (ThAr) and Keck ESI echellette orders 12/9 (CuAr+Ne+Hg+Xe): PypeIt's
  wavelength templates ``pypeit/data/arc_lines/reid_arxiv/{keck_kcwi_BH2,
  keck_kcrm_RH3, vlt_xshooter_vis1x1, keck_esi_ECH}.fits`` (PypeIt,
  BSD-3-Clause, github.com/pypeit/PypeIt commit 35e103c10cc6), committed
  here as ``data/arcs/*.npz``: vacuum wavelengths converted to air with
  specutils' ``vac_to_air``, flux as float32.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data" / "arcs"


@dataclass(frozen=True)
class Arc:
    name: str
    instrument: str
    lists: tuple[str, ...]
    fwhm: float  # px, as a set-up would declare it
    source: str
    published_px: float = 0.0  # how far the published solution itself misses the NIST lines (px), added to the test's bound

    def load(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(published air wavelength per pixel, flux), increasing pixel; None when the package is not installed."""
        if self.source == "pykosmos":
            spec = importlib.util.find_spec("pykosmos")
            if spec is None or not spec.submodule_search_locations:
                return None
            path = Path(list(spec.submodule_search_locations)[0]) / "resources" / "arctemplates" / f"{self.name}.spec"
            data = np.genfromtxt(path, delimiter=",", names=True)
            return np.asarray(data["wave"], float), np.asarray(data["flux"], float)
        z = np.load(DATA / f"{self.name}.npz")
        return np.asarray(z["wave"], float), np.asarray(z["flux"], float)


def _kosmos() -> list[Arc]:
    lamps = {"Ne": ("ne",), "Ar": ("ar",), "Kr": ("kr",)}
    out = []
    for lamp, lists in lamps.items():
        for grism in ("Blue", "Red"):
            for slit in ("0.86-high", "1.18-ctr", "2.0-low"):
                # Line FWHM (px) grows with the slit width: R ~ 2800, 2100 and 800.
                fwhm = {"0.86-high": 2.7, "1.18-ctr": 3.5, "2.0-low": 8.0}[slit]
                out.append(Arc(f"{lamp}{grism}{slit}", f"APO 3.5m KOSMOS {grism.lower()} grism, {lamp} lamp, slit {slit}", lists, fwhm, "pykosmos"))
    return out


CORPUS: list[Arc] = _kosmos() + [
    # Its published solution puts Ne 6143.06 A 1.2 px from the line's centroid (the red end of its fit).
    Arc("DIS_B400", "APO 3.5m DIS B400, HeNeAr", ("he", "ne", "ar"), 3.0, "pykosmos", published_px=0.5),
    Arc("DIS_R300", "APO 3.5m DIS R300, HeNeAr", ("he", "ne", "ar"), 3.0, "pykosmos"),
    Arc("keck_kcwi_BH2", "Keck KCWI BH2, FeAr", ("fe", "ar"), 2.2, "pypeit"),
    Arc("keck_kcrm_RH3", "Keck KCRM RH3, FeAr", ("fe", "ar"), 2.2, "pypeit"),
    Arc("vlt_xshooter_vis1x1_order28", "VLT X-shooter VIS order 28, ThAr", ("thar",), 4.5, "pypeit"),
    Arc("vlt_xshooter_vis1x1_order24", "VLT X-shooter VIS order 24, ThAr", ("thar",), 4.5, "pypeit"),
    Arc("vlt_xshooter_vis1x1_order20", "VLT X-shooter VIS order 20, ThAr", ("thar",), 4.5, "pypeit"),
    Arc("keck_esi_ECH_order12", "Keck ESI order 12, CuAr+Ne+Hg+Xe", ("cu", "ar", "ne", "hg", "xe"), 3.0, "pypeit"),
    Arc("keck_esi_ECH_order9", "Keck ESI order 9, CuAr+Ne+Hg+Xe", ("cu", "ar", "ne", "hg", "xe"), 3.0, "pypeit"),
]


def increasing(wave: np.ndarray, flux: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (wave, flux) if wave[-1] > wave[0] else (wave[::-1].copy(), flux[::-1].copy())


def quadratic_nominal(wave: np.ndarray) -> np.ndarray:
    """The set-up's nominal solution a user would write: a quadratic through the published one."""
    x = np.arange(len(wave)) - len(wave) / 2
    return np.polyval(np.polyfit(x, wave, 2), x)


def perturbed(nominal: np.ndarray, offset: float, scale: float) -> np.ndarray:
    """A nominal solution ``offset`` px off with its dispersion ``scale`` x the true one (about the centre)."""
    n = len(nominal)
    x = np.arange(n, dtype=float)
    xc = n / 2
    return _extrapolated(nominal, (x - xc) * scale + xc + offset)


def _extrapolated(nominal: np.ndarray, x: np.ndarray) -> np.ndarray:
    n = len(nominal)
    u = np.arange(n) - n / 2
    return np.polyval(np.polyfit(u, nominal, 3), x - n / 2)
