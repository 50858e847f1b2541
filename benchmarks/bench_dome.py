"""Dome benchmark: latency from "the weather turns unsafe" to the close command.

The simulated observatory runs in-process, its clock at rate 1 (a winter night), with a
fast roof (1 s moves). Each trial opens the roof, waits a random fraction of
the poll period (so the change falls anywhere between two polls), turns the
weather unsafe on the simulator (rain) and measures the wall time until the
module issues the shutter close command (its event, recorded just before the
Alpaca call). The mount is parked, so the close command is the first action.

Two loops, one run, same simulator, same 1 s poll period:

- ROSACE: the dome module's full verdict (SafetyMonitor, four weather
  quantities with their ages, the sun) through rosace_core.alpaca, served by
  its REST server;
- reference: the bare minimum a script would do with alpyca directly,
  ``while True: if not SafetyMonitor.IsSafe: Dome.CloseShutter()`` every second.

    python benchmarks/bench_dome.py               # 50 trials each (about 4 minutes)
    python benchmarks/bench_dome.py --trials 10   # quick look

The last line is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "modules"))

from rosace_core.astro import configure_offline  # noqa: E402

SCENARIO = {
    "name": "bench-dome",
    "clock": {"start": "2026-01-15T22:00:00Z", "rate": 1.0},
    "shelter": {"type": "rolloff", "shutter_time": 1.0},
    "weather": {"update_interval": 5, "timeline": [{"at": "+0s", "cloud_cover": 0, "rain_rate": 0, "wind_speed": 3, "humidity": 55}]},
}


def wait_for(predicate, timeout: float = 30.0, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(step)


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process in MB (None where the platform does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024 / (1024 if sys.platform == "darwin" else 1), 1)


def percentiles(values: list[float]) -> dict:
    a = np.asarray(values)
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max()), "mean": float(a.mean())}


def run_rosace(sim, trials: int, poll: float, rng: random.Random) -> list[float]:
    """Latencies (s) of the dome module from unsafe to the shutter close command."""
    from rosace_core.config import config_from_dict
    from rosace_core.rest import BackgroundServer
    from rosace_dome.api import create_app
    from rosace_dome.client import DomeClient

    tmp = Path(tempfile.mkdtemp(prefix="bench-dome-"))
    devices = {n: {"url": sim.url, "device_number": 0} for n in ("dome", "telescope", "safety_monitor", "observing_conditions")}
    cfg = config_from_dict({
        "devices": devices, "data": {"root": str(tmp)},
        "dome": {"poll_period": poll, "reopen_delay": 0, "shutter_timeout": 30, "close_retry": 1},
    })
    app = create_app(cfg, token="bench")
    shelter = app.extensions["rosace_dome"]
    commanded: list[float] = []
    shelter.journal.listeners.append(lambda e: commanded.append(time.time()) if e.data.get("command") == "close_shutter" else None)
    latencies = []
    with BackgroundServer(app) as server:
        client = DomeClient(server.url, token="bench")
        wait_for(lambda: client.status()["shelter"]["state"] == "closed")
        for i in range(trials):
            wait_for(lambda: client.status()["can_open"])
            job = client.open(source="bench")
            client.wait_job(job["id"], timeout=30, poll=0.05)
            time.sleep(rng.uniform(0, poll))
            commanded.clear()
            t0 = time.time()
            sim.control.set_weather(rain_rate=2.0)
            wait_for(lambda: bool(commanded), timeout=30, step=0.005)
            latencies.append(commanded[0] - t0)
            wait_for(lambda: client.status()["shelter"]["state"] == "closed")
            sim.control.set_weather(rain_rate=0.0)
            print(f"  rosace trial {i + 1:3d}: {latencies[-1]:.3f} s", file=sys.stderr)
        client.session.close()
    shelter.stop()
    return latencies


def run_reference(sim, trials: int, poll: float, rng: random.Random) -> list[float]:
    """Latencies (s) of a bare alpyca loop: IsSafe every ``poll`` s, CloseShutter when unsafe."""
    from alpaca.dome import Dome
    from alpaca.safetymonitor import SafetyMonitor

    address = sim.url.split("://", 1)[1]
    monitor, dome = SafetyMonitor(address, 0), Dome(address, 0)
    monitor.Connected = True
    dome.Connected = True
    commanded: list[float] = []
    stop = threading.Event()

    def loop():
        next_tick = time.monotonic()
        while not stop.is_set():
            try:
                if not monitor.IsSafe and dome.ShutterStatus in (0, 2):
                    commanded.append(time.time())
                    dome.CloseShutter()
            except Exception as exc:  # keep looping, as a watchdog script would
                print(f"  reference loop: {exc}", file=sys.stderr)
            next_tick += poll
            stop.wait(max(0.0, next_tick - time.monotonic()))

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    latencies = []
    for i in range(trials):
        dome.OpenShutter()
        wait_for(lambda: dome.ShutterStatus == 0)
        time.sleep(rng.uniform(0, poll))
        commanded.clear()
        t0 = time.time()
        sim.control.set_weather(rain_rate=2.0)
        wait_for(lambda: bool(commanded), timeout=30, step=0.005)
        latencies.append(commanded[0] - t0)
        wait_for(lambda: dome.ShutterStatus == 1)
        sim.control.set_weather(rain_rate=0.0)
        print(f"  reference trial {i + 1:3d}: {latencies[-1]:.3f} s", file=sys.stderr)
    stop.set()
    thread.join(5)
    return latencies


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=50, help="trials per loop (>= 50 for the p99 figure)")
    parser.add_argument("--poll", type=float, default=1.0, help="poll period, seconds")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args(argv)

    configure_offline()
    from rosace_sim.testing import SimObservatory

    rng = random.Random(args.seed)
    with SimObservatory(SCENARIO) as sim:
        t = time.perf_counter()
        rosace = run_rosace(sim, args.trials, args.poll, rng)
        rosace_wall = time.perf_counter() - t
        rosace_peak = peak_rss_mb()
        t = time.perf_counter()
        reference = run_reference(sim, args.trials, args.poll, rng)
        reference_wall = time.perf_counter() - t

    r, ref = percentiles(rosace), percentiles(reference)
    print(f"poll period {args.poll:g} s, {args.trials} trials each (latency from unsafe to close command)")
    print(f"{'':12s}{'p50 s':>8s}{'p99 s':>8s}{'max s':>8s}{'mean s':>8s}")
    for name, p in (("ROSACE", r), ("reference", ref)):
        print(f"{name:12s}{p['p50']:8.3f}{p['p99']:8.3f}{p['max']:8.3f}{p['mean']:8.3f}")
    print(f"ratio ROSACE/reference: p50 {r['p50'] / ref['p50']:.2f}, p99 {r['p99'] / ref['p99']:.2f}; goal p99 <= 1.5 s: {'met' if r['p99'] <= 1.5 else 'NOT met'}")
    print(f"peak RSS of the process (simulator included) after the ROSACE run: {rosace_peak} MB")
    print(json.dumps({
        "benchmark": "dome_unsafe_to_close_latency",
        "trials": args.trials,
        "poll_period_s": args.poll,
        "rosace_p50_s": round(r["p50"], 3),
        "rosace_p99_s": round(r["p99"], 3),
        "rosace_max_s": round(r["max"], 3),
        "reference_p50_s": round(ref["p50"], 3),
        "reference_p99_s": round(ref["p99"], 3),
        "ratio_p50": round(r["p50"] / ref["p50"], 2),
        "ratio_p99": round(r["p99"] / ref["p99"], 2),
        "goal_p99_s": 1.5,
        "goal_met": r["p99"] <= 1.5,
        "rosace_run_s": round(rosace_wall, 1),
        "reference_run_s": round(reference_wall, 1),
        "peak_rss_mb_with_simulator": rosace_peak,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
