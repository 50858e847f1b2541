"""The plug-in registry: kinds, errors naming what is wrong, override order, the three ways in.

Entry points are read from a small ``<name>.dist-info`` written on ``sys.path`` (what
importlib.metadata finds for an installed package), not from a mocked ``entry_points``.
"""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from rosace_core import plugins
from rosace_core.errors import ConfigError
from rosace_core.plugins import KINDS, PluginError, Registry, groups


def install_dist(folder, name: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str]) -> None:
    """Write an 'installed' distribution (dist-info with entry points) and its modules into ``folder``."""
    info = folder / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8")
    text = "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n" for group, eps in entry_points.items())
    (info / "entry_points.txt").write_text(text, encoding="utf-8")
    for mod, source in modules.items():
        (folder / f"{mod}.py").write_text(textwrap.dedent(source), encoding="utf-8")


@pytest.fixture
def site(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    importlib.invalidate_caches()
    for mod in ("club_steps", "club_rules", "club_broken"):
        sys.modules.pop(mod, None)


def test_kinds_and_their_entry_point_groups_keep_the_old_names():
    assert set(KINDS) == {"module", "sequence.step", "scheduler.rule", "reduction.stage", "device.role"}
    assert groups("module") == ("rosace.module", "rosace.modules")
    assert groups("sequence.step") == ("rosace.sequence.step", "rosace.sequence_steps")
    assert groups("scheduler.rule") == ("rosace.scheduler.rule", "rosace.scheduler_rules")
    assert groups("reduction.stage") == ("rosace.reduction.stage",)
    with pytest.raises(PluginError, match="unknown plug-in kind 'sequence.steps'; kinds: module, sequence.step"):
        groups("sequence.steps")


def test_get_names_the_kind_the_name_and_the_known_names():
    reg = Registry()
    reg.register("reduction.stage", "extract", object())
    reg.register("reduction.stage", "calibrate", object())
    assert reg.names("reduction.stage") == ["calibrate", "extract"]
    with pytest.raises(PluginError) as err:
        reg.get("reduction.stage", "extrakt")
    assert str(err.value) == "no reduction.stage named 'extrakt'; known: calibrate, extract"
    with pytest.raises(PluginError, match="known: none"):
        Registry().get("scheduler.rule", "x")


def test_override_order_builtin_entry_point_file_and_same_origin_twice_is_an_error():
    reg = Registry()
    builtin, packaged, users, other_users = object(), object(), object(), object()
    reg.register("sequence.step", "science", builtin, source="rosace")
    reg.register("sequence.step", "science", packaged, origin="entry point", source="pkg")
    assert reg.get("sequence.step", "science") is packaged
    reg.register("sequence.step", "science", users, origin="file", source="/home/me/steps.py")
    assert reg.get("sequence.step", "science") is users
    # a package installed later cannot hide the user's file
    reg.register("sequence.step", "science", object(), origin="entry point", source="pkg2")
    assert reg.entry("sequence.step", "science").source == "/home/me/steps.py"
    with pytest.raises(PluginError) as err:
        reg.register("sequence.step", "science", other_users, origin="file", source="/home/me/more.py")
    assert "sequence.step 'science' is defined twice: by /home/me/steps.py and by /home/me/more.py" in str(err.value)
    assert err.value.sources == ("/home/me/steps.py", "/home/me/more.py")
    # the same object again is no conflict
    reg.register("sequence.step", "science", users, origin="file", source="/home/me/steps.py")


def test_copies_are_independent():
    reg = Registry()
    reg.register("device.role", "a", 1)
    child = reg.copy()
    child.register("device.role", "b", 2)
    assert reg.names("device.role") == ["a"] and child.names("device.role") == ["a", "b"]


def test_pkg_mod_attr_references_and_their_errors():
    reg = Registry()
    assert reg.load_ref("reduction.stage", "join", "os.path:join") is __import__("os").path.join
    with pytest.raises(PluginError, match=r"reduction.stage 'x': cannot import no_such_pkg_xyz:thing: ModuleNotFoundError"):
        reg.load_ref("reduction.stage", "x", "no_such_pkg_xyz:thing")
    with pytest.raises(PluginError, match="is not a 'package.module:attribute' reference"):
        reg.load_ref("reduction.stage", "x", "os.path.join")


def test_user_files_register_what_collect_finds(tmp_path):
    path = tmp_path / "my stages.py"
    path.write_text("def clip(x):\n    return x\n", encoding="utf-8")
    reg = Registry()
    names = reg.load_file("reduction.stage", path, lambda m: {"clip": m.clip})
    assert names == ["clip"] and reg.entry("reduction.stage", "clip").source == str(path)
    assert reg.entry("reduction.stage", "clip").origin == "file"


def test_entry_points_from_new_and_old_groups_and_a_broken_one(site):
    install_dist(site, "club_steps", {
        "rosace.sequence.step": {"wave": "club_steps:Wave", "broken": "club_broken:Nope"},
        "rosace.sequence_steps": {"legacy": "club_steps:Legacy", "wave": "club_steps:Legacy"},
    }, {"club_steps": """
        from rosace_sequencer.steps import Step

        class Wave(Step):
            name = "wave"

        class Legacy(Step):
            name = "legacy"
        """, "club_broken": "raise RuntimeError('broken on purpose')\n"})
    importlib.invalidate_caches()
    reg = Registry()
    errors = reg.load_entry_points("sequence.step")
    assert reg.names("sequence.step") == ["legacy", "wave"]
    # the new group wins over an alias for the same name
    assert reg.get("sequence.step", "wave").__name__ == "Wave"
    assert "rosace.sequence.step" in reg.entry("sequence.step", "wave").source
    assert list(errors) == ["broken"] and "broken on purpose" in errors["broken"]
    # only= imports nothing else
    only = Registry()
    assert only.load_entry_points("sequence.step", only=["legacy"]) == {} and only.names("sequence.step") == ["legacy"]


def test_the_sequencer_uses_entry_point_steps_and_reports_broken_ones(site, tmp_path):
    from rosace_sequencer.steps import StepRegistry

    install_dist(site, "club_steps", {"rosace.sequence.step": {"wave": "club_steps:Wave", "broken": "club_broken:Nope"}},
                 {"club_steps": """
        from rosace_sequencer.steps import Step

        class Wave(Step):
            name = "wave"

            def run(self, ctx):
                pass
        """, "club_broken": "raise RuntimeError('broken on purpose')\n"})
    importlib.invalidate_caches()
    reg = StepRegistry()
    reg.load_entry_points()
    assert "wave" in reg.names() and "science" in reg.names()
    assert [s.name for s in reg.build(["wave", "science"])] == ["wave", "science"]
    assert len(reg.errors) == 1 and "broken on purpose" in reg.errors[0]
    # two user files defining one step name: an error naming both files
    for n in (1, 2):
        (tmp_path / f"steps{n}.py").write_text("from rosace_sequencer.steps import Step\n\nclass Wave(Step):\n    name = 'wave'\n")
    reg.load_file(tmp_path / "steps1.py")
    with pytest.raises(ConfigError, match=r"defined twice: by .*steps1.py and by .*steps2.py"):
        reg.load_file(tmp_path / "steps2.py")


def test_scheduler_rules_from_the_new_entry_point_group(site, tmp_path):
    from rosace_core.config import config_from_dict
    from rosace_scheduler.options import scheduler_options
    from rosace_scheduler.rules import load_rules

    install_dist(site, "club_rules", {"rosace.scheduler.rule": {"late_only": "club_rules:LateOnly"}}, {"club_rules": """
        import numpy as np
        from rosace_scheduler.rules import Constraint

        class LateOnly(Constraint):
            name = "late_only"

            def allows(self, request, unix, site):
                return np.ones(len(unix), bool)
        """})
    importlib.invalidate_caches()
    options = scheduler_options(config_from_dict({"scheduler": {"rules": {"late_only": {}}}}))
    rules = load_rules(options)
    assert [(r["name"], r["source"]) for r in rules.describe()] == [("late_only", "entry point club_rules:LateOnly")]
    options = scheduler_options(config_from_dict({"scheduler": {"rules": {"early_only": {}}}}))
    with pytest.raises(ConfigError, match="rosace.scheduler.rule, rosace.scheduler_rules; known: late_only"):
        load_rules(options)


def test_modules_are_listed_by_the_registry():
    found = [m.name for m in plugins.discover_modules()]
    assert set(found) <= set(plugins.registry.names("module"))
    with pytest.raises(PluginError, match="no module 'nope' registered in entry-point groups rosace.module, rosace.modules"):
        plugins.get_module("nope")


def test_a_package_adds_a_device_type_and_a_wrong_class_is_left_out(site, monkeypatch):
    from rosace_core import alpaca
    from rosace_core.config import config_from_dict

    install_dist(site, "club_devices", {"rosace.device.role": {"lhires_grating": "club_devices:Grating", "bad": "club_devices:NotADevice"}},
                 {"club_devices": """
        from rosace_core.alpaca import Focuser

        class Grating(Focuser):
            '''A focuser with the grating's own conversions.'''

        class NotADevice:
            pass
        """})
    importlib.invalidate_caches()
    monkeypatch.setattr(plugins, "registry", Registry())
    monkeypatch.setattr(alpaca, "_device_roles_loaded", False)
    classes = alpaca.device_classes()
    assert classes["lhires_grating"].__name__ == "Grating" and classes["focuser"] is alpaca.Focuser and "bad" not in classes
    cfg = config_from_dict({"devices": {"grating": {"type": "lhires_grating"}}})
    assert cfg.devices.extra["grating"].type == "lhires_grating"
    with pytest.raises(ConfigError, match="unknown device type 'bad'"):
        config_from_dict({"devices": {"grating": {"type": "bad"}}})
    sys.modules.pop("club_devices", None)
