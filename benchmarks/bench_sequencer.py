"""Sequencer benchmark: dead time per exposure and the overhead of one observation, by step.

1. Dead time at a simulator clock rate of 1: the wall time between "image ready"
   of one exposure and the start of the next, and between consecutive exposure
   starts beyond exposure + readout. ROSACE way: ``ObservationContext.take_frames``
   (download, then header + FITS write in a background thread while the next
   exposure runs). Reference way: the usual script loop with plain alpyca (poll
   ImageReady every 0.5 s, download, write the FITS, then start the next).
2. Overhead of one complete observation (default sequence, accelerated clock),
   broken down by step, in simulated seconds, beyond the science exposure time.

Run: ``python benchmarks/bench_sequencer.py [--frames 5] [--exposure 2]``.
The last line is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "modules"))

from rosace_core.astro import configure_offline  # noqa: E402
from rosace_core.clock import get_clock  # noqa: E402
from rosace_core.config import config_from_dict  # noqa: E402
from rosace_core.observing_file import ObservingFile, load_observing_file  # noqa: E402
from rosace_core.resources import resource_path  # noqa: E402

DEVICES = [("dome", 0), ("telescope", 0), ("spectro_camera", 0), ("guide_camera", 1), ("switch", 0), ("safety_monitor", 0),
           ("observing_conditions", 0)]


def scenario(rate: float) -> dict:
    data = yaml.safe_load(resource_path("scenarios", "clear.yaml").read_text())
    data["clock"]["rate"] = rate
    data["shelter"]["start_open"] = True
    return data


def config(sim_url: str, root: Path, **options):
    opts = {"use_scheduler": False, "hand_to_reduction": False}
    opts.update(options)
    return config_from_dict({"devices": {k: {"url": sim_url, "device_number": n} for k, n in DEVICES},
                             "data": {"root": str(root)}, "sequencer": opts})


def the_file(frames: int, exposure: float, **seq) -> ObservingFile:
    data = load_observing_file(resource_path("observing_files", "be_gamcas_halpha_alpy.yaml")).to_dict()
    data["sequence"].update({"science": {"count": frames, "exposure": exposure}, "bias_dark": "none"})
    data["sequence"].update(seq)
    return ObservingFile.model_validate(data)


def rosace_dead_time(sim, root: Path, frames: int, exposure: float) -> dict:
    """Time the sequencer's own exposure loop (science step only, camera already cooled)."""
    from rosace_sequencer import hardware
    from rosace_sequencer.service import Sequencer

    marks: list[tuple[str, float]] = []
    original = hardware.Hardware.expose

    def timed(self, camera, seconds, **kw):
        start_exposure, read_image = camera.start_exposure, camera.read_image

        def start(s, light):
            marks.append(("start", time.perf_counter()))
            start_exposure(s, light)

        def read():
            marks.append(("ready", time.perf_counter()))
            return read_image()

        camera.start_exposure, camera.read_image = start, read
        try:
            exp = original(self, camera, seconds, **kw)
        finally:
            del camera.start_exposure, camera.read_image
        marks.append(("ready+downloaded", time.perf_counter()))
        return exp

    hardware.Hardware.expose = timed
    try:
        seq = Sequencer(config(sim.url, root, cooling_tolerance=60.0), recover=False)
        of = the_file(frames, exposure, arcs=None, flats=None, steps=["preconditions", "science"])
        job = seq.run_file(of)
        job.wait(600)
        result = job.result or {}
        seq.close()
    finally:
        hardware.Hardware.expose = original
    starts = [t for k, t in marks if k == "start"]
    readies = [t for k, t in marks if k == "ready"]
    ends = [t for k, t in marks if k == "ready+downloaded"]
    gaps = [starts[i + 1] - ends[i] for i in range(len(starts) - 1)]
    ready_to_next = [starts[i + 1] - readies[i] for i in range(len(starts) - 1)]
    cadence = [starts[i + 1] - starts[i] for i in range(len(starts) - 1)]
    return {"outcome": result.get("outcome"), "gap_after_download_s": gaps, "cadence_s": cadence, "ready_to_next_start_s": ready_to_next}


def reference_dead_time(sim, root: Path, frames: int, exposure: float) -> dict:
    """The usual script: poll ImageReady every 0.5 s, download, write the FITS, then the next exposure."""
    from alpaca.camera import Camera
    from astropy.io import fits

    cam = Camera(sim.url.split("//")[1], 0)
    cam.Connected = True
    cam.BinX = cam.BinY = 1
    cam.StartX = cam.StartY = 0
    cam.NumX, cam.NumY = cam.CameraXSize, cam.CameraYSize
    starts, ends, readies = [], [], []
    for n in range(frames):
        starts.append(time.perf_counter())
        cam.StartExposure(exposure, True)
        while not cam.ImageReady:
            time.sleep(0.5)
        readies.append(time.perf_counter())
        data = np.asarray(cam.ImageArray, dtype=np.int32).T  # alpyca's default download
        ends.append(time.perf_counter())
        hdu = fits.PrimaryHDU(np.clip(data, 0, 65535).astype(np.uint16))
        hdu.header["EXPTIME"] = exposure
        hdu.writeto(root / f"ref_{n:03d}.fits", overwrite=True)
    gaps = [starts[i + 1] - ends[i] for i in range(frames - 1)]
    cadence = [starts[i + 1] - starts[i] for i in range(frames - 1)]
    return {"gap_after_download_s": gaps, "cadence_s": cadence, "ready_to_next_start_s": [starts[i + 1] - readies[i] for i in range(frames - 1)]}


