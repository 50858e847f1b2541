"""Desktop benchmark: cold start to a window with five tabs, peak memory, frozen bundle size.

ROSACE way: ``rosace desktop`` in a fresh process (entry-point discovery, five
module tabs with their own widgets or the generic one, status bar, menus),
timed from process start to the moment every tab has its content.
Reference way: a bare PySide6 window with five empty tabs in a fresh process,
i.e. the floor any Qt desktop pays (interpreter + Qt start-up).

Prints a few readable lines, then ONE JSON object on the last line.

    python benchmarks/bench_desktop.py [--runs 3] [--bundle build/dist/rosace] [--local]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("dome", "scheduler", "sequencer", "reduction", "share")

REFERENCE = r"""
import sys, json, time
from PySide6.QtWidgets import QApplication, QMainWindow, QTabWidget, QWidget
from PySide6.QtCore import QTimer
app = QApplication(sys.argv[:1])
w = QMainWindow(); tabs = QTabWidget(); w.setCentralWidget(tabs)
for name in %r:
    tabs.addTab(QWidget(), name)
w.show()
QTimer.singleShot(0, lambda: print(json.dumps({"tabs": tabs.count()}), flush=True))
QTimer.singleShot(%d, app.quit)
app.exec()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int, previous: float = 0.0) -> float:
    """Peak resident memory of a running process (Linux /proc VmHWM), MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return previous


def timed_start(cmd: list[str], linger_ms: int) -> tuple[float, float, dict]:
    """Start ``cmd``; return (seconds until its JSON ready line, peak RSS MB, the JSON)."""
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"), "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    ready_s, info, peak = float("nan"), {}, 0.0
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{"):
            ready_s = time.perf_counter() - started
            info = json.loads(line)
            break
    # Keep sampling memory while the window lives (tabs refreshing).
    while proc.poll() is None:
        peak = max(peak, peak_rss_mb(proc.pid, peak))
        time.sleep(0.05)
    proc.wait(timeout=60)
    return ready_s, peak, info


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bundle", type=Path, default=ROOT / "build" / "dist" / "rosace", help="frozen bundle folder (size reported if present)")
    parser.add_argument("--local", action="store_true", help="also time five local module servers to online (heavy)")
    args = parser.parse_args()

    dead = f"http://127.0.0.1:{free_port()}"
    rosace = [sys.executable, "-m", "rosace_core.cli", "desktop", "--remote", "--report-ready", "--exit-after", "2",
              "--module-url", ",".join(f"{m}={dead}" for m in MODULES), "--only", ",".join(MODULES)]
    reference = [sys.executable, "-c", REFERENCE % (list(MODULES), 2000)]

    ref_times, ref_rss, ros_times, ros_rss, tabs = [], [], [], [], 0
    for _ in range(args.runs):
        t, rss, _info = timed_start(reference, 2000)
        ref_times.append(t)
        ref_rss.append(rss)
        t, rss, info = timed_start(rosace, 2000)
        ros_times.append(t)
        ros_rss.append(rss)
        tabs = info.get("tabs", 0)
    result = {
        "cold_start_s": round(statistics.median(ros_times), 3),
        "cold_start_reference_s": round(statistics.median(ref_times), 3),
        "cold_start_ratio": round(statistics.median(ros_times) / statistics.median(ref_times), 2),
        "tabs": tabs,
        "peak_rss_mb": round(max(ros_rss), 1),
        "peak_rss_reference_mb": round(max(ref_rss), 1),
        "goal_cold_start_s": 3.0,
        "goal_peak_rss_mb": 600,
    }
    print(f"cold start to {tabs} tabs: ROSACE {result['cold_start_s']} s, bare Qt window {result['cold_start_reference_s']} s "
          f"(x{result['cold_start_ratio']}); peak RSS {result['peak_rss_mb']} MB vs {result['peak_rss_reference_mb']} MB")

    if args.local:
        cmd = [sys.executable, "-m", "rosace_core.cli", "desktop", "--local", "--only", ",".join(MODULES), "--exit-after", "45"]
        started = time.perf_counter()
        # Local mode readiness is "every module online"; measured from the desktop log lines.
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        online: set[str] = set()
        assert proc.stderr is not None
        for line in proc.stderr:
            if ": online (" in line:
                online.add(line.split(": online (")[0].rsplit(" ", 1)[-1])
                if online >= set(MODULES):
                    break
        result["local_five_online_s"] = round(time.perf_counter() - started, 2)
        # Let the desktop close itself (--exit-after) so that it stops its servers.
        proc.stderr.read()
        proc.wait(timeout=120)
        print(f"local mode, five servers online: {result['local_five_online_s']} s")

    if args.bundle.exists():
        result["bundle_mb"] = round(folder_mb(args.bundle), 1)
        result["goal_bundle_mb"] = 250
        print(f"frozen bundle {args.bundle}: {result['bundle_mb']} MB")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
