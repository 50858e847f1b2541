"""A rehearsal night: the demo with the user's own configuration on the simulated observatory."""

from __future__ import annotations

import yaml

from rosace_core.config import config_from_dict, load_config
from rosace_demo.night import DemoNight


def test_rehearsal_keeps_the_users_site_instrument_options_and_files(tmp_path):
    queue = tmp_path / "my files"
    queue.mkdir()
    (queue / "mine.yaml").write_text("rosace: 1\n", encoding="utf-8")
    user = config_from_dict({
        "site": {"name": "Observatoire du Jardin", "latitude": 47.2, "longitude": -1.55, "elevation": 40, "horizon": [[0, 20], [360, 20]]},
        "devices": {"shelter": "dome", "dome": {"url": "http://192.168.1.20:11111"}},
        "instrument": {"spectrograph": "lhires2400", "slit_x": 300},
        "dome": {"reopen_delay": 600},
        "scheduler": {"queue_folder": str(queue), "grid_step": 120},
        "share": {"database_url": "postgresql://elsewhere/db"},
    }, tmp_path / "mine.toml")
    night = DemoNight(tmp_path / "run", user_config=user)
    cfg = load_config(night.write_config())
    assert (cfg.site.name, cfg.site.latitude, cfg.site.longitude) == ("Observatoire du Jardin", 47.2, -1.55)
    assert cfg.site.horizon == [(0, 20), (360, 20)]
    assert cfg.instrument.spectrograph == "lhires2400" and cfg.instrument.slit_x == 300
    assert cfg.devices.shelter == "dome"
    assert cfg.devices.dome.url == night.url("sim")  # the simulated hardware, never the real one
    assert cfg.dome["reopen_delay"] == 600 and cfg.scheduler["grid_step"] == 120
    assert cfg.scheduler["queue_folder"] == (night.folder / "queue").as_posix()
    assert "database_url" not in cfg.share
    assert [p.name for p in (night.folder / "queue").iterdir()] == ["mine.yaml"]
    scenario = yaml.safe_load(night.scenario.read_text())
    assert scenario["site"]["latitude"] == 47.2 and scenario["instrument"] == "lhires2400"
    assert scenario["shelter"]["type"] == "dome"


def test_plain_demo_uses_the_bundled_files_and_scenario_site(tmp_path):
    night = DemoNight(tmp_path / "run")
    cfg = load_config(night.write_config())
    assert cfg.site.latitude == night.scenario_data["site"]["latitude"]
    assert len(list((night.folder / "queue").iterdir())) == len(night.files)
    assert cfg.sequencer["require_dome"] is True


def test_the_wall_limit_follows_the_rate_and_the_nights_length(tmp_path):
    fast, slow = DemoNight(tmp_path / "a", rate=180.0), DemoNight(tmp_path / "b", rate=60.0)
    # 14 h of night: 280 s at 180x, 840 s at 60x, plus a quarter (at least two minutes) for the end of the night
    assert fast.wall_limit == 280.0 + 120.0 and slow.wall_limit == 840.0 + 210.0
    assert DemoNight(tmp_path / "c", rate=60.0, max_wall=50.0).wall_limit == 50.0


def test_the_sequencer_knows_the_simulated_mounts_worm_period(tmp_path):
    night = DemoNight(tmp_path / "run")
    cfg = load_config(night.write_config())
    assert cfg.sequencer["mount_worm_period"] == night.scenario_data["telescope"]["tracking"]["worm_period"]
