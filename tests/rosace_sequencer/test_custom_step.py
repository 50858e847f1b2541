"""User steps: the worked example in examples/custom_step is loaded and used by name."""

import pytest

from rosace_core.config import config_from_dict
from rosace_core.errors import ConfigError, RosaceError
from rosace_core.observing_file import load_observing_file
from rosace_sequencer.options import sequencer_options
from rosace_sequencer.steps import DEFAULT_ORDER, StepRegistry, default_sequence, load_registry


def test_default_sequence_order():
    assert [s.name for s in default_sequence()] == list(DEFAULT_ORDER)


def test_example_step_file_is_registered_and_used_by_the_example_file(repo):
    example = repo / "examples" / "custom_step"
    options = sequencer_options(config_from_dict({"sequencer": {"step_files": [str(example / "sky_offset_step.py")]}}))
    reg = load_registry(options)
    assert "sky_offset" in reg.names()
    of = load_observing_file(example / "observing_file.yaml")
    steps = reg.sequence_for(of)
    assert [s.name for s in steps] == ["preconditions", "slew", "acquire", "science", "sky_offset", "arcs_after"]


def test_unknown_step_and_bad_file_are_clear_errors(tmp_path, repo):
    reg = StepRegistry()
    with pytest.raises(RosaceError, match="unknown sequence step 'nope'"):
        reg.build(["nope"])
    bad = tmp_path / "bad_steps.py"
    bad.write_text("raise RuntimeError('broken on purpose')\n")
    with pytest.raises(ConfigError, match="broken on purpose"):
        reg.load_file(bad)


def test_a_sequence_factory_expands_in_place():
    reg = StepRegistry()
    reg.register("calibrations", lambda: [reg.factories["arcs_before"](), reg.factories["flats"]()])
    assert [s.name for s in reg.build(["slew", "calibrations", "science"])] == ["slew", "arcs_before", "flats", "science"]


def test_options_are_validated_by_key():
    with pytest.raises(ConfigError, match="sequencer.retries"):
        sequencer_options(config_from_dict({"sequencer": {"retries": 0}}))
    with pytest.raises(ConfigError, match="sequencer.no_such_option"):
        sequencer_options(config_from_dict({"sequencer": {"no_such_option": 1}}))
