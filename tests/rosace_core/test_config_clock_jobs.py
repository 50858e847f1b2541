"""Configuration, clock and jobs."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from rosace_core.clock import Clock
from types import SimpleNamespace

from pydantic import BaseModel, Field

from rosace_core.config import config_from_dict, example_config_text, load_config, module_options
from rosace_core.errors import Aborted, ConfigError
from rosace_core.jobs import JobRunner


def test_example_config_loads(tmp_path):
    path = tmp_path / "rosace.toml"
    path.write_text(example_config_text())
    cfg = load_config(path)
    assert cfg.site.latitude == 43.75
    assert cfg.devices.guide_camera.device_number == 1
    assert cfg.module_url("dome") == "http://127.0.0.1:8701"
    assert cfg.site.horizon[0] == (0, 15)


def test_config_errors_name_file_and_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[site]\nlatitude = 123\n[devices.dome]\ndevice_number = -1\nfoo = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    locs = {loc for loc, _ in info.value.problems}
    assert {"site.latitude", "devices.dome.device_number", "devices.dome.foo"} <= locs
    assert str(path) in str(info.value)


def test_config_syntax_error_gives_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[site]\nlatitude = = 4\n")
    with pytest.raises(ConfigError, match="line 2"):
        load_config(path)


def test_missing_explicit_config_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="config init"):
        load_config(tmp_path / "none.toml")


def test_partial_module_override_keeps_defaults():
    cfg = config_from_dict({"modules": {"dome": {"url": "http://obs:9000", "token": "t"}}})
    assert cfg.module_url("dome") == "http://obs:9000"
    assert cfg.module_token("dome") == "t"
    assert cfg.module_url("share") == "http://127.0.0.1:8705"


class _Options(BaseModel):
    model_config = {"extra": "forbid"}
    retries: int = Field(2, ge=0)
    label: str = "x"


def test_module_options_validate_a_table_and_name_the_key(tmp_path):
    path = tmp_path / "obs.toml"
    path.write_text("[scheduler]\nmax_retries = 1\n")
    cfg = load_config(path)
    cfg.scheduler = {"retries": 5}
    assert module_options(cfg, "scheduler", _Options).retries == 5
    assert module_options(None, "scheduler", _Options) == _Options()
    assert module_options(SimpleNamespace(share={"label": "y"}), "share", _Options).label == "y"
    cfg.scheduler = {"retries": -1, "colour": "red"}
    with pytest.raises(ConfigError) as info:
        module_options(cfg, "scheduler", _Options)
    assert {loc for loc, _ in info.value.problems} == {"scheduler.retries", "scheduler.colour"}
    assert str(path) in str(info.value)


def test_module_options_of_a_user_module_table():
    cfg = config_from_dict({})
    cfg.module_options = {"nightlog": {"retries": "many"}}
    with pytest.raises(ConfigError) as info:
        module_options(cfg, "nightlog", _Options)
    assert [loc for loc, _ in info.value.problems] == ["nightlog.retries"]
    cfg.module_options = {"nightlog": {"retries": 3}}
    assert module_options(cfg, "nightlog", _Options).retries == 3


def test_simulated_clock_runs_at_rate_and_round_trips():
    start = datetime(2026, 12, 21, 18, 0, tzinfo=timezone.utc)
    wall0 = time.monotonic()
    clock = Clock.simulated(start, rate=100.0)
    time.sleep(0.05)
    elapsed = (clock.now() - start).total_seconds()
    wall = time.monotonic() - wall0  # a loaded machine may sleep much longer than asked
    assert 4.0 < elapsed <= 100.0 * wall + 0.5
    other = Clock.parse(clock.spec())
    assert abs((other.now() - clock.now()).total_seconds()) < 1.0
    assert clock.wall(100) == pytest.approx(1.0)


def test_real_clock_parse():
    assert not Clock.parse("real").is_simulated
    with pytest.raises(ValueError):
        Clock.parse("bogus")


def test_jobs_succeed_fail_and_abort():
    runner = JobRunner()
    ok = runner.submit("ok", lambda job: 42)
    assert ok.wait(5) and ok.state == "succeeded" and ok.result == 42

    def boom(job):
        raise RuntimeError("bug")

    bad = runner.submit("bad", boom)
    assert bad.wait(5) and bad.state == "failed" and "bug" in bad.error

    def slow(job):
        while True:
            job.check_abort()
            time.sleep(0.01)

    s = runner.submit("slow", slow)
    s.abort()
    assert s.wait(5) and s.state == "aborted"
    with pytest.raises(Exception):
        runner.get("nope")
    assert isinstance(Aborted("x"), Exception)
