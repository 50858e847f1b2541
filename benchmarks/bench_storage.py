"""Storage benchmark: concurrent dome state saves, and the cost of the disk check before each exposure.

1. 80 lease requests at once (16 client threads, real HTTP) on the dome module
   served against the simulated observatory, twice in one run:

   - ROSACE: the state saved under the controller's lock with
     ``rosace_core.state.atomic_write_json`` (unique temporary name, fsync, rename);
   - reference: the previous save (built and written outside the lock through one
     shared ``dome.tmp`` name, then renamed), put back for the run.

   Figures: "cannot save" errors logged, leases in the state file afterwards
   (every lease answered 201 should be there; a state file that is no longer JSON
   counts none), request latency p50/p99. ``--runs`` repeats the pair.

2. ``rosace_sequencer.frames.free_gb`` on a raw folder of ``--frames`` files
   (50 nights x targets), without and with ``disk_quota_gb`` (which walks the
   folder): the cost the sequencer now pays before every exposure.

    python benchmarks/bench_storage.py                # about 1 minute
    python benchmarks/bench_storage.py --frames 2000  # quick look

The last line is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "modules"))

SCENARIO = {
    "name": "bench-storage",
    "clock": {"start": "2026-01-15T22:00:00Z", "rate": 1.0},
    "shelter": {"type": "rolloff", "shutter_time": 1.0},
    "weather": {"update_interval": 5, "timeline": [{"at": "+0s", "cloud_cover": 0, "rain_rate": 0, "wind_speed": 3, "humidity": 55}]},
}


def reference_save(self) -> None:
    """The dome's save before this change: outside the lock, one shared temporary name."""
    if self.state_file is None:
        return
    data = {"version": 1, "saved": self.now().isoformat(), "leases": [lease.to_dict() for lease in self.leases.active()], **self.journal.dump()}
    try:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, self.state_file)
    except OSError as exc:
        logging.getLogger("rosace_dome.shelter").error("cannot save the dome state to %s: %s", self.state_file, exc)


class _Count(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.n = 0

    def emit(self, record):
        if "cannot save" in record.getMessage():
            self.n += 1


def leases_run(sim_url: str, folder: Path, reference: bool, n: int = 80, threads: int = 16) -> dict:
    from rosace_core.config import config_from_dict
    from rosace_core.rest import BackgroundServer
    from rosace_dome.api import create_app
    from rosace_dome.client import DomeClient
    from rosace_dome.shelter import Shelter
    from rosace_sim import devices_config

    cfg = config_from_dict({"devices": devices_config(sim_url, retries=1), "data": {"root": str(folder)},
                            "dome": {"poll_period": 1.0, "lease_max_duration": 3600}})
    original = Shelter._save_state
    if reference:
        Shelter._save_state = reference_save
    counter = _Count()
    logging.getLogger("rosace_dome").addHandler(counter)
    app = create_app(cfg, token="b")
    shelter = app.extensions["rosace_dome"]
    try:
        with BackgroundServer(app) as server:
            DomeClient(server.url, token="b").wait_until_up()

            def take(i):
                c = DomeClient(server.url, token="b")
                t0 = time.perf_counter()
                try:
                    c.acquire_lease(f"bench-{i}", 600)
                    return time.perf_counter() - t0
                finally:
                    c.session.close()

            with ThreadPoolExecutor(threads) as pool:
                times = sorted(pool.map(take, range(n)))
        try:
            saved = json.loads(shelter.state_file.read_text(encoding="utf-8"))
            corrupt = False
        except ValueError:  # two writers interleaved in the shared temporary file
            saved, corrupt = {}, True
    finally:
        shelter.stop()
        Shelter._save_state = original
        logging.getLogger("rosace_dome").removeHandler(counter)
    return {"errors": counter.n, "leases_saved": len(saved.get("leases", [])), "state_file_corrupt": corrupt, "requests": n,
            "p50_ms": round(1000 * statistics.median(times), 1), "p99_ms": round(1000 * times[min(n - 1, int(0.99 * n))], 1)}


def check_cost(folder: Path, frames: int, repeat: int = 20) -> dict:
    from rosace_sequencer.frames import free_gb

    raw = folder / "raw"
    per = max(1, frames // 50)
    for night in range(50):
        d = raw / f"202601{night:02d}" / "gam_Cas"
        d.mkdir(parents=True, exist_ok=True)
        for k in range(per):
            with open(d / f"obs-{k}_05_LIGHT_{k:03d}.fits", "wb") as fh:
                fh.truncate(4_000_000)  # sparse: the walk reads sizes, not contents
    out = {"frames": per * 50}
    for label, quota in (("disk_only_ms", None), ("with_quota_ms", 500.0)):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            free_gb(raw, quota)
            times.append(time.perf_counter() - t0)
        out[label] = round(1000 * statistics.median(times), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    from rosace_sim.testing import SimObservatory

    logging.basicConfig(level=logging.CRITICAL)
    result = {}
    with tempfile.TemporaryDirectory() as tmp, SimObservatory(SCENARIO) as sim:
        tmp = Path(tmp)
        runs = {"leases_rosace": [], "leases_reference": []}
        for i in range(args.runs):
            runs["leases_rosace"].append(leases_run(sim.url, tmp / f"new{i}", reference=False))
            runs["leases_reference"].append(leases_run(sim.url, tmp / f"old{i}", reference=True))
        for k, rs in runs.items():
            result[k] = {"errors": [r["errors"] for r in rs], "leases_saved": [r["leases_saved"] for r in rs],
                         "corrupt_runs": sum(r["state_file_corrupt"] for r in rs), "requests": rs[0]["requests"],
                         "p50_ms": statistics.median(r["p50_ms"] for r in rs), "p99_ms": max(r["p99_ms"] for r in rs)}
        for k, rs in runs.items():
            for r in rs:
                print(f"{k}: {r['errors']} 'cannot save' errors, {r['leases_saved']}/{r['requests']} leases in the state file"
                      f"{' (state file corrupt: not JSON)' if r['state_file_corrupt'] else ''}, "
                      f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms")
        result["disk_check"] = check_cost(tmp / "data", args.frames)
        d = result["disk_check"]
        print(f"disk check before an exposure ({d['frames']} frames under raw/): {d['disk_only_ms']} ms, with a quota {d['with_quota_ms']} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
