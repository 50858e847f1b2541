"""The README's first command: a whole demo night, run as a user would, from a folder with spaces."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_demo_night_meets_its_expectations_and_leaves_nothing_running(tmp_path):
    folder = tmp_path / "my demo night"
    result = subprocess.run(
        [sys.executable, "-m", "rosace_core.cli", "demo", "--no-live", "--json", "--folder", str(folder)],
        capture_output=True, text=True, timeout=840, stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    verdict = json.loads(result.stdout[result.stdout.index("{"):])
    failed = [c for c in verdict["checks"] if not c["ok"]]
    assert result.returncode == 0 and verdict["passed"], failed
    figures = verdict["figures"]
    assert figures["observations_completed"] >= 4
    assert all(s["bess_ok"] for s in verdict["spectra"]) and len(verdict["spectra"]) >= 4
    assert figures["roof_at_end"] == "closed"
    assert figures["peak_memory_all_processes_mb"] < 1536
    # every process of the run is gone: none of its ports answers any more
    config = (folder / "rosace.toml").read_text()
    ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", config)]
    assert ports and not any(port_open(p) for p in set(ports))
    # the summary page was published in the archive
    assert verdict["report_url"] and "/gallery/reports/" in verdict["report_url"]
