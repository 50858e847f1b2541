"""``rosace devices check`` against the simulator over HTTP: a switch box with extra channels,
a missing device, a lamp the box does not have, a mount that cannot pulse-guide."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rosace_sim import devices_config
from rosace_sim.testing import SimObservatory

BOX = [
    {"name": "NeAr", "lamp": "NeAr"},
    {"name": "tungsten", "lamp": "tungsten"},
    {"name": "Mount power", "value": 1},
    {"name": "Dew heater", "max": 255, "value": 128},
]


@pytest.fixture(scope="module")
def sim():
    scenario = {"clock": {"start": "2025-01-15T21:00:00Z", "rate": 1.0}, "switch": {"channels": BOX},
                "telescope": {"can_pulse_guide": False}}
    with SimObservatory(scenario) as s:
        yield s


def write_config(path, sim_url, *, switch_lamps=None, guide_number=1, station_units=None) -> str:
    lines = []
    for role, table in devices_config(sim_url, retries=1).items():
        number = guide_number if role == "guide_camera" else table["device_number"]
        lines.append(f"[devices.{role}]\nurl = \"{table['url']}\"\ndevice_number = {number}\nretries = 1")
        if role == "switch" and switch_lamps:
            lines.append(f"lamps = {switch_lamps}")
        if role == "observing_conditions" and station_units:
            lines.append(f"units = {station_units}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def rosace(*args):
    return subprocess.run([sys.executable, "-m", "rosace_core.cli", *args], capture_output=True, text=True, timeout=120)


def test_every_device_usable_says_what_is_used_and_leaves_the_other_channels_alone(sim, tmp_path):
    config = write_config(tmp_path / "rosace.toml", sim.url, switch_lamps='{arc = "NeAr", flat = 1}')
    result = rosace("--config", config, "devices", "check", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    reports = {r["role"]: r for r in json.loads(result.stdout)}
    assert set(reports) == {"dome", "telescope", "spectro_camera", "guide_camera", "switch", "safety_monitor", "observing_conditions"}
    switch = reports["switch"]
    assert switch["status"] == "ok"
    assert switch["uses"] == ["lamp arc = channel 0 'NeAr'", "lamp flat = channel 1 'tungsten'",
                              "never touched: 2 'Mount power', 3 'Dew heater'"]
    mount = reports["telescope"]
    assert mount["status"] == "limited" and any("CanPulseGuide false" in m for m in mount["missing"])
    assert reports["spectro_camera"]["capabilities"]["sensor_x"] > 0
    assert any(u.startswith("cloud_cover 0 %") for u in reports["observing_conditions"]["uses"])
    # a check only reads: the box is as it was
    assert [c["value"] for c in sim.observatory.switch.snapshot()["channels"]] == [0.0, 0.0, 1.0, 128.0]
    assert all(c is None for c in sim.observatory.switch._changed)


def test_a_missing_device_or_lamp_fails_with_a_table_naming_them(sim, tmp_path):
    config = write_config(tmp_path / "rosace.toml", sim.url, switch_lamps='{arc = "ThAr", flat = "tungsten"}', guide_number=7)
    result = rosace("--config", config, "devices", "check")
    assert result.returncode == 1
    out = " ".join(result.stdout.split())  # the table wraps long cells
    assert "missing" in out and "refused" in out and "Traceback" not in result.stderr
    assert "not usable: guide camera, calibration lamps (switch)" in out
    data = json.loads(rosace("--config", config, "devices", "check", "--json").stdout)
    by_role = {r["role"]: r for r in data}
    assert by_role["guide_camera"]["status"] == "missing"
    assert "no camera number 7 on the Alpaca server" in by_role["guide_camera"]["missing"][0]
    assert "lamp 'arc' is channel 'ThAr' in [devices.switch] lamps, but the switch has no channel" in by_role["switch"]["missing"][0]


def test_an_impossible_weather_reading_refuses_the_station(sim, tmp_path):
    config = write_config(tmp_path / "rosace.toml", sim.url, station_units='{humidity = "fraction"}')
    data = json.loads(rosace("--config", config, "devices", "check", "--json").stdout)
    station = {r["role"]: r for r in data}["observing_conditions"]
    assert station["status"] == "refused"  # 60 (%) read as a fraction is 6000 %: the configuration is wrong
    assert any("humidity reads 60" in m and "units" in m for m in station["missing"])


def test_a_mount_that_cannot_park_is_refused_under_a_rolloff_roof(tmp_path):
    from rosace_core.config import config_from_dict
    from rosace_core.devices import all_usable, check_devices

    scenario = {"clock": {"start": "2025-01-15T21:00:00Z", "rate": 1.0}, "telescope": {"can_park": False, "start_parked": False}}
    with SimObservatory(scenario) as sim:
        reports = {r.role: r for r in check_devices(config_from_dict({"devices": {**devices_config(sim.url), "shelter": "rolloff"}}))}
        assert reports["telescope"].status == "refused" and not all_usable(list(reports.values()))
        assert "a roll-off roof closes only over a parked mount" in reports["telescope"].missing[0]
        domed = {r.role: r for r in check_devices(config_from_dict({"devices": {**devices_config(sim.url), "shelter": "dome"}}))}
        assert domed["telescope"].status == "limited"


def test_extra_devices_are_checked_by_name_and_a_missing_one_is_named(sim, tmp_path):
    """[devices.grating] type = "focuser" (the simulator's Focuser 0) and a filter wheel the server does not have."""
    path = tmp_path / "rosace.toml"
    config = write_config(path, sim.url)
    with path.open("a", encoding="utf-8") as f:
        f.write(f'[devices.grating]\ntype = "Focuser"\nurl = "{sim.url}"\ndevice_number = 0\nretries = 1\ntitle = "LHIRES grating motor"\n'
                f'[devices.flip_mirror]\ntype = "filterwheel"\nurl = "{sim.url}"\ndevice_number = 0\nretries = 1\n')
    result = rosace("--config", config, "devices", "check", "--json")
    assert result.returncode == 1, result.stdout + result.stderr  # the filter wheel is missing
    reports = {r["role"]: r for r in json.loads(result.stdout)}
    grating = reports["grating"]
    assert grating["status"] == "ok" and grating["title"] == "LHIRES grating motor" and grating["name"] == "ROSACE sim focuser"
    assert grating["uses"][0] == "absolute moves, 0-100000 steps (now at 50000)"
    assert grating["capabilities"]["absolute"] is True
    mirror = reports["flip_mirror"]
    assert mirror["status"] == "missing" and "no filterwheel number 0 on the Alpaca server" in mirror["missing"][0]
    text = rosace("--config", config, "devices", "check")
    assert "grating: " in text.stdout and text.stdout.rstrip().endswith("not usable: flip_mirror (filterwheel)")


@pytest.mark.parametrize("table, key, words", [
    ({"telescop": {"url": "http://x"}}, "devices", "[devices.telescop]: not a device role of ROSACE"),
    ({"grating": {"type": "focusr"}}, "devices.grating.type", "unknown device type 'focusr'; types: camera, covercalibrator"),
    ({"grating": {"type": "focuser", "devise_number": 1}}, "devices.grating.devise_number", "Extra inputs are not permitted"),
    ({"grating": {"type": "focuser"}, "extra": {"grating": {"type": "focuser"}}}, "devices", "name the same device"),
])
def test_an_extra_device_needs_a_known_type_and_a_misspelt_role_is_refused(table, key, words):
    from rosace_core.config import config_from_dict
    from rosace_core.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        config_from_dict({"devices": table})
    assert err.value.problems[0][0] == key and words in err.value.problems[0][1]


def test_extra_devices_keep_existing_files_valid_and_round_trip():
    from rosace_core.config import config_from_dict

    cfg = config_from_dict({"devices": {"telescope": {"device_number": 0}, "grating": {"type": "FOCUSER", "device_number": 2}}})
    assert cfg.devices.extra["grating"].type == "focuser" and cfg.devices.role("grating").device_number == 2
    assert cfg.devices.role("telescope") is cfg.devices.telescope
    assert config_from_dict(cfg.model_dump(mode="json")).devices.extra == cfg.devices.extra
    assert config_from_dict({}).devices.extra == {}
    with pytest.raises(KeyError, match="extra devices: grating"):
        cfg.devices.role("mirror")
