"""Portable process management: start, kill, restart and stop module servers for real."""

from __future__ import annotations

import time

import pytest
import requests

from rosace_demo.processes import ProcessGroup, free_port


def healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def wait(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_start_kill_restart_and_stop_leave_nothing_running(tmp_path):
    folder = tmp_path / "run folder with spaces"
    folder.mkdir()
    config = folder / "rosace.toml"
    config.write_text(f'[data]\nroot = "{(folder / "data").as_posix()}"\n')
    port = free_port()
    group = ProcessGroup(folder, env={"ROSACE_TOKEN": "t0k3n"})
    try:
        child = group.start("scheduler", ["--config", str(config), "scheduler", "serve", "--port", str(port)])
        assert wait(lambda: healthy(port)), group.tail("scheduler")
        group.kill("scheduler")
        assert not child.running and group.dead() == ["scheduler"]
        assert not healthy(port)
        group.restart("scheduler")
        assert group.children["scheduler"].restarts == 1
        assert wait(lambda: healthy(port)), group.tail("scheduler")
    finally:
        group.stop_all()
    assert not any(c.running for c in group.children.values())
    assert wait(lambda: not healthy(port), timeout=5)
    assert (folder / "logs" / "scheduler.out").exists()


def test_a_child_that_fails_at_start_is_reported(tmp_path):
    group = ProcessGroup(tmp_path)
    group.start("bad", ["--config", str(tmp_path / "missing.toml"), "scheduler", "serve"])
    assert wait(lambda: group.dead() == ["bad"], timeout=60)
    assert "no such file" in group.tail("bad")
    group.stop_all()


@pytest.mark.slow
def test_the_dome_module_comes_with_one_guardian_that_stops_with_the_group(tmp_path):
    import json

    import psutil

    folder = tmp_path / "run"
    folder.mkdir()
    config = folder / "rosace.toml"
    config.write_text(f'[data]\nroot = "{(folder / "data").as_posix()}"\n')
    port = free_port()
    group = ProcessGroup(folder, env={"ROSACE_TOKEN": "t0k3n"})
    status = folder / "data" / "state" / "guardian.json"
    try:
        group.start("dome", ["--config", str(config), "dome", "serve", "--port", str(port)])
        assert "guardian" in group.children and group.children["guardian"].running
        assert wait(lambda: healthy(port), 60), group.tail("dome")
        assert wait(lambda: status.exists(), 60), group.tail("guardian")
        time.sleep(1.0)  # a second guardian, if the dome module had started one, would have taken over by now
        assert json.loads(status.read_text())["pid"] == group.children["guardian"].pid
        assert json.loads(status.read_text())["dome_url"] == f"http://127.0.0.1:{port}"
        group.restart("dome")  # a restarted dome module does not bring a second guardian
        assert group.children["guardian"].restarts == 0
        guardian_pid = group.children["guardian"].pid
    finally:
        group.stop_all()
    assert not any(c.running for c in group.children.values())
    assert not psutil.pid_exists(guardian_pid) or psutil.Process(guardian_pid).status() == psutil.STATUS_ZOMBIE


def test_a_child_held_back_at_start_still_comes_up_with_its_arguments(tmp_path):
    config = tmp_path / "rosace.toml"
    config.write_text(f'[data]\nroot = "{(tmp_path / "data").as_posix()}"\n')
    port = free_port()
    group = ProcessGroup(tmp_path, env={"ROSACE_TOKEN": "t0k3n"})
    try:
        child = group.start("scheduler", ["--config", str(config), "scheduler", "serve", "--port", str(port)], delay=1.0)
        assert "time.sleep(1.0)" in " ".join(child.popen.args)
        assert wait(lambda: healthy(port), timeout=60), group.tail("scheduler")
    finally:
        group.stop_all()
    assert not child.running
