"""Safety drills benchmark: time from the fault to "roof closed and mount parked", p99 per drill.

Each drill (rosace_dome.drills) runs the dome module and its guardian as real
processes against a real Alpaca server, opens the roof, unparks the mount,
injects the fault and times, straight from the Alpaca devices, until the roof
is closed and the mount parked:

- kill: ``kill -9`` of the dome module, then rain (the guardian acts);
- freeze: SIGSTOP of the dome module, then rain (POSIX only);
- mount_fault: the mount answers driver errors for 60 clock s while open, rain
  meanwhile (the dome module keeps trying to park, then closes) - rosace_sim only;
- server_restart: the Alpaca server restarts with the roof open, no lease held
  (the dome module closes once it answers again; timed from then);
- unreadable_mount: wrong mount device number: the roof must never open (0 s).

Servers: ``rosace_sim`` (ROSACE's simulator, clock at 20x, so clock seconds
include the simulated park slew and 20 s roof travel) and ``alpaca-simulators``
(PyPI; instant moves, our clock at 1x). Reference: the kill drill without the
guardian (the behaviour before it existed): nothing closes the roof.

    python benchmarks/bench_safety_drills.py                 # 5 repetitions of each (about 20 minutes)
    python benchmarks/bench_safety_drills.py --reps 2 --servers rosace_sim

The last line is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "modules"))

from rosace_dome import drills  # noqa: E402


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--servers", nargs="+", default=["rosace_sim", "alpaca-simulators"])
    parser.add_argument("--no-reference", action="store_true", help="skip the no-guardian reference run")
    args = parser.parse_args(argv)

    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-safety-") as tmp:
        folder = Path(tmp)
        for name in args.servers:
            cls = {"rosace_sim": drills.RosaceSim, "alpaca-simulators": drills.AlpacaSimulators}[name]
            missing = cls.available()
            if missing:
                print(f"{name}: skipped ({missing})")
                continue
            server = (cls() if cls is drills.RosaceSim else cls(folder / name)).start()
            try:
                samples: dict[str, dict] = {}
                for rep in range(args.reps):
                    t0 = time.monotonic()
                    # Drills that share one start of the dome module (as the tests run them).
                    results = drills.sequence_freeze_then_kill(server, folder / f"{name}-a{rep}")
                    results += drills.sequence_mount_then_restart(server, folder / f"{name}-b{rep}")
                    results.append(drills.drill_unreadable_mount(server, folder / f"{name}-c{rep}"))
                    for result in results:
                        entry = samples.setdefault(result.drill, {"wall": [], "clock": [], "not_secured": 0})
                        if result.secured:
                            entry["wall"].append(result.wall)
                            entry["clock"].append(result.clock)
                        else:
                            entry["not_secured"] += 1
                        print(f"{name:18s} rep {rep + 1} {result.drill:45s} wall {result.wall} s, clock {result.clock} s", flush=True)
                    print(f"{name:18s} rep {rep + 1} took {time.monotonic() - t0:.0f} s", flush=True)
                for drill, entry in samples.items():
                    walls, clocks = entry["wall"], entry["clock"]
                    figures[f"{name}:{drill}"] = {
                        "reps": args.reps, "not_secured": entry["not_secured"],
                        "wall_p50": percentile(walls, 50), "wall_p99": percentile(walls, 99), "wall_max": max(walls) if walls else None,
                        "clock_p50": percentile(clocks, 50), "clock_p99": percentile(clocks, 99), "clock_max": max(clocks) if clocks else None,
                    }
                if not args.no_reference:
                    ref = drills.drill_kill(server, folder / f"{name}-reference", timeout=30.0, guardian=False)
                    figures[f"{name}:kill_no_guardian_reference"] = {"secured_within_30s_wall": ref.secured, "wall": ref.wall, "clock": ref.clock}
                    print(f"{name:18s} reference (no guardian): {'secured' if ref.secured else 'NOT secured'} within 30 s wall", flush=True)
            finally:
                server.close()
    for key, fig in figures.items():
        print(f"{key}: {fig}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
