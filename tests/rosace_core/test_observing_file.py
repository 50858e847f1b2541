"""Observing File format v1: examples, broken files, round trips, schema, fuzzing."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rosace_core.observing_file import (
    ObservingFile,
    ObservingFileError,
    dump_observing_file,
    from_stored,
    json_schema,
    load_observing_file,
    parse_observing_file,
)

BROKEN = Path(__file__).parent / "data" / "broken"
EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "resources" / "observing_files").glob("*.*"))


def test_there_are_examples_for_each_science_case():
    names = " ".join(p.name for p in EXAMPLES)
    for case in ("be_", "binary_", "nova_", "reference_"):
        assert case in names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates(path):
    of = load_observing_file(path)
    assert of.rosace == 1
    assert of.sequence.science.count >= 1


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_load_dump_load_is_identity(path, fmt):
    of = load_observing_file(path)
    again = parse_observing_file(dump_observing_file(of, fmt), fmt=fmt)
    assert again == of
    assert again.content_hash() == of.content_hash()
    assert again.to_dict() == of.to_dict()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_exported_schema_accepts_every_example(path):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    jsonschema.validate(data, json_schema())


def test_published_schema_file_is_current(repo):
    published = json.loads((repo / "docs" / "observing-file.schema.json").read_text(encoding="utf-8"))
    assert published == json.loads(json.dumps(json_schema())), "run: rosace schema > docs/observing-file.schema.json"


def test_extension_keys_are_kept(examples_dir):
    of = load_observing_file(examples_dir / "nova_too_window.yaml")
    assert of.to_dict()["x-alert"]["source"] == "CBAT"


def test_sexagesimal_coordinates_become_degrees(examples_dir):
    of = load_observing_file(examples_dir / "be_gamcas_halpha_alpy.yaml")
    assert of.target.ra == pytest.approx((56 + 42.53 / 60) / 60 * 15, abs=1e-9)
    assert of.target.dec == pytest.approx(60 + 43 / 60 + 0.3 / 3600, abs=1e-9)


@pytest.mark.parametrize(
    "name, line, path, words",
    [
        ("bad_yaml.yaml", 4, "", "invalid YAML"),
        ("wrong_type.yaml", 10, "sequence.science.count", "integer"),
        ("unknown_key.yaml", 8, "target.magnitud", "unknown key"),
        ("ra_out_of_range.yaml", 6, "target.ra", "hours must be below 24"),
        ("ra_bare_number.yaml", 6, "target.ra", "a bare number is ambiguous"),
        ("missing_target.yaml", 1, "target", "missing required field 'target'"),
        ("missing_version.json", 1, "rosace", "rosace: 1"),
    ],
)
def test_broken_files_report_line_and_field(name, line, path, words):
    with pytest.raises(ObservingFileError) as info:
        load_observing_file(BROKEN / name)
    problems = info.value.problems
    assert any(p.line == line and p.path == path and words in p.message for p in problems), info.value.report()
    assert str(BROKEN / name) in info.value.report()


def test_every_problem_is_listed_not_only_the_first():
    text = (BROKEN / "unknown_key.yaml").read_text().replace("count: 3", "count: -3")
    with pytest.raises(ObservingFileError) as info:
        parse_observing_file(text, "x.yaml")
    paths = {p.path for p in info.value.problems}
    assert {"target.magnitud", "sequence.science.count"} <= paths


def test_error_report_format():
    with pytest.raises(ObservingFileError) as info:
        load_observing_file(BROKEN / "unknown_key.yaml")
    assert info.value.report().splitlines()[0].endswith(
        "unknown_key.yaml:8:3: target.magnitud: unknown key 'magnitud' (check the spelling; extension keys must start with 'x-')"
    )


def test_phase_and_window_validation():
    base = yaml.safe_load((BROKEN.parents[3] / "resources" / "observing_files" / "binary_betaLyr_lhires.yaml").read_text())
    base["constraints"]["phase"]["phases"] = [[0.2, 1.3]]
    base["constraints"]["windows"] = [{"start": "2026-12-02T00:00:00Z", "end": "2026-12-01T00:00:00Z"}]
    with pytest.raises(ObservingFileError) as info:
        parse_observing_file(yaml.safe_dump(base))
    messages = " ".join(p.message for p in info.value.problems)
    assert "phases must lie between 0 and 1" in messages
    assert "'end' must be after 'start'" in messages


RA_FILE = """rosace: {version}
id: ra-forms
observer: {{name: A. Observer}}
target:
  name: zet Tau
  {ra}
  dec: 21.142549
