"""Connection settings, command line and self-test of the desktop."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rosace_core.config import config_from_dict
from rosace_desktop import settings
from rosace_desktop.launch import free_port, rosace_command
from rosace_desktop.window import safety_text


def test_module_urls_are_parsed_and_bad_ones_rejected():
    assert settings.parse_module_urls(["dome=http://obs:8701/", "share=https://s.example,scheduler=http://h:1"]) == {
        "dome": "http://obs:8701", "share": "https://s.example", "scheduler": "http://h:1"}
    with pytest.raises(ValueError, match="MODULE=http"):
        settings.parse_module_urls(["dome:8701"])


def test_endpoints_follow_options_then_saved_choices_then_configuration():
    cfg = config_from_dict({"modules": {"dome": {"url": "http://obs-pc:9001", "token": "t-dome"}}})
    eps = settings.resolve_endpoints(["dome", "share"], cfg, use_saved=False)
    assert (eps["dome"].mode, eps["dome"].url, eps["dome"].token) == ("auto", "http://obs-pc:9001", "t-dome")
    assert eps["share"].url == "http://127.0.0.1:8705"

    settings.save({"share": settings.Endpoint("share", "remote", "http://gallery:8705", "saved-token")})
    eps = settings.resolve_endpoints(["dome", "share"], cfg)
    assert (eps["share"].mode, eps["share"].url, eps["share"].token) == ("remote", "http://gallery:8705", "saved-token")

    eps = settings.resolve_endpoints(["dome", "share"], cfg, mode="local", urls={"dome": "http://x:1"}, token="cli")
    assert (eps["dome"].mode, eps["dome"].url, eps["dome"].token) == ("remote", "http://x:1", "cli")
    assert eps["share"].mode == "local"
    settings.settings_file().unlink()


def test_safety_text_reads_the_dome_contract_and_tolerates_its_absence():
    assert safety_text({"safe": True, "verdict": {"safe": True, "reasons": []}})[0] == "Safety: SAFE"
    text, colour = safety_text({"safe": False, "verdict": {"safe": False, "reasons": ["rain", "wind 18 m/s"]}})
    assert text == "Safety: UNSAFE (rain; wind 18 m/s)" and colour == "#c62828"
    assert safety_text(None, "dome unreachable")[0] == "Safety: unknown (dome unreachable)"
    assert safety_text({"shelter": {}})[0] == "Safety: unknown"


def test_desktop_command_opens_a_window_and_exits(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.run(
        rosace_command("desktop", "--remote", "--module-url", f"dome={dead}", "--only", "dome,share", "--report-ready", "--exit-after", "3"),
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    ready = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    assert ready["tabs"] == 2


def test_desktop_command_reports_a_bad_option_without_traceback():
    proc = subprocess.run(rosace_command("desktop", "--module-url", "dome"), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "MODULE=http" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_selftest_from_source_passes(tmp_path):
    proc = subprocess.run(rosace_command("selftest", "--json", "--screenshots", str(tmp_path)), capture_output=True, text=True, timeout=400)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0 and report["ok"], proc.stdout[-3000:]
    assert len(list(tmp_path.glob("tab-*.png"))) >= 5
    assert sys.executable


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is a POSIX signal")
def test_sigterm_closes_the_desktop_and_its_local_servers(tmp_path):
    """``kill <desktop>`` used to leave the five servers it started running, orphaned."""
    import os
    import signal
    import time

    import psutil

    config = tmp_path / "rosace.toml"
    config.write_text(f'[data]\nroot = "{(tmp_path / "data").as_posix()}"\n', encoding="utf-8")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen(rosace_command("--config", str(config), "desktop", "--local", "--only", "reduction,share", "--report-ready"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = ""
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not line.startswith("{"):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()[-2000:]
        children = psutil.Process(proc.pid).children(recursive=True)
        servers = [c for c in children if "serve" in " ".join(c.cmdline())]
        assert len(servers) == 2, [c.cmdline() for c in children]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        gone, alive = psutil.wait_procs(servers, timeout=30)
        assert alive == [], [p.cmdline() for p in alive]
    finally:
        if proc.poll() is None:
            proc.kill()
