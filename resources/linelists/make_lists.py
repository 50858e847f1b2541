"""Rebuild the arc line lists of this folder from PypeIt's line lists (see README.md).

Usage: python resources/linelists/make_lists.py <folder holding PypeIt's pypeit/data/arc_lines/lists/*.dat>

PypeIt lists NIST ASD lines in vacuum with the amplitudes measured on real
arcs; only the lines flagged as NIST lines are kept, converted to air with
specutils' ``vac_to_air`` (Morton 2000), 3400-10200 A. Ne, Ar and He keep the
project's former lists between 3700 and 7520 A (the simulator renders its arcs
from them: adding lines there would change every simulated arc) and take
PypeIt's lines outside that band (He, which no simulated lamp uses, takes
the union of both). ThAr keeps the 1500 strongest lines.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import astropy.units as u
import numpy as np
from specutils.utils.wcs_utils import vac_to_air

HERE = Path(__file__).parent
LO, HI = 3400.0, 10200.0
KEEP_BAND = (3700.0, 7520.0)  # Ne/Ar/He: former lists kept here
SOURCES = {"ne": "NeI", "ar": "ArI", "he": "HeI", "hg": "HgI", "kr": "KrI", "xe": "XeI", "cu": "CuI", "fe": "FeI", "thar": "ThAr"}
ELEMENT = {"NeI": "Ne I", "ArI": "Ar I", "HeI": "He I", "HgI": "Hg I", "KrI": "Kr I", "XeI": "Xe I", "CuI": "Cu I", "FeI": "Fe I"}


def read_pypeit(path: Path) -> list[tuple[float, str, float]]:
    rows = []
    for line in path.read_text().splitlines():
        if not line.startswith("|") or "wave" in line:
            continue
        ion, wave, nist, _instr, amp, *_ = [c.strip() for c in line.strip("|").split("|")]
        if nist != "1" or float(amp) <= 0:
            continue
        rows.append((float(wave), ELEMENT.get(ion, ion), float(amp)))
    return rows


def main(folder: Path) -> None:
    for name, src in SOURCES.items():
        rows = read_pypeit(folder / f"{src}_lines.dat")
        vac = np.array([r[0] for r in rows])
        air = vac_to_air(vac * u.AA).to_value(u.AA)
        new = [(float(a), r[1], r[2]) for a, r in zip(air, rows) if LO <= a <= HI]
        if name == "thar":
            new = sorted(new, key=lambda r: -r[2])[:1500]
        old_path = HERE / f"{name}.csv"
        if name in ("ne", "ar", "he") and old_path.exists():
            with old_path.open(encoding="utf-8") as fh:
                old = [(float(r["wavelength"]), r["element"], float(r["intensity"])) for r in csv.DictReader(fh)]
            # PypeIt's amplitudes put on the former lists' scale through the lines both have.
            both = [(o[2], n[2]) for o in old for n in new if abs(o[0] - n[0]) < 0.05]
            k = float(np.median([a / b for a, b in both])) if both else 1000 / max(r[2] for r in new)
            if name == "he":  # He is no simulated lamp: the union of both lists
                new = old + [(w, e, max(1.0, round(a * k))) for w, e, a in new if min(abs(w - o[0]) for o in old) > 0.05]
            else:
                old = [r for r in old if KEEP_BAND[0] <= r[0] <= KEEP_BAND[1]]
                new = old + [(w, e, max(1.0, round(a * k))) for w, e, a in new if not KEEP_BAND[0] <= w <= KEEP_BAND[1]]
        else:
            # Relative intensities on a 1-1000 scale (the former lists' scale).
            top = max(r[2] for r in new)
            new = [(w, e, max(1.0, round(1000 * a / top))) for w, e, a in new]
        new.sort()
        with old_path.open("w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh, lineterminator="\n")
            out.writerow(["wavelength", "element", "intensity"])
            for w, e, a in new:
                out.writerow([f"{w:.4f}", e, f"{a:g}"])
        print(f"{name}: {len(new)} lines")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