instrument: {{spectrograph: alpy600}}
sequence:
  science: {{count: 3, exposure: 60}}
  reference_star: {{mode: named, name: HR 1544, {ref_ra}, dec: 2.44}}
"""


@pytest.mark.parametrize("ra, degrees", [
    ('ra: "05:37:38.69"', (5 + 37 / 60 + 38.69 / 3600) * 15),
    ("ra: 5.627h", 5.627 * 15),
    ('ra: "84.41 deg"', 84.41),
    ("ra: 84d24m40s", 84 + 24 / 60 + 40 / 3600),
    ("ra_deg: 84.411189", 84.411189),
])
@pytest.mark.parametrize("version", ["1", "1.1"])
def test_ra_forms_and_round_trip(ra, degrees, version):
    of = parse_observing_file(RA_FILE.format(version=version, ra=ra, ref_ra="ra_deg: 72.653"), "zet.yaml")
    assert of.target.ra == pytest.approx(degrees, abs=1e-9)
    assert of.sequence.reference_star.ra == pytest.approx(72.653)
    dumped = of.to_dict()
    assert dumped["target"]["ra_deg"] == pytest.approx(degrees) and "ra" not in dumped["target"]
    assert parse_observing_file(dump_observing_file(of)) == of
    jsonschema.validate(yaml.safe_load(RA_FILE.format(version=version, ra=ra, ref_ra="ra_deg: 72.653")), json_schema())


@pytest.mark.parametrize("version", ["1", "1.1"])
def test_bare_number_ra_is_an_error_naming_file_line_and_field(version):
    text = RA_FILE.format(version=version, ra="ra: 5.588", ref_ra="ra: 4.84")
    with pytest.raises(ObservingFileError) as info:
        parse_observing_file(text, "zet.yaml")
    report = info.value.report()
    assert "zet.yaml:6:3: target.ra: ra 5.588: a bare number is ambiguous" in report
    assert "ra_deg: 5.588" in report and "5.588h" in report
    assert any(p.path == "sequence.reference_star.ra" and "ambiguous" in p.message for p in info.value.problems)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(text), json_schema())


def test_ra_twice_or_missing_is_an_error():
    with pytest.raises(ObservingFileError, match="either 'ra' or 'ra_deg'"):
        parse_observing_file(RA_FILE.format(version="1.1", ra='ra: 5.6h\n  ra_deg: 84', ref_ra="ra_deg: 72.6"))
    with pytest.raises(ObservingFileError, match="missing the right ascension"):
        parse_observing_file(RA_FILE.format(version="1.1", ra="epoch: 2000", ref_ra="ra_deg: 72.6"))


def test_stored_dicts_of_format_1_still_load():
    """Databases written before 1.1 hold to_dict() output with a bare RA in degrees: unambiguous, read as ra_deg."""
    of = parse_observing_file(RA_FILE.format(version="1", ra="ra_deg: 84.411189", ref_ra="ra_deg: 72.653"))
    old = of.to_dict()
    old["target"] = {("ra" if k == "ra_deg" else k): v for k, v in old["target"].items()}
    with pytest.raises(Exception):
        ObservingFile.model_validate(old)
    assert from_stored(old) == of


def test_cadence_tolerance_must_be_below_the_period():
    base = yaml.safe_load((BROKEN.parents[3] / "resources" / "observing_files" / "be_gamcas_halpha_alpy.yaml").read_text())
    base["constraints"]["cadence"] = {"period": 1, "tolerance": 1.5}
    with pytest.raises(ObservingFileError) as info:
        parse_observing_file(yaml.safe_dump(base), "gamcas.yaml")
    assert any(p.path == "constraints.cadence" and "must be below the period" in p.message for p in info.value.problems), info.value.report()
    base["constraints"]["cadence"] = {"period": 0.125}
    assert parse_observing_file(yaml.safe_dump(base)).constraints.cadence.tolerance == pytest.approx(0.0625)


SPLIT_FILE = """rosace: {version}
id: long-block
observer: {{name: A. Observer}}
target: {{name: bet Lyr, ra: "18:50:04.8", dec: 33.36}}
instrument: {{spectrograph: lhires}}
sequence:
  science: {{count: 24, exposure: 900}}
  arcs: {{exposure: 5, when: bracket}}
{split}"""


def test_split_is_a_1_2_key_that_round_trips_and_the_schema_knows():
    text = SPLIT_FILE.format(version="1.2", split="  split: {allowed: true, min_minutes: 45}\n")
    of = parse_observing_file(text, "long.yaml")
    assert of.rosace == 1.2 and of.sequence.split.allowed and of.sequence.split.min_minutes == 45
    assert parse_observing_file(dump_observing_file(of)) == of
    assert from_stored(json.loads(json.dumps(of.to_dict()))) == of
    jsonschema.validate(yaml.safe_load(text), json_schema())
    assert parse_observing_file(SPLIT_FILE.format(version="1.2", split="  split: {}\n")).sequence.split.min_minutes == 30


@pytest.mark.parametrize("version", ["1", "1.1"])
def test_older_files_read_unchanged_and_cannot_split(version):
    """1 and 1.1 files load as before (no split key written back, same hash); split in them names the version to write."""
    of = parse_observing_file(SPLIT_FILE.format(version=version, split=""), "old.yaml")
    assert of.sequence.split is None and "split" not in of.to_dict()["sequence"]
    assert of.to_dict()["rosace"] == float(version) and parse_observing_file(dump_observing_file(of)).content_hash() == of.content_hash()
    text = SPLIT_FILE.format(version=version, split="  split: {min_minutes: 30}\n")
    with pytest.raises(ObservingFileError) as info:
        parse_observing_file(text, "old.yaml")
    assert "old.yaml:6:1: sequence: 'split' is new in format 1.2: write 'rosace: 1.2'" in info.value.report()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(text), json_schema())


def test_split_minimum_is_checked():
    with pytest.raises(ObservingFileError) as info:
        parse_observing_file(SPLIT_FILE.format(version="1.2", split="  split: {min_minutes: 0}\n"), "long.yaml")
    assert any(p.path == "sequence.split.min_minutes" and p.line == 9 for p in info.value.problems), info.value.report()


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ObservingFileError, match="no such file"):
        load_observing_file(tmp_path / "nope.yaml")


def test_future_version_is_refused_clearly():
    with pytest.raises(ObservingFileError, match="this ROSACE reads versions 1, 1.1 and 1.2"):
        parse_observing_file("rosace: 2\nid: x\n")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
_keys = st.sampled_from(["rosace", "id", "observer", "target", "instrument", "sequence", "constraints", "priority", "x-a", "bogus"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _json, max_size=8) | _json)
def test_garbage_only_ever_raises_the_validation_error(data):
    text = json.dumps(data)
    try:
        parse_observing_file(text, "fuzz.json", fmt="json")
    except ObservingFileError as exc:
        assert exc.problems
    for fmt in (None, "json"):
        try:
            parse_observing_file(yaml.safe_dump(data) if fmt is None else text, "fuzz", fmt=fmt)
        except ObservingFileError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_random_text_only_ever_raises_the_validation_error(text):
    try:
        parse_observing_file(text, "fuzz.yaml")
    except ObservingFileError as exc:
        assert exc.problems


def test_model_is_the_public_type(examples_dir):
    assert isinstance(load_observing_file(examples_dir / "be_zetatau_halpha_alpy.yaml"), ObservingFile)
