"""The reduction as a recipe of stages: recipes by instrument kind, user stages placed by name, refusals."""

from __future__ import annotations

import sys
import numpy as np
import pytest
from astropy.io import fits

from rosace_core.errors import ConfigError
from rosace_reduction import stages
from rosace_reduction.batch import plan_folder
from rosace_reduction.frames import scan_folder
from rosace_reduction.instrument import load_instrument
from rosace_reduction.pipeline import Options, ReductionError, reduce_observation
from rosace_reduction.stages import RECIPES, Stage, build_recipe, register_stage

LONGSLIT = ["calibrate", "trace", "arc", "extraction", "flux_calibration", "telluric", "barycentric", "normalise", "quality", "products"]

USER_STAGES = '''
from rosace_reduction.stages import Stage


class First(Stage):
    name = "first"

    def run(self, state):
        state.flags.append("first")


class Second(Stage):
    name = "second"

    def run(self, state):
        state.flags.append("second")
'''


def _setup(**changes):
    data = load_instrument("alpy600").model_dump()
    for key, value in changes.items():
        if key == "recipe":
            data["recipe"].update(value)
        else:
            data[key] = value
    return type(load_instrument("alpy600")).model_validate(data)


def _names(setup, specs=(), **kw):
    return [s.name for s in build_recipe(setup, Options(output_root="unused", stages=list(specs)), **kw)]


def test_the_longslit_recipe_is_picked_by_kind():
    assert load_instrument("alpy600").kind == "longslit"
    assert _names(load_instrument("alpy600")) == LONGSLIT == RECIPES["longslit"]


def test_user_stages_go_before_after_or_in_place_of_a_named_stage(tmp_path):
    (tmp_path / "user_stages.py").write_text(USER_STAGES, encoding="utf-8")
    first, second = f"{tmp_path / 'user_stages.py'}:First", f"{tmp_path / 'user_stages.py'}:Second"
    assert _names(_setup(), [{"use": first, "before": "trace"}])[:3] == ["calibrate", "first", "trace"]
    # Two stages after one keep the order they are listed in.
    names = _names(_setup(), [{"use": first, "after": "extraction"}, {"use": second, "after": "extraction"}])
    assert names[3:6] == ["extraction", "first", "second"]
    names = _names(_setup(), [{"use": second, "replace": "normalise", "name": "my_normalise"}])
    assert "normalise" not in names and names[7] == "my_normalise"
    # The set-up's own [recipe] stages: a relative file is taken from the set-up's folder.
    setup = _setup(recipe={"stages": [{"use": "user_stages.py:First", "after": "arc"}]})
    assert _names(setup, setup_dir=tmp_path)[2:4] == ["arc", "first"]


def test_todays_1d_steps_still_run_before_quality():
    names = _names(_setup(recipe={"steps": ["rosace_reduction.pipeline:Step"]}))
    assert names[-3:] == ["custom", "quality", "products"]


def test_a_stage_that_cannot_be_placed_or_loaded_is_a_config_error_naming_the_entry(tmp_path):
    with pytest.raises(ConfigError, match=r"reduction.stages\[0\].before: no stage 'tracing' in the longslit recipe; its stages: calibrate, trace"):
        _names(_setup(), [{"use": "rosace_reduction.pipeline:Step", "before": "tracing"}])
    with pytest.raises(ConfigError, match=r"reduction.stages\[0\].use: cannot load stage 'no_such_module:Thing'"):
        _names(_setup(), [{"use": "no_such_module:Thing", "before": "trace"}])
    with pytest.raises(ConfigError, match=r"reduction.stages\[0\].use: cannot load stage .*missing.py:Thing.*not found"):
        _names(_setup(), [{"use": f"{tmp_path / 'missing.py'}:Thing", "before": "trace"}])
    with pytest.raises(ConfigError, match=r"recipe.stages\[0\].*exactly one of before, after or replace"):
        _names(_setup(recipe={"stages": [{"use": "x:Y", "before": "trace", "after": "arc"}]}))
    with pytest.raises(ConfigError, match=r"reduction.stages\[0\].*extra.*|reduction.stages\[0\].befor"):
        _names(_setup(), [{"use": "x:Y", "befor": "trace"}])
    # The instrument model refuses an unknown kind when the file is read; a set-up built in
    # code without validation still meets the recipe's own check.
    with pytest.raises(ConfigError, match="unknown instrument kind 'prism'; known: longslit, echelle, slitless"):
        _names(_setup().model_copy(update={"kind": "prism"}))


