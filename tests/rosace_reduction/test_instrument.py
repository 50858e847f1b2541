"""Finding the instrument set-up a frame names in INSTRUME: built-in, configured file, configured folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from rosace_core.config import ObservatoryConfig
from rosace_core.errors import ConfigError
from rosace_core.resources import resource_path
from rosace_reduction.batch import options_from_config
from rosace_reduction.instrument import find_instrument, load_instrument


def _own_setup(folder: Path, file_name: str, name: str) -> Path:
    """A user's set-up: the Alpy file renamed."""
    text = resource_path("instruments", "alpy600.toml").read_text(encoding="utf-8")
    lines = [f'name = "{name}"' if line.startswith("name ") or line.startswith("name=") else line for line in text.splitlines()]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_builtin_name_is_found_without_configuration():
    assert find_instrument("alpy600") == resource_path("instruments", "alpy600.toml")


def test_the_configured_spectrograph_file_is_found_by_its_name(tmp_path):
    path = _own_setup(tmp_path / "setups", "my file.toml", "myspec")
    options = options_from_config(ObservatoryConfig(instrument={"spectrograph": str(path)}))
    assert options.instrument_search == [str(path)]
    setup = load_instrument("MYSPEC", tuple(options.instrument_search))
    assert setup.name == "myspec"


def test_a_file_of_the_instruments_dir_is_found_by_its_name_field(tmp_path):
    folder = tmp_path / "setups"
    _own_setup(folder, "other.toml", "other")
    _own_setup(folder, "spectro_v2.toml", "myspec")
    options = options_from_config(ObservatoryConfig(reduction={"instruments_dir": str(folder)}))
    assert find_instrument("myspec", tuple(options.instrument_search)) == folder / "spectro_v2.toml"


def test_a_relative_spectrograph_path_is_taken_from_the_configuration_folder(tmp_path, monkeypatch):
    _own_setup(tmp_path / "obs", "myspec.toml", "myspec")
    monkeypatch.chdir(tmp_path)
    config = ObservatoryConfig(instrument={"spectrograph": "myspec.toml"})
    config.source = tmp_path / "obs" / "rosace.toml"
    options = options_from_config(config)
    assert find_instrument("myspec", tuple(options.instrument_search)) == tmp_path / "obs" / "myspec.toml"


def test_an_unknown_set_up_says_where_it_looked(tmp_path):
    path = _own_setup(tmp_path, "mine.toml", "mine")
    with pytest.raises(ConfigError) as err:
        find_instrument("nosuch", (str(path), str(tmp_path / "missing")))
    message = str(err.value)
    assert "nosuch" in message and str(path) in message and "'mine'" in message
    assert "missing (not found)" in message and "resources/instruments/nosuch.toml" in message


def test_reduction_table_is_checked_and_names_the_key():
    """[reduction] is validated like the other modules' tables: a misspelt or bad key is named, not ignored."""
    from rosace_core.errors import ConfigError

    bad = ObservatoryConfig(reduction={"teluric": False, "workers": 0, "extraction": "fancy"})
    with pytest.raises(ConfigError) as info:
        options_from_config(bad)
    assert {loc for loc, _ in info.value.problems} == {"reduction.teluric", "reduction.workers", "reduction.extraction"}
    options = options_from_config(ObservatoryConfig(reduction={"telluric": False, "extraction": "boxcar", "cosmic_rays": False}))
    assert options.telluric is False and options.extraction == "boxcar" and options.cosmic_rays is False and options.barycentric is True
