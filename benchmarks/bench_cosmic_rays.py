"""Benchmark: the demo's nova (V 6.8, H-alpha EW -150 A) rendered by the simulator (rosace_sim.render)
and reduced with ROSACE's cosmic-ray search (astroscrappy given a model of the trace as ``inbkg``)
side by side with the reference: astroscrappy as the pipeline called it before (no model of the
trace, cleaned values from a masked 5x5 median). For each case: cosmic-ray pixels found, the rendered
hits, one-column spikes in the spectrum, the quality grade and the reduction time. Also a cosmic-ray
track over half a sky window: the extracted flux's deviation in sigma. Prints one JSON object on its
last line.

    python benchmarks/bench_cosmic_rays.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "rosace_reduction"))

from rosace_core.astro import configure_offline  # noqa: E402
from rosace_reduction import pipeline  # noqa: E402
from rosace_reduction.pipeline import Options, reduce_observation  # noqa: E402
from test_quality import NOVA, render_plan  # noqa: E402  (the tests' renders: one definition of the case)


def old_search(data, setup, mask=None, **_):
    """The reference: astroscrappy without a model of the trace (the pipeline before this fix)."""
    import astroscrappy

    crmask, clean = astroscrappy.detect_cosmics(np.ascontiguousarray(data, dtype=np.float32), inmask=mask, sigclip=5.0, objlim=5.0,
                                                gain=setup.detector.gain, readnoise=setup.detector.read_noise, satlevel=np.inf,
                                                niter=4, cleantype="medmask", sepmed=True)
    return clean.astype(np.float32), crmask


def run(folder: Path, plan, search) -> dict:
    pipeline.clear_cache()
    original = pipeline.remove_cosmic_rays
    if search is not None:
        pipeline.remove_cosmic_rays = search
    try:
        t0 = time.perf_counter()
        rec = reduce_observation(plan, Options(output_root=str(folder)))
        seconds = time.perf_counter() - t0
    finally:
        pipeline.remove_cosmic_rays = original
    q = rec["quality"]
    return {"cr_pixels": q["cosmic_ray_pixels"], "spikes": q["checks"]["spikes"], "masked_light": q["checks"]["masked_light"],
            "grade": q["grade"], "snr": round(q["snr"], 1), "seconds": round(seconds, 2)}


def sky_track() -> dict:
    sys.path.insert(0, str(ROOT / "tests" / "rosace_reduction"))
    from test_extraction import frame

    from rosace_reduction.extraction import extract
    from rosace_reduction.geometry import LineGeometry, find_trace, rectify

    rng = np.random.default_rng(4)
    img, _, flux = frame(rng)
    tr = find_trace(img - 50, order=2, bin_width=20)
    half = 50
    band = rectify(img.astype(np.float32), 0, tr, LineGeometry(), half)
    band[half + 15 : half + 30, 300] += 1500.0
    var = np.clip(band, 1, None) + 9
    ext = extract(band, var, ~np.isfinite(band), half, aperture=8, sky_offset=15, sky_width=30, method="optimal", read_var=9.0, gain=1.0)
    return {"sky_track_pull_sigma": round(float((ext.flux[300] - flux[300]) / np.sqrt(ext.variance[300])), 2)}


def main() -> None:
    configure_offline()
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for label, count, exposure, seeing in (("nova_5x120s_seeing1.0", 5, 120.0, 1.0), ("nova_5x120s_seeing2.5", 5, 120.0, 2.5),
                                               ("nova_1x600s_seeing2.0", 1, 600.0, 2.0)):
            plan, truths = render_plan(tmp / label / "raw", "alpy600", NOVA, count=count, exposure=exposure, seeing=seeing)
            hits = sum(len(t.get("detector", {}).get("cosmic_rays", [])) for t in truths)
            rosace = run(tmp / label / "rosace", plan, None)
            reference = run(tmp / label / "reference", plan, old_search)
            print(f"{label}: rendered hits {hits}; rosace {rosace}; reference (no trace model) {reference}")
            out[label] = {"rendered_hits": hits, "rosace": rosace, "reference": reference}
    out.update(sky_track())
    print(f"cosmic-ray track over half a sky window: {out['sky_track_pull_sigma']} sigma")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