def test_an_echelle_set_up_without_its_order_stages_is_refused_before_anything_runs():
    with pytest.raises(ReductionError) as err:
        _names(_setup(kind="echelle"))
    assert str(err.value).startswith("echelle extraction is not implemented yet; stages: calibrate, order_trace (yours to supply), "
                                     "order_extraction (yours to supply), merge (yours to supply), flux_calibration, telluric")


def test_a_slitless_set_up_is_refused():
    with pytest.raises(ReductionError, match="^slitless reduction is not implemented yet"):
        _names(_setup(kind="slitless"))


def test_registered_stages_fill_the_echelle_skeleton(monkeypatch):
    monkeypatch.setattr(stages, "REGISTRY", stages.REGISTRY.copy())
    for name in ("order_trace", "order_extraction", "merge"):
        register_stage(name, lambda state: None)
    assert _names(_setup(kind="echelle")) == RECIPES["echelle"]


def test_a_registered_stage_after_extraction_changes_the_spectrum(synthetic_night, tmp_path, monkeypatch):
    folder, _ = synthetic_night
    plan = plan_folder(scan_folder(folder)[0])[0][0]
    seen = {}

    class Double(Stage):
        name = "double"

        def run(self, state):
            assert state.science is not None and state.trace is not None and state.solution is not None
            state.flux = state.flux * 2
            state.variance = state.variance * 4
            seen["flux"] = state.flux.copy()

    monkeypatch.setattr(stages, "REGISTRY", stages.REGISTRY.copy())
    register_stage("double", Double)
    record = reduce_observation(plan, Options(output_root=str(tmp_path), stages=[{"use": "double", "after": "extraction"}]))
    assert record["stages"] == LONGSLIT[:4] + ["double"] + LONGSLIT[4:]
    assert record["custom_steps"] == ["double"]
    with fits.open(record["products"]["fits"]) as hdul:
        assert np.allclose(hdul[0].data, seen["flux"], rtol=1e-5, equal_nan=True)


def test_a_user_stage_that_raises_is_a_reduction_error_naming_it(synthetic_night, tmp_path, monkeypatch):
    folder, _ = synthetic_night
    plan = plan_folder(scan_folder(folder)[0])[0][0]

    def broken(state):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(stages, "REGISTRY", stages.REGISTRY.copy())
    register_stage("broken", broken)
    with pytest.raises(ReductionError, match="^stage broken failed: ZeroDivisionError: oops"):
        reduce_observation(plan, Options(output_root=str(tmp_path), stages=[{"use": "broken", "before": "calibrate"}]))


def test_a_stage_run_before_the_stage_that_fills_what_it_reads_is_told_which(synthetic_night, tmp_path, monkeypatch):
    """A user stage in place of calibrate that leaves the science band empty: the trace stage says what it lacks and who fills it."""
    folder, _ = synthetic_night
    plan = plan_folder(scan_folder(folder)[0])[0][0]
    monkeypatch.setattr(stages, "REGISTRY", stages.REGISTRY.copy())

    def no_calibration(state):
        pass

    register_stage("no_calibration", no_calibration)
    with pytest.raises(ReductionError, match=r"^stage trace needs the science, which calibrate fills.*no_calibration, trace ran"):
        reduce_observation(plan, Options(output_root=str(tmp_path), stages=[{"use": "no_calibration", "replace": "calibrate"}]))


def test_an_installed_package_supplies_stages_through_the_plugin_registry(tmp_path, monkeypatch):
    """Stages are entries of the one plug-in registry: a package's ``rosace.reduction.stage``
    entry points fill the echelle skeleton (a dist-info on sys.path is what an install leaves)."""
    site = tmp_path / "site"
    info = site / "club_echelle-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: club_echelle\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[rosace.reduction.stage]\n" + "".join(
        f"{n} = club_echelle_stages:noop\n" for n in ("order_trace", "order_extraction", "merge")), encoding="utf-8")
    (site / "club_echelle_stages.py").write_text("def noop(state):\n    return None\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(stages, "REGISTRY", stages.REGISTRY.copy())
    monkeypatch.setattr(stages, "_entry_points_loaded", False)
    assert _names(_setup(kind="echelle")) == RECIPES["echelle"]
    entry = stages.REGISTRY.entry("reduction.stage", "order_trace")
    assert entry.origin == "entry point" and "club_echelle_stages:noop" in entry.source
    monkeypatch.delitem(sys.modules, "club_echelle_stages", raising=False)
