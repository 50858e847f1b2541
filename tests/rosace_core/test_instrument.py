"""One model of the instrument set-up file and its one cached loader (rosace_core.instrument)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from rosace_core.config import config_from_dict
from rosace_core.errors import ConfigError
from rosace_core.instrument import InstrumentSetup, find_instrument, load_instrument, observing_file_problems
from rosace_core.observing_file import load_observing_file
from rosace_core.resources import resource_path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "new_spectrograph" / "lisa_r1000.toml"
SHIPPED = sorted(resource_path("instruments").glob("*.toml"))


def _copy(tmp_path: Path, name: str = "alpy600", *, edit=None, file_name: str = "mine.toml") -> Path:
    text = resource_path("instruments", f"{name}.toml").read_text(encoding="utf-8")
    if edit:
        text = edit(text)
    path = tmp_path / file_name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("path", SHIPPED + [EXAMPLE], ids=lambda p: p.name)
def test_every_shipped_set_up_and_the_example_parse(path):
    setup = load_instrument(str(path))
    assert isinstance(setup, InstrumentSetup)
    assert setup.name == path.stem  # INSTRUME is the name; the files are named after it
    assert setup.kind == "longslit"
    assert setup.detector.declared("gain") and setup.detector.declared("read_noise") is not None
    assert setup.dispersion.wavelength_min < setup.dispersion.central_wavelength < setup.dispersion.wavelength_max
    assert setup.source == path.resolve()
    assert setup.line_lists


def test_shipped_set_ups_say_what_an_observing_file_may_ask():
    alpy, lhires = load_instrument("alpy600"), load_instrument("lhires2400")
    assert alpy.gratings == ["600 l/mm"] and lhires.gratings == ["2400 l/mm"]
    assert alpy.slits == [23.0] and lhires.slits == [23.0]
    assert lhires.central_wavelengths[0] <= 6563 <= lhires.central_wavelengths[1]
    # The example set-up leaves them out: nothing is checked.
    assert load_instrument(str(EXAMPLE)).gratings is None


def test_every_shipped_observing_file_fits_its_set_up():
    for path in sorted(resource_path("observing_files").glob("*.yaml")):
        of = load_observing_file(path)
        assert observing_file_problems(load_instrument(of.instrument.spectrograph), of.instrument) == [], path.name


def test_kind_is_read_and_checked(tmp_path):
    echelle = _copy(tmp_path, edit=lambda t: t.replace('kind = "longslit"', 'kind = "echelle"'), file_name="e.toml")
    assert load_instrument(str(echelle)).kind == "echelle"
    without = _copy(tmp_path, edit=lambda t: t.replace('kind = "longslit"\n', ""), file_name="d.toml")
    assert load_instrument(str(without)).kind == "longslit"  # the default
    bad = _copy(tmp_path, edit=lambda t: t.replace('kind = "longslit"', 'kind = "fibre"'), file_name="b.toml")
    with pytest.raises(ConfigError) as err:
        load_instrument(str(bad))
    assert str(bad.resolve()) in str(err.value) and "kind" in str(err.value) and "longslit" in str(err.value)


def test_the_reduction_loads_every_kind_and_its_recipe_refuses_what_it_cannot_reduce(tmp_path):
    from rosace_reduction.instrument import load_instrument as reduction_load
    from rosace_reduction.pipeline import Options, ReductionError
    from rosace_reduction.stages import build_recipe

    slitless = _copy(tmp_path, edit=lambda t: t.replace('kind = "longslit"', 'kind = "slitless"'))
    setup = reduction_load(str(slitless))
    assert setup.kind == "slitless"
    with pytest.raises(ReductionError) as err:
        build_recipe(setup, Options(output_root=str(tmp_path)))
    assert "slitless reduction is not implemented yet" in str(err.value)
    assert reduction_load("alpy600") is load_instrument("alpy600")  # the same cached model


@pytest.mark.parametrize("edit, field, words", [
    (lambda t: t.replace("gain = 0.8", "gain = -0.8"), "detector.gain", "greater than 0"),
    (lambda t: t.replace("dispersion = 1.233", "dispersion = \"wide\""), "dispersion.dispersion", "number"),
    (lambda t: t.replace("central_wavelength = 5650.0", ""), "dispersion.central_wavelength", "Field required"),
    (lambda t: t.replace('extraction = "optimal"', 'extraction = "best"'), "recipe.extraction", "pattern"),
    (lambda t: t.replace("arc_rate = 20.0", "arc_rate = -1"), "render.arc_rate", "greater than or equal"),
    (lambda t: t.replace('slits = [23.0]', 'slits = "23"'), "slits", "list"),
    (lambda t: t.replace('lamp = "NeAr"', 'lamp = "Sodium"').replace('line_lists = ["ne", "ar"]', ""), "(file)", "unknown calibration lamp"),
    (lambda t: t.replace("wavelength_max = 7500.0", "wavelength_max = 3000.0"), "dispersion", "below wavelength_max"),
])
def test_an_invalid_file_is_refused_naming_the_file_and_the_key(tmp_path, edit, field, words):
    path = _copy(tmp_path, edit=edit)
    with pytest.raises(ConfigError) as err:
        load_instrument(str(path))
    assert Path(err.value.path) == path.resolve()
    fields = [loc for loc, _ in err.value.problems]
    assert field in fields, err.value.problems
    assert words in str(err.value)


def test_a_syntax_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('name = "broken"\n[detector\nnx = 10\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_instrument(str(path))
    assert "broken.toml" in str(err.value) and "line 2" in str(err.value)


def test_the_cache_gives_the_same_object_until_the_file_changes(tmp_path):
    path = _copy(tmp_path)
    first = load_instrument(str(path))
    assert load_instrument(str(path)) is first
    assert load_instrument(path) is first  # a Path or a str: the same file
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # touched: read again
    touched = load_instrument(str(path))
    assert touched is not first and touched.detector.gain == first.detector.gain
    path.write_text(path.read_text(encoding="utf-8").replace("gain = 0.8", "gain = 1.25"), encoding="utf-8")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 9_000_000_000))  # a coarse clock cannot hide the edit
    edited = load_instrument(str(path))
    assert edited is not touched and edited.detector.gain == 1.25
    assert load_instrument(str(path)) is edited


def test_the_simulator_follows_the_same_model(tmp_path):
    from rosace_sim.render.instrument import load_instrument as sim_load
    from rosace_sim.scene import load_instrument as scene_load

    path = _copy(tmp_path)
    ins = sim_load(path)
    assert sim_load(str(path)) is ins  # built once per version of the file
    assert ins.gain == 0.8 and ins.render["arc_rate"] == 20.0 and ins.render["seed"] is None  # file value, default
    assert scene_load(str(path)) is load_instrument(str(path))
    path.write_text(path.read_text(encoding="utf-8").replace("arc_rate = 20.0", "arc_rate = 7.0"), encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert sim_load(path).render["arc_rate"] == 7.0


def test_find_keeps_the_reduction_search_order(tmp_path):
    (tmp_path / "own").mkdir()
    own = _copy(tmp_path / "own", file_name="alpy600.toml")
    assert find_instrument("alpy600", (str(own.parent),)) == own  # the user's own first
    assert find_instrument("alpy600") == resource_path("instruments", "alpy600.toml")
    with pytest.raises(ConfigError) as err:
        find_instrument("nosuch", (str(tmp_path / "missing"),))
    assert "missing (not found)" in str(err.value) and "resources/instruments/nosuch.toml" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_instrument(str(tmp_path / "gone.toml"))
    assert "gone.toml (not found)" in str(err.value)


# --------------------------------------------------------------------------- the sequencer's headers


def _header(detector):
    from rosace_sequencer.frames import FrameInfo, build_header

    info = FrameInfo(imagetyp="BIAS", exptime=0.0, date_obs=datetime(2026, 1, 10, 21, 0, tzinfo=timezone.utc), obj="bias")
    return build_header(info, config_from_dict({}), detector)


def test_the_sequencer_writes_gain_and_read_noise_from_the_model(tmp_path):
    from rosace_sequencer.frames import load_setup

    path = _copy(tmp_path, edit=lambda t: t.replace("gain = 0.8", "gain = 1.7").replace("read_noise = 9.0", "read_noise = 3.3"))
    header = _header(load_setup(str(path)))
    assert header["GAIN"] == 1.7 and header["RDNOISE"] == 3.3
    assert load_setup(str(path)).slit_width == 3.6


def test_unknown_gain_and_read_noise_are_left_out_and_said(tmp_path, caplog):
    from rosace_sequencer.frames import load_setup

    path = _copy(tmp_path, edit=lambda t: t.replace("gain = 0.8", "").replace("read_noise = 9.0", ""))
    with caplog.at_level("WARNING", logger="rosace_sequencer.frames"):
        detector = load_setup(str(path))
    header = _header(detector)
    assert "GAIN" not in header and "RDNOISE" not in header  # never 1.0 / 0 invented
    assert "gives no detector gain or read_noise" in caplog.text and "GAIN or RDNOISE" in caplog.text
    with caplog.at_level("ERROR", logger="rosace_sequencer.frames"):
        unknown = load_setup("nosuch-spectrograph")
    header = _header(unknown)
    assert header["INSTRUME"] == "nosuch-spectrograph" and "GAIN" not in header and "RDNOISE" not in header
    assert "unknown instrument set-up 'nosuch-spectrograph'" in caplog.text


# --------------------------------------------------------------------------- Observing Files against the set-up


def _instrument(**fields):
    from rosace_core.observing_file import InstrumentSetup as Wanted

    return Wanted(spectrograph="lhires2400", **fields)


def test_an_observing_file_asking_what_the_set_up_has_not_is_refused_naming_the_field():
    lhires = load_instrument("lhires2400")
    assert observing_file_problems(lhires, _instrument(grating="2400 l/mm", central_wavelength=6563, slit=23)) == []
    assert observing_file_problems(lhires, _instrument(grating="2400L/MM")) == []  # spacing and case do not matter
    assert observing_file_problems(lhires, _instrument()) == []  # nothing asked, nothing checked
    [grating] = observing_file_problems(lhires, _instrument(grating="1200 l/mm"))
    assert grating.startswith("instrument.grating '1200 l/mm'") and "2400 l/mm" in grating
    [central] = observing_file_problems(lhires, _instrument(central_wavelength=4861))
    assert central.startswith("instrument.central_wavelength 4861") and "6398-6728" in central
    [slit] = observing_file_problems(lhires, _instrument(slit=35))
    assert slit.startswith("instrument.slit 35 um") and "23" in slit
    assert len(observing_file_problems(lhires, _instrument(grating="600 l/mm", slit=50, central_wavelength=5000))) == 3
    # A set-up that does not list its gratings or slits does not check them.
    lisa = load_instrument(str(EXAMPLE))
    assert observing_file_problems(lisa, _instrument(grating="anything", slit=99, central_wavelength=4000, order=3)) == []


def test_the_scheduler_says_wrong_instrument_with_the_reason(tmp_path):
    from rosace_scheduler.scheduler import Scheduler

    config = config_from_dict({"instrument": {"spectrograph": "lhires2400"}, "data": {"root": str(tmp_path / "data")}})
    s = Scheduler(config, database=":memory:", queue_folder=tmp_path / "queue")

    def doc(fid, **instrument):
        return {"rosace": 1, "id": fid, "observer": {"name": "Test"}, "target": {"name": "bet Lyr", "ra_deg": 282.52, "dec": 33.36},
                "instrument": {"spectrograph": "lhires2400", **instrument},
                "sequence": {"science": {"count": 1, "exposure": 60}, "arcs": {"exposure": 5, "when": "bracket"}, "reference_star": {"mode": "none"}}}

    s.submit(json.dumps(doc("good", grating="2400 l/mm", central_wavelength=6563)), "json", "good.json")
    s.submit(json.dumps(doc("other-grating", grating="1200 l/mm")), "json", "other.json")
    s.submit(json.dumps(doc("hbeta", central_wavelength=4861)), "json", "hbeta.json")
    t = "2026-07-20T22:00:00Z"
    good, other, hbeta = (s.explain(f, t=t) for f in ("good", "other-grating", "hbeta"))
    assert good["state"] != "wrong_instrument"
    assert other["state"] == "wrong_instrument" and "instrument.grating '1200 l/mm'" in other["reason"]
    assert hbeta["state"] == "wrong_instrument" and "instrument.central_wavelength 4861" in hbeta["reason"]
    states = {e["id"]: e for e in s.queue(t=t)["files"]}
    assert states["other-grating"]["state"] == "wrong_instrument" and "instrument.grating" in states["other-grating"]["reason"]
    plan = s.plan("2026-07-20", start="2026-07-20T12:00:00Z")
    assert "other-grating" not in [o["file_id"] for o in plan["observations"]]
    s.close()