def overhead_by_step(rate: float) -> dict:
    """One complete observation with the default sequence; durations by step in simulated seconds."""
    from rosace_sim.testing import SimObservatory
    from rosace_sequencer.service import Sequencer

    with SimObservatory(scenario(rate)) as sim, tempfile.TemporaryDirectory() as tmp:
        seq = Sequencer(config(sim.url, Path(tmp)), recover=False)
        of = the_file(2, 60.0, flats={"lamp": "tungsten", "count": 1, "exposure": 5})
        t0 = time.perf_counter()
        job = seq.run_file(of)
        job.wait(900)
        wall = time.perf_counter() - t0
        result = job.result or {}
        seq.close()
    steps = {k: round(v * rate, 1) for k, v in result.get("durations", {}).items()}
    science = of.exposure_time()
    return {"outcome": result.get("outcome"), "rate": rate, "steps_sim_s": steps, "total_sim_s": round(wall * rate, 1),
            "science_s": science, "overhead_sim_s": round(wall * rate - science, 1),
            "acquisition": (result.get("info") or {}).get("acquisition")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--exposure", type=float, default=2.0)
    parser.add_argument("--overhead-rate", type=float, default=20.0, help="clock rate for the complete-observation run")
    args = parser.parse_args()
    configure_offline()
    from rosace_sim.testing import SimObservatory

    with SimObservatory(scenario(1.0)) as sim, tempfile.TemporaryDirectory() as tmp:
        assert get_clock().rate == 1.0
        ours = rosace_dead_time(sim, Path(tmp) / "rosace", args.frames, args.exposure)
        (Path(tmp) / "ref").mkdir()
        ref = reference_dead_time(sim, Path(tmp) / "ref", args.frames, args.exposure)
        readout = float(sim.observatory.scenario.spectro_camera.readout_time)
    over = overhead_by_step(args.overhead_rate)

    def dead(cadence):  # time between starts beyond exposure and the camera's own readout
        return float(np.median(cadence)) - args.exposure - readout if cadence else None

    ours_dead, ref_dead = dead(ours["cadence_s"]), dead(ref["cadence_s"])
    ours_gap = float(np.median(ours["gap_after_download_s"])) if ours["gap_after_download_s"] else None
    ref_gap = float(np.median(ref["gap_after_download_s"])) if ref["gap_after_download_s"] else None
    # what the sequencer itself adds: from "image ready seen" to the next exposure start (download included)
    ours_r2n = float(np.median(ours["ready_to_next_start_s"]))
    ref_r2n = float(np.median(ref["ready_to_next_start_s"]))
    print(f"frames: {args.frames} x {args.exposure:g} s, full 3000x2000, clock rate 1, camera readout {readout:g} s")
    print(f"ROSACE   : cadence {np.round(ours['cadence_s'], 3).tolist()} s; dead time {ours_dead:.3f} s; gap after download {ours_gap:.3f} s")
    print(f"reference: cadence {np.round(ref['cadence_s'], 3).tolist()} s; dead time {ref_dead:.3f} s; gap after download {ref_gap:.3f} s")
    print(f"image ready -> next exposure start (download included): ROSACE {ours_r2n:.3f} s, reference {ref_r2n:.3f} s")
    print(f"one observation at rate {over['rate']:g}: {over['outcome']}, overhead {over['overhead_sim_s']} s beyond {over['science_s']} s of science")
    for step, secs in over["steps_sim_s"].items():
        print(f"  {step:14s} {secs:8.1f} s")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({
        "ready_to_next_start_s": round(ours_r2n, 3), "ready_to_next_start_reference_s": round(ref_r2n, 3),
        "ready_to_next_ratio_reference_over_rosace": round(ref_r2n / ours_r2n, 2) if ours_r2n > 0 else None,
        "dead_time_between_starts_s": round(ours_dead, 3), "dead_time_between_starts_reference_s": round(ref_dead, 3),
        "gap_after_download_s": round(ours_gap, 3), "gap_after_download_reference_s": round(ref_gap, 3),
        "goal_dead_time_s": 0.5, "observation_overhead_sim_s": over["overhead_sim_s"], "overhead_by_step_sim_s": over["steps_sim_s"],
        "observation_outcome": over["outcome"], "peak_rss_mb": round(peak_mb, 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
