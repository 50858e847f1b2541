"""Render time of a 3000 x 2000 spectrograph frame (science and arc), ROSACE
renderer vs a straightforward full-frame numpy renderer of the same model.

ROSACE way: per-instrument grids cached, the star drawn only on a band of
rows around its trace, lamp/sky lines from a tabulated sub-pixel profile,
float32, gaussian shot + read noise.
Reference way: every pixel gets its own (u, v) slit coordinates, the spectrum
interpolated at every pixel, arc lines as erf differences over the whole
frame, float64 and exact Poisson noise.

Usage: python benchmarks/bench_render.py [--repeat N] [--instrument alpy600]
The last line is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "modules"))

from rosace_core.astro import configure_offline  # noqa: E402
from rosace_sim.render import Renderer, Star  # noqa: E402
from rosace_sim.render.spectrum import slit_profile  # noqa: E402

WHEN = datetime(2026, 11, 24, 22, 0, tzinfo=timezone.utc)
SITE = (43.6, 1.44, 150.0)


CPU: dict[str, list[float]] = {}


def timed(fn, repeat: int, name: str = "") -> list[float]:
    """Wall-clock times of ``repeat`` calls; the process CPU times go to CPU[name].

    On a shared machine the wall clock includes waiting for a core; the CPU
    time is what the call costs on an idle one (numpy runs single-threaded here).
    """
    out = []
    for _ in range(repeat):
        gc.collect()
        c = time.process_time()
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
        CPU.setdefault(name, []).append(time.process_time() - c)
    return out


def reference_science(r: Renderer, star: Star, rng) -> np.ndarray:
    """The same model, rendered the straightforward way over every pixel."""
    from scipy.ndimage import gaussian_filter1d

    from rosace_sim.render import atmosphere
    from rosace_sim.render.spectrum import OVERSAMPLE, V0_PHOTONS

    ins = r.instrument
    g = r._fine_grid()
    norm = star.normalised_spectrum(g["wavelength"], WHEN, min_width=g["step"])
    f = V0_PHOTONS * 10 ** (-0.4 * star.vmag) * star.photon_continuum(g["wavelength"]) * norm
    f *= ins.collecting_area_cm2 * g["response"] * atmosphere.extinction(g["wavelength"], 1.2) * atmosphere.telluric_transmission(g["wavelength"], 1.2, tau=g["tau"]) * g["dlam"]
    f = gaussian_filter1d(f, ins.lsf_fwhm_px / 2.3548 * OVERSAMPLE)
    y, x = np.mgrid[0 : ins.ny, 0 : ins.nx].astype(np.float64)
    u = x.copy()
    for _ in range(3):
        v = y - ins.trace(u)
        u = x - ins.tilt * v - ins.smile * v * v
    v = y - ins.trace(u)
    prof = slit_profile(2.5, ins.slit_width, ins.spatial_scale, 0.0)
    w = np.interp(v + 0.5, prof["rows"], prof["cumulative"]) - np.interp(v - 0.5, prof["rows"], prof["cumulative"])
    e = np.interp(u, g["u"], f) * w * 10.0
    e += ins.grid("illumination")[:, None] * 0.01 + 0.01
    img = rng.poisson(e) + rng.normal(0, ins.read_noise, e.shape)
    return np.clip(np.rint(img / ins.gain + ins.bias_level), 0, 65535).astype(np.uint16)


def reference_arc(r: Renderer, rng) -> np.ndarray:
    """Arc lines as erf differences on each line's window of columns, float64, exact Poisson noise."""
    from scipy.special import ndtr

    ins = r.instrument
    lines = ins.arc_lines()
    uc = ins.column_of([ln.wavelength for ln in lines])
    sigma = ins.lsf_fwhm_px / 2.3548
    y = np.arange(ins.ny, dtype=np.float64)[:, None]
    e = np.zeros((ins.ny, ins.nx))
    half = int(6 * sigma) + 1
    for c, ln in zip(uc, lines):
        v = y - ins.trace(c)
        xc = c + ins.tilt * v + ins.smile * v * v
        lo, hi = max(int(xc.min()) - half, 0), min(int(xc.max()) + half + 1, ins.nx)
        if hi <= lo:
            continue
        x = np.arange(lo, hi, dtype=np.float64)[None, :]
        e[:, lo:hi] += ln.intensity * ins.render["arc_rate"] * 2.0 * sigma * 2.5066 * (ndtr((x + 0.5 - xc) / sigma) - ndtr((x - 0.5 - xc) / sigma))
    img = rng.poisson(e) + rng.normal(0, ins.read_noise, e.shape)
    return np.clip(np.rint(img / ins.gain + ins.bias_level), 0, 65535).astype(np.uint16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--instrument", default="alpy600")
    ap.add_argument("--reference-repeat", type=int, default=1)
    args = ap.parse_args()
    configure_offline()
    rng = np.random.default_rng(1)
    star = Star("gam Cas", 14.177, 60.717, 2.39, "B0.5IVe", be_emission={"ew": -30.0})

    t0 = time.perf_counter()
    r = Renderer(args.instrument)
    img, truth = r.science(star, exposure=10.0, airmass=1.2, time=WHEN, site=SITE, rng=rng)
    cold = time.perf_counter() - t0
    shape = list(img.shape)

    def science():
        r.science(star, exposure=10.0, airmass=1.2, time=WHEN, site=SITE, rng=rng)

    sci = timed(science, args.repeat, "science")
    # Steady state: the scratch buffers already exist (they are reported apart).
    tracemalloc.start()
    science()
    _, peak_sci = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    r.arc(exposure=2.0, rng=rng)
    _, peak_arc = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    arc = timed(lambda: r.arc(exposure=2.0, rng=rng), args.repeat, "arc")
    flat = timed(lambda: r.flat(exposure=5.0, rng=rng), max(3, args.repeat // 2))
    bias = timed(lambda: r.bias(rng=rng), max(3, args.repeat // 2))
    binned = timed(lambda: r.science(star, exposure=10.0, binning=(2, 2), rng=rng), max(3, args.repeat // 2))

    ref_sci = timed(lambda: reference_science(r, star, rng), args.reference_repeat, "ref_science")
    ref_arc = timed(lambda: reference_arc(r, rng), args.reference_repeat, "ref_arc")
    tracemalloc.start()
    reference_science(r, star, rng)
    _, peak_ref = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    workspace = sum(b.nbytes for b in (r._work or {}).values())
    med = statistics.median
    print(f"instrument {args.instrument}, frame {shape[1]} x {shape[0]} (columns x rows)")
    print(f"first frame (grids built, astropy loaded): {cold:.2f} s")
    print(f"science: median {med(sci):.3f} s of {len(sci)} (min {min(sci):.3f}); reference {med(ref_sci):.3f} s -> {med(ref_sci) / med(sci):.1f}x")
    print(f"arc:     median {med(arc):.3f} s (min {min(arc):.3f}); reference {med(ref_arc):.3f} s -> {med(ref_arc) / med(arc):.1f}x")
    print(f"CPU time (what an idle core needs): science {med(CPU['science']):.3f} s, arc {med(CPU['arc']):.3f} s; reference science {med(CPU['ref_science']):.3f} s, arc {med(CPU['ref_arc']):.3f} s")
    print(f"flat {med(flat):.3f} s, bias {med(bias):.3f} s, science 2x2 binned {med(binned):.3f} s")
    print(f"peak memory per frame: science {peak_sci / 1e6:.0f} MB, arc {peak_arc / 1e6:.0f} MB (+ {workspace / 1e6:.0f} MB of scratch buffers kept by the Renderer); reference science {peak_ref / 1e6:.0f} MB")
    print(json.dumps({
        "benchmark": "render",
        "instrument": args.instrument,
        "shape": shape,
        "science_s": round(med(sci), 4),
        "arc_s": round(med(arc), 4),
        "flat_s": round(med(flat), 4),
        "bias_s": round(med(bias), 4),
        "science_binned2_s": round(med(binned), 4),
        "science_cpu_s": round(med(CPU["science"]), 4),
        "arc_cpu_s": round(med(CPU["arc"]), 4),
        "first_frame_s": round(cold, 3),
        "reference_science_s": round(med(ref_sci), 4),
        "reference_arc_s": round(med(ref_arc), 4),
        "science_speedup": round(med(ref_sci) / med(sci), 1),
        "arc_speedup": round(med(ref_arc) / med(arc), 1),
        "peak_mb_science": round(peak_sci / 1e6, 1),
        "peak_mb_arc": round(peak_arc / 1e6, 1),
        "peak_mb_reference_science": round(peak_ref / 1e6, 1),
        "scratch_buffers_mb": round(workspace / 1e6, 1),
        "goal_science_s": 0.2,
        "goal_met_wall": med(sci) < 0.2,
        "goal_met_cpu": med(CPU["science"]) < 0.2,
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }))


if __name__ == "__main__":
    main()
