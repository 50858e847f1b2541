"""The rosace command line, run as a user would (subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rosace_core.resources import resource_path

BROKEN = Path(__file__).parent / "data" / "broken"


def rosace(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rosace_core.cli", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_help_on_every_level():
    top = rosace("--help")
    assert top.returncode == 0
    for word in ("validate", "config", "dome", "scheduler", "sequencer", "reduction", "share", "sim", "desktop", "demo"):
        assert word in top.stdout
    for sub in (["config", "--help"], ["dome", "--help"], ["dome", "serve", "--help"], ["validate", "--help"]):
        result = rosace(*sub)
        assert result.returncode == 0 and "usage:" in result.stdout


def test_validate_examples_pass(examples_dir):
    result = rosace("validate", *map(str, sorted(examples_dir.glob("*.*"))))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": OK") == len(list(examples_dir.glob("*.*")))


def test_validate_broken_fails_with_lines():
    result = rosace("validate", str(BROKEN / "unknown_key.yaml"), str(BROKEN / "wrong_type.yaml"))
    assert result.returncode == 1
    assert "unknown_key.yaml:8:3: target.magnitud" in result.stderr
    assert "wrong_type.yaml:10:13: sequence.science.count" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_json_output():
    result = rosace("validate", "--json", str(BROKEN / "missing_target.yaml"))
    data = json.loads(result.stdout)
    assert data[0]["valid"] is False and data[0]["errors"][0]["path"] == "target"


def test_config_init_then_check(tmp_path):
    path = tmp_path / "dir with spaces" / "rosace.toml"
    assert rosace("config", "init", "--path", str(path)).returncode == 0
    assert "horizon" in path.read_text()
    assert rosace("config", "init", "--path", str(path)).returncode == 1
    check = rosace("--config", str(path), "config", "check")
    assert check.returncode == 0 and "OK" in check.stdout


def test_config_check_reports_bad_key_without_traceback(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[site]\nlatitude = 200\n")
    result = rosace("--config", str(path), "config", "check")
    assert result.returncode == 2
    assert "site.latitude" in result.stderr and "Traceback" not in result.stderr


def test_serve_on_a_busy_port_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        config = tmp_path / "rosace.toml"
        config.write_text(f'[data]\nroot = "{(tmp_path / "data").as_posix()}"\n')
        result = rosace("--config", str(config), "scheduler", "serve", "--port", str(port))
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_check_loads_the_mounted_set_up_and_names_a_bad_key(tmp_path):
    (tmp_path / "good.toml").write_text("[site]\nname = 'here'\n", encoding="utf-8")
    good = rosace("--config", str(tmp_path / "good.toml"), "config", "check")
    assert good.returncode == 0 and "set-up: alpy600 (longslit, 3800-7500 A, gain 0.8, read_noise 9)" in good.stdout
    setup = tmp_path / "mine.toml"
    setup.write_text(resource_path("instruments", "alpy600.toml").read_text(encoding="utf-8").replace('kind = "longslit"', 'kind = "fibre"'),
                     encoding="utf-8")
    config = tmp_path / "rosace.toml"
    config.write_text('[instrument]\nspectrograph = "mine.toml"\n', encoding="utf-8")  # relative: from the configuration's folder
    bad = rosace("--config", str(config), "config", "check")
    assert bad.returncode == 1 and "mine.toml" in bad.stderr and "kind" in bad.stderr and "Traceback" not in bad.stderr
