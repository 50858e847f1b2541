"""Guiding during the science exposure, against the simulated observatory (real HTTP, accelerated clock).

The simulator's mount drifts while it tracks (periodic error and a slow drift,
``telescope.tracking`` of the scenario) and its truth record says how much of the
star's light went through the slit over each exposure: guided frames must keep
it high, clearly above unguided ones. A star lost behind clouds pauses the
corrections without stopping the exposure; an abort stops the guide loop and
leaves no pulse guide running.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import yaml

from rosace_core.config import config_from_dict
from rosace_core.observing_file import ObservingFile, load_observing_file
from rosace_core.resources import resource_path
from rosace_core.rest import BackgroundServer

from rosace_sequencer.api import create_app
from rosace_sequencer.client import SequencerClient
from rosace_sequencer.guiding import GuideLoop, GuideSettings, measure_on_slit
from rosace_sequencer.hardware import Control, Hardware
from rosace_sim.render.guider import render_guide_image
from rosace_sim import devices_config
from rosace_sim.testing import SimObservatory

from rosace_sim.testing import wait_for

TOKEN = "guide-test-token"
#: A mount that needs guiding: 2.5 arcsec periodic error, 0.6 arcsec a minute of drift across the slit.
TRACKING = {"periodic_error": 2.5, "worm_period": 480.0, "drift_ra": 0.6, "drift_dec": 0.3}


def guided_scenario(rate: float = 100.0, **stars) -> dict:
    data = yaml.safe_load(resource_path("scenarios", "clear.yaml").read_text())
    data["clock"]["rate"] = rate
    data["shelter"]["start_open"] = True  # no dome module here: the roof is simply open
    data["telescope"]["tracking"] = dict(TRACKING)
    for star in data["stars"]:
        star.update(stars.get(star["name"], {}))
    return data


def config_dict(sim_url: str, root: Path, **options) -> dict:
    # the simulated mount's worm period, as a user gives theirs: acquisition follows its periodic error
    opts = {"use_scheduler": False, "hand_to_reduction": False, "backoff": 1.0, "retries": 2, "library_count": 1,
            "mount_worm_period": TRACKING["worm_period"]}
    opts.update(options)
    return {"devices": devices_config(sim_url, retries=1),
            "data": {"root": str(root)}, "sequencer": opts}


def small_file(**sequence) -> dict:
    data = load_observing_file(resource_path("observing_files", "be_gamcas_halpha_alpy.yaml")).to_dict()
    data["instrument"]["binning"] = [2, 2]  # quarter-size frames keep the tests quick
    data["sequence"].update({"bias_dark": "none"})
    data["sequence"].pop("flats", None)
    # At 100x with a 2.5" periodic error the star wanders ~1" between two acquisition moves
    # on a loaded machine: acquisition is not what these tests are about (guiding corrects).
    data["acquisition"]["tolerance"] = 1.5
    data["sequence"].update(sequence)
    return ObservingFile.model_validate(data).to_dict()


def long_file(exposure: float = 600.0) -> dict:
    return small_file(science={"count": 1, "exposure": exposure}, arcs={"exposure": 10, "when": "none"})


class Sequencer:
    """A sequencer app on a real local server, with the options given."""

    def __init__(self, sim, root: Path, **options):
        opts = {"guide_min_wall_interval": 0.1}
        opts.update(options)
        self.app = create_app(config_from_dict(config_dict(sim.url, root, **opts)), token=TOKEN)
        self.server = BackgroundServer(self.app)

    def __enter__(self):
        self.server.__enter__()
        return SequencerClient(self.server.url, token=TOKEN)

    def __exit__(self, *exc):
        self.server.__exit__(*exc)
        self.app.extensions["rosace_sequencer"].close()


def light_frames(result: dict) -> list[Path]:
    return [Path(p) for p in result["frames"] if "_LIGHT_" in p]


def run(client, file: dict, timeout: float = 120.0) -> dict:
    job = client.run(file)
    done = client.wait_job(job["id"], timeout=timeout, poll=0.2)
    assert done["state"] == "succeeded", done
    return done["result"]


@pytest.fixture
def sim():
    with SimObservatory(guided_scenario()) as s:
        yield s


# --------------------------------------------------------------------------- measuring the star on the slit


@pytest.mark.parametrize("flux", [1.1e7, 3e4])  # saturated gam Cas; a faint star
@pytest.mark.parametrize("dx", [-3.0, -1.0, 0.0, 0.4, 2.0])
def test_the_star_is_measured_across_the_slit_from_both_wings(flux, dx):
    scale, slit = 0.8, (320.0, 240.0)
    x, y = slit[0] + dx / scale, 241.3
    image = render_guide_image((480, 640), [(x, y, flux)], exposure=1.0, seeing_px=2.5 / scale,
                               slit=(*slit, 3.6 / scale, 225.0), rng=np.random.default_rng(7))
    star = measure_on_slit(image, slit=slit, slit_width_px=3.6 / scale)
    assert star is not None
    # a tenth of an arcsecond, where a plain centroid of the light on the jaws is pulled away from the slit
    assert abs(star.x - x) * scale < 0.25 and abs(star.y - y) * scale < 0.25


def test_no_star_means_none():
    image = render_guide_image((480, 640), [], exposure=1.0, seeing_px=3.0, slit=(320.0, 240.0, 4.5, 225.0),
                               rng=np.random.default_rng(3))
    assert measure_on_slit(image, slit=(320.0, 240.0), slit_width_px=4.5) is None


# --------------------------------------------------------------------------- on the simulated observatory


def _throughput(sim, path: Path) -> tuple[float, fits.Header]:
    header = fits.getheader(path)
    truth = sim.control.truth(header["SIMTRUTH"])
    return truth["frame"]["slit_throughput"]["mean"], header


#: The clock rate of the guiding-quality test. A guide cycle (read the guide image, measure, pulse) costs
#: 0.15 s of wall time on an idle machine and 0.5-0.8 s on a loaded one: at 100x a loaded machine guided
#: only every 40-85 clock seconds, which no real guider does, and the light left the slit (CI failed on it).
#: At 20x a loaded machine still guides every 10-16 clock seconds, as an idle one does at 100x.
GUIDE_QUALITY_RATE = 20.0


@pytest.mark.slow
def test_guiding_keeps_the_light_in_the_slit_and_unguided_loses_it(tmp_path):
    with SimObservatory(guided_scenario(rate=GUIDE_QUALITY_RATE)) as sim:
        with Sequencer(sim, tmp_path / "guided") as client:
            guided = run(client, long_file(), timeout=300)
            tele = client.telemetry()
        assert guided["outcome"] == "completed", guided["message"]
        # The desktop's live view: every guide frame's offset, the last slit-jaw frame with its star.
        measured = [g for g in tele["guide"] if not g["lost"]]
        assert len(measured) >= 5 and all(abs(g["east"]) < 5 and abs(g["north"]) < 5 for g in measured)
        jaw = tele["jaw"]
        assert jaw["star"] is not None and abs(jaw["star"][0] - jaw["slit"][0]) < 3 * jaw["slit_width_px"]
        assert tele["devices"]["mount"]["tracking"] is True and tele["devices"]["camera"]["temperature"] is not None
        (frame,) = light_frames(guided)
        mean_guided, h = _throughput(sim, frame)
        with Sequencer(sim, tmp_path / "unguided", guide_during_exposure=False) as client:
            unguided = run(client, long_file(), timeout=300)
        assert unguided["outcome"] == "completed", unguided["message"]
        (frame_u,) = light_frames(unguided)
        mean_unguided, hu = _throughput(sim, frame_u)
        print(f"mean slit throughput over 600 s: guided {mean_guided:.3f}, unguided {mean_unguided:.3f}; header {dict(h)}")
        centred = sim.control.truth(h["SIMTRUTH"])["frame"]["slit_throughput"]["centred"]
    assert mean_guided >= 0.85 * centred
    assert mean_guided - mean_unguided >= 0.2
    assert h["GUIDING"] is True and h["GUIDECNT"] >= 5 and h["GUIDECOR"] >= 1 and h["GUIDELST"] == 0
    assert 0 < h["GUIDERMS"] < 1.0 and h["GUIDSTAT"] == "completed"
    assert "GUIDING" not in hu
    assert guided["info"]["guiding"][0]["state"] == "completed"


def test_short_exposures_are_not_guided_during_the_exposure(sim, tmp_path):
    with Sequencer(sim, tmp_path, guide_min_exposure=30.0) as client:
        result = run(client, small_file(science={"count": 1, "exposure": 20}, arcs={"exposure": 10, "when": "none"}))
    (frame,) = light_frames(result)
    assert "GUIDING" not in fits.getheader(frame)


@pytest.mark.slow
def test_a_star_lost_behind_clouds_pauses_guiding_but_not_the_exposure(tmp_path):
    # A faint gam Cas: thick cloud hides it from the slit-jaw camera.
    # Each step waits for what the guide loop reports (telemetry), not for a wall time: fixed sleeps
    # could see no guide frame at all in the clouds on a loaded machine, or the exposure end before
    # the star was found again. The clock runs at GUIDE_QUALITY_RATE: at 100x a loaded machine
    # (load 15) acquired this faint star with moves minutes of clock time apart and failed
    # ("star still 8.9 arcsec from the slit after 8 moves") before any guiding.
    def guide():
        return client.telemetry()["guide"]

    with SimObservatory(guided_scenario(rate=GUIDE_QUALITY_RATE, **{"gam Cas": {"vmag": 8.0}})) as sim:
        with Sequencer(sim, tmp_path) as client:
            job = client.run(long_file())  # 600 clock seconds, 30 s wall
            wait_for(lambda: sum(not g["lost"] for g in guide()) >= 2, timeout=120, poll=0.2)  # guiding on the star
            sim.control.set_weather(cloud_cover=100, safe=True)
            wait_for(lambda: guide()[-1]["lost"], timeout=60, poll=0.2)  # the clouds hide it
            sim.control.clear_weather()
            wait_for(lambda: not guide()[-1]["lost"], timeout=60, poll=0.2)  # found again, still exposing
            done = client.wait_job(job["id"], timeout=120, poll=0.2)
            log = client.log()
    result = done["result"]
    assert result["outcome"] == "completed", result["message"]
    (frame,) = light_frames(result)
    h = fits.getheader(frame)
    assert h["GUIDELST"] >= 1 and h["GUIDECNT"] >= 3  # lost for a while, found again afterwards
    assert h["GUIDSTAT"] == "completed"
    assert any("star lost" in line["message"] for line in log)
    assert any("found again" in line["message"] for line in log)


def test_abort_during_the_exposure_stops_the_guide_loop_and_its_pulses(sim, tmp_path):
    tel = sim.observatory.telescope
    with Sequencer(sim, tmp_path) as client:
        job = client.run(long_file(exposure=2400.0))  # 24 s wall: still exposing when the abort comes, however loaded the machine
        wait_for(lambda: ((client.status().get("observation") or {}).get("frame") or "").startswith("LIGHT"), timeout=60)
        wait_for(lambda: any(t.name == "guide-loop" for t in threading.enumerate()), timeout=10)
        wait_for(lambda: client.telemetry()["guide"], timeout=60, poll=0.2)  # guiding, pulses sent
        client.abort()
        done = client.wait_job(job["id"], timeout=30, poll=0.1)
        wait_for(lambda: not any(t.name == "guide-loop" for t in threading.enumerate()), timeout=10)
    assert done["result"]["outcome"] in ("aborted", "interrupted"), done["result"]
    assert not light_frames(done["result"])
    assert tel.get_ispulseguiding() is False
    pulses = len(tel._pulses)
    time.sleep(0.5)  # 50 simulated seconds: nobody guides any more
    assert len(tel._pulses) == pulses


def test_a_guide_camera_error_stops_guiding_not_the_exposure(sim, tmp_path):
    with Sequencer(sim, tmp_path) as client:
        job = client.run(long_file(exposure=1200.0))  # 12 s wall: the fault comes while it exposes, however loaded the machine
        wait_for(lambda: ((client.status().get("observation") or {}).get("frame") or "").startswith("LIGHT"), timeout=60)
        wait_for(lambda: client.telemetry()["guide"], timeout=60, poll=0.2)  # guiding
        sim.control.inject_fault("camera", "error", device_number=1)
        done = client.wait_job(job["id"], timeout=60, poll=0.2)
        sim.control.clear_faults()
    result = done["result"]
    assert result["outcome"] == "completed", result["message"]
    (frame,) = light_frames(result)
    h = fits.getheader(frame)
    assert h["GUIDSTAT"] == "error"
    assert sim.observatory.telescope.get_ispulseguiding() is False


def test_stopping_the_guide_loop_ends_the_pulse_guide_in_progress(tmp_path):
    data = guided_scenario(rate=10.0)
    data["telescope"]["pointing_error"] = 10.0  # the star well off the slit: the first correction is a long pulse
    with SimObservatory(data) as sim:
        tel = sim.observatory.telescope
        hw = Hardware(config_from_dict(config_dict(sim.url, tmp_path)))
        hw.connect("telescope", "guider")
        control = Control()
        hw.slew(14.177215, 60.716740, timeout=120, settle=0, control=control)
        # A guide rate claimed 75x too slow: every correction becomes a 30 s pulse (3 s wall).
        settings = GuideSettings(exposure=1.0, slit=(320.0, 240.0), slit_width_px=4.5, scale=0.8, model=((1.25, 0.0), (0.0, 1.25)),
                                 rate=0.1, max_move=3.0, interval=0.0, min_wall_interval=0.0)
        loop = GuideLoop(hw, settings, control, duration=600.0).start()
        wait_for(tel.get_ispulseguiding, timeout=20, poll=0.01)
        stats = loop.stop()
        assert tel.get_ispulseguiding() is False
        assert not any(t.name == "guide-loop" for t in threading.enumerate())
        assert stats.frames >= 1 and stats.state == "completed"
