"""The README's first command: a whole demo night, run as a user would, three times from clean folders (one with spaces).

Each run holds back one process's start by 20-30 s (``--slow-start``), as a
loaded machine does: the simulated clock must wait for every process, so the
night starts at the scenario's start and passes all the same. The first run is
at the default rate; the two others at 360x to keep the cost down (the wall
limit follows the rate).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from datetime import datetime

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

RUNS = [
    # (folder name, extra arguments)
    ("my demo night", ["--slow-start", "scheduler=30"]),
    ("second night", ["--rate", "360", "--slow-start", "sequencer=20"]),
    ("third night", ["--rate", "360", "--slow-start", "dome=20"]),
]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def run_demo(folder, extra: list[str]) -> tuple[subprocess.CompletedProcess, dict]:
    result = subprocess.run(
        [sys.executable, "-m", "rosace_core.cli", "demo", "--no-live", "--json", "--folder", str(folder), *extra],
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    verdict = json.loads(result.stdout[result.stdout.index("{"):])
    return result, verdict


def check_night(folder, result, verdict) -> None:
    failed = [c for c in verdict["checks"] if not c["ok"]]
    assert result.returncode == 0 and verdict["passed"], (failed, verdict["events"], verdict["figures"])
    figures = verdict["figures"]
    assert figures["observations_completed"] >= 4
    assert all(s["bess_ok"] for s in verdict["spectra"]) and len(verdict["spectra"]) >= 4
    assert figures["roof_at_end"] == "closed"
    assert figures["peak_memory_all_processes_mb"] < 1536
    # the clock waited for the slow process: the night's first event is at the scenario's start, 16:30
    first = verdict["events"][0]
    assert first.startswith("16:30:0") and "all processes up" in first, verdict["events"][:3]
    # every process of the run is gone: none of its ports answers any more
    config = (folder / "rosace.toml").read_text()
    ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", config)]
    assert ports and not any(port_open(p) for p in set(ports))
    # the summary page was published in the archive
    assert verdict["report_url"] and "/gallery/reports/" in verdict["report_url"]
    # the demo's log is complete, in simulated time (the night of 15-16 December 2026), not the wall clock
    log = (folder / "logs" / "demo.log").read_text(encoding="utf-8")
    stamps = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", log, flags=re.M)
    assert "robotic night started" in log and "started sim" in log and len(stamps) >= 5
    assert all(datetime.fromisoformat(s).date().isoformat() in ("2026-12-15", "2026-12-16") for s in stamps), stamps[:5]
    # the raw frames were removed, and the run says so where they were
    assert figures["raw_frames"].startswith("removed") and (folder / "data" / "raw" / "REMOVED.txt").exists()
    assert figures["frames_taken"] > 0


def test_demo_night_passes_three_times_from_clean_folders_with_a_slow_start(tmp_path):
    for name, extra in RUNS:
        folder = tmp_path / name
        result, verdict = run_demo(folder, extra)
        check_night(folder, result, verdict)
