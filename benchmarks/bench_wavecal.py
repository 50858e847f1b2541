"""Benchmark: wavelength calibration on the real-arc corpus (tests/rosace_reduction/arc_corpus.py,
20 KOSMOS/DIS arcs from pykosmos and 7 KCWI/KCRM/X-shooter/ESI arcs from PypeIt's templates),
ROSACE's solver against specreduce 1.9's WavelengthCalibration1D (lines found with specreduce's
find_arc_lines, solution by fit_dispersion's global search) with the same line lists, from the same
nominal solution (a quadratic through the published one, 30 px off, dispersion 1 % off).

For each arc: accepted or refused, RMS and largest error against the published solution (px) over
the range the solution claims (ROSACE: its valid range; specreduce: the span of its matched lines),
and whether an accepted solution is wrong (an error above 1 px there, plus the published solution's
own error where arc_corpus.py gives one). Prints a table, then one
JSON object on its last line.

    python benchmarks/bench_wavecal.py [--only NAME ...] [--no-specreduce] [--sweep]

--sweep: ROSACE only, every arc from 30 nominals each (offset -150, -60, 0, 60, 150 px x
dispersion 0.97, 1.00, 1.03, with the quadratic nominal and with a linear one): how many are
right, refused, wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "rosace_reduction"))
from arc_corpus import CORPUS, increasing, perturbed, quadratic_nominal  # noqa: E402

from rosace_reduction.wavelength import WavelengthError, identify, load_line_lists  # noqa: E402

WRONG_PX = 1.0


def errors(wave, wl, inside):
    err = np.abs(wl - wave)[inside] / np.abs(np.gradient(wave))[inside]
    return float(np.sqrt(np.mean(err**2))), float(err.max())


def rosace(arc, wave, flux, nominal):
    x = np.arange(len(wave))
    t = time.perf_counter()
    try:
        sol = identify(flux, nominal, load_line_lists(list(arc.lists)), fwhm=arc.fwhm, order=3, search_shift=160, search_scale=0.035)
    except WavelengthError as exc:
        return {"accepted": False, "why": str(exc)[:90], "s": time.perf_counter() - t}
    inside = ~sol.extrapolated(x)
    rms, mx = errors(wave, sol(x), inside)
    return {"accepted": True, "rms_px": rms, "max_px": mx, "lines": sol.n_lines, "valid_fraction": float(inside.mean()),
            "self_rms_px": sol.rms_px, "resolving_power": float(np.median(wave) / (sol.fwhm_px * np.median(np.abs(np.gradient(wave))))),
            "s": time.perf_counter() - t}


def specreduce_solve(arc, wave, flux, nominal):
    import astropy.units as u
    from astropy.nddata import StdDevUncertainty
    from specreduce.line_matching import find_arc_lines
    from specreduce.wavecal1d import WavelengthCalibration1D
    from specutils import Spectrum

    n = len(wave)
    x = np.arange(n)
    t = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cont = np.percentile(flux, 20)
            arc1d = flux - cont
            noise = 1.4826 * np.median(np.abs(np.diff(arc1d))) / np.sqrt(2) + 1e-6
            err = np.sqrt(np.clip(arc1d, 0, None) + noise**2)
            sp = Spectrum(flux=arc1d * u.DN, spectral_axis=x * u.pix, uncertainty=StdDevUncertainty(err * u.DN))
            found = find_arc_lines(sp, arc.fwhm * u.pix, noise_factor=10)
            cen = np.asarray(found["centroid"].value, float)
            cen = np.unique(np.round(cen[np.isfinite(cen) & (cen > 0) & (cen < n - 1)], 2))
            ll = load_line_lists(list(arc.lists))
            c, d = float(nominal[n // 2]), float(np.gradient(nominal)[n // 2])
            lo, hi = float(nominal.min()) - 300 * abs(d), float(nominal.max()) + 300 * abs(d)
            wc = WavelengthCalibration1D(obs_lines=[cen], line_lists=[ll.wavelength], pix_bounds=(0, n), ref_pixel=n / 2, line_list_bounds=(lo, hi))
            q = 2 * abs(float(np.polyfit(x - n / 2, nominal, 2)[0])) + 1e-9
            ws = wc.fit_dispersion((c - 160 * abs(d), c + 160 * abs(d)), (0.965 * d, 1.035 * d), higher_order_limits=[q, 1e-9], degree=3,
                                   refine_max_distance=2 * abs(d))
            wl = np.asarray(ws.pix_to_wav(x.astype(float)))
            matched = np.asarray(wc.observed_line_locations[0] if hasattr(wc, "observed_line_locations") else cen, float)
    except Exception as exc:  # specreduce raises assorted errors on arcs it cannot solve
        return {"accepted": False, "why": f"{type(exc).__name__}: {exc}"[:90], "s": time.perf_counter() - t}
    matched = matched[np.isfinite(matched)]
    inside = (x >= matched.min()) & (x <= matched.max()) if len(matched) else np.ones(n, bool)
    rms, mx = errors(wave, wl, inside)
    return {"accepted": True, "rms_px": rms, "max_px": mx, "valid_fraction": float(inside.mean()), "s": time.perf_counter() - t}


def sweep(only) -> None:
    counts = {"right": 0, "refused": 0, "wrong": 0}
    wrong = []
    t = time.perf_counter()
    for arc in CORPUS:
        if only and arc.name not in only:
            continue
        loaded = arc.load()
        if loaded is None:
            continue
        wave, flux = increasing(*loaded)
        u = np.arange(len(wave)) - len(wave) / 2
        for linear in (False, True):
            base = np.polyval(np.polyfit(u, wave, 1), u) if linear else quadratic_nominal(wave)
            for offset in (-150.0, -60.0, 0.0, 60.0, 150.0):
                for scale in (0.97, 1.0, 1.03):
                    r = rosace(arc, wave, flux, perturbed(base, offset, scale))
                    if not r["accepted"]:
                        counts["refused"] += 1
                    elif r["max_px"] > WRONG_PX + arc.published_px:
                        counts["wrong"] += 1
                        wrong.append([arc.name, linear, offset, scale, round(r["max_px"], 2)])
                    else:
                        counts["right"] += 1
    print(json.dumps({"benchmark": "wavecal_sweep", **counts, "total": sum(counts.values()), "wrong_cases": wrong,
                      "seconds": round(time.perf_counter() - t)}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--no-specreduce", action="store_true")
    ap.add_argument("--sweep", action="store_true")
    args = ap.parse_args()
    if args.sweep:
        return sweep(args.only)
    rows = []
    for arc in CORPUS:
        if args.only and arc.name not in args.only:
            continue
        loaded = arc.load()
        if loaded is None:
            continue
        wave, flux = increasing(*loaded)
        nominal = perturbed(quadratic_nominal(wave), 30.0, 1.01)
        r = rosace(arc, wave, flux, nominal)
        s = None if args.no_specreduce else specreduce_solve(arc, wave, flux, nominal)
        for d in (r, s):
            if d is not None:
                d["bound_px"] = WRONG_PX + arc.published_px
        rows.append((arc, r, s))

        def fmt(d):
            if d is None:
                return "-"
            if not d["accepted"]:
                return f"refused ({d['why']})" if "why" in d else "refused"
            return f"{d['rms_px']:.3f} / {d['max_px']:.2f} px{' WRONG' if d['max_px'] > WRONG_PX + arc.published_px else ''}"

        print(f"{arc.name:30s} R~{r.get('resolving_power', 0):6.0f}  rosace: {fmt(r):60s}  specreduce: {fmt(s)}", flush=True)

    def summary(results):
        acc = [d for d in results if d and d["accepted"]]
        right = [d for d in acc if d["max_px"] <= d["bound_px"]]
        return {"arcs": len(results), "accepted": len(acc), "right": len(right), "wrong": len(acc) - len(right),
                "success_rate": round(len(right) / max(len(results), 1), 3),
                "median_rms_px_right": round(float(np.median([d["rms_px"] for d in right])), 3) if right else None,
                "seconds_per_arc": round(float(np.mean([d["s"] for d in results])), 2) if results else None}

    out = {"benchmark": "wavecal", "nominal": "quadratic through the published solution, 30 px off, dispersion x1.01",
           "rosace": summary([r for _, r, _ in rows])}
    if not args.no_specreduce:
        out["specreduce"] = summary([s for _, _, s in rows])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
