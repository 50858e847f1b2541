"""The mount's tracking error and the slit throughput integrated over a science exposure.

The simulated mount drifts while it tracks (``telescope.tracking``: periodic
error in RA plus a slow drift); pulse guides move the pointing for the rest of an
exposure; the science frame's truth says what fraction of the star's light went
through the slit on average (``frame.slit_throughput``).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from rosace_sim.render.spectrum import slit_profile
from rosace_sim.scene import offset_for_throughput, slit_throughput
from rosace_sim.testing import SimObservatory, wait_for

ZET_TAU = (84.411189 / 15.0, 21.142549)


def scenario(tracking: dict, rate: float = 100.0) -> dict:
    """A clear night; no pointing error: the star lands on the slit centre, so what follows is the tracking alone."""
    return {
        "clock": {"start": "2025-01-15T20:00:00Z", "rate": rate},
        "shelter": {"type": "rolloff", "start_open": True},
        "telescope": {"slew_rate": 6.0, "settle_time": 1.0, "pointing_error": 0.0, "tracking": tracking},
        "spectro_camera": {"readout_time": 0.5},
        "stars": [{"name": "zet Tau", "ra": 84.411189, "dec": 21.142549, "vmag": 3.03, "spectral_type": "B1IVe", "be_emission": {"ew": -18.0}}],
        "weather": {"timeline": [{"at": "+0s", "cloud_cover": 0, "rain_rate": 0, "humidity": 50, "temperature": 3, "seeing": 2.5}]},
    }


PERFECT = {"periodic_error": 0.0, "drift_ra": 0.0, "drift_dec": 0.0}
SLOPPY = {"periodic_error": 3.0, "worm_period": 480.0, "drift_ra": 0.6, "drift_dec": 0.3}


def on_target(obs) -> None:
    tel = obs.telescope
    tel.put_unpark()
    tel.put_slewtocoordinatesasync(*ZET_TAU)
    wait_for(lambda: not tel.get_slewing(), timeout=20)


def science(obs, seconds: float, during=None) -> dict:
    """Expose the spectrograph camera (binned 4x4: cheap) and return the frame's truth; ``during()`` runs while it exposes."""
    cam = obs.spectro_camera
    cam.put_binx(4)
    cam.put_numx(cam.nx // 4)
    cam.put_numy(cam.ny // 4)
    cam.put_startexposure(seconds, True)
    if during is not None:
        during()
    wait_for(lambda: cam.get_imageready(), timeout=30)
    return obs.truths.get(cam._truth_id)


@pytest.mark.parametrize("seeing,dx", [(2.5, 0.0), (2.5, 1.2), (1.5, 2.0), (3.5, 4.0)])
def test_slit_throughput_is_the_renderers_slit_fraction(seeing, dx):
    expected = slit_profile(seeing, 3.6, 1.35, dx)["fraction"]
    assert slit_throughput([dx, -dx], seeing, 3.6) == pytest.approx([expected, expected], abs=2e-3)
    assert offset_for_throughput(expected, seeing, 3.6) == pytest.approx(dx, abs=0.02)


def test_perfect_tracking_keeps_the_star_centred_for_the_whole_exposure():
    with SimObservatory(scenario(PERFECT)) as sim:
        on_target(sim.observatory)
        truth = science(sim.observatory, 300.0)
    through = truth["frame"]["slit_throughput"]
    assert through["mean"] == pytest.approx(through["centred"], abs=1e-6)
    assert through["tracked_fraction"] == 1.0 and through["samples"] == 601
    assert truth["slit"]["fraction_through_slit"] == pytest.approx(through["mean"], abs=2e-3)


def test_an_unguided_long_exposure_loses_light_to_the_tracking_error():
    with SimObservatory(scenario(SLOPPY)) as sim:
        on_target(sim.observatory)
        truth = science(sim.observatory, 600.0)
        tel = sim.observatory.telescope.snapshot()
    through = truth["frame"]["slit_throughput"]
    print("unguided 600 s:", {k: through[k] for k in ("mean", "start", "end", "centred", "offset_across_rms_arcsec")})
    assert through["start"] > 0.97 * through["centred"]  # centred when the exposure began
    assert through["mean"] < 0.8 * through["centred"] and through["end"] < through["mean"]
    # the renderer was given the steady offset that passes the same mean light, and says so
    assert truth["slit"]["fraction_through_slit"] == pytest.approx(through["mean"], abs=5e-3)
    assert abs(tel["tracking_error_arcsec"][0]) > 3.0  # 6 arcsec of drift in 10 minutes, plus the periodic error


def test_a_pulse_guide_during_the_exposure_moves_the_star_for_the_rest_of_it():
    with SimObservatory(scenario(PERFECT)) as sim:
        obs = sim.observatory
        on_target(obs)

        def pulse():
            time.sleep(1.0)  # 100 simulated seconds into the 200 s exposure
            obs.telescope.put_pulseguide(2, 400)  # east, 0.4 s at 7.5 arcsec/s: 3 arcsec

        truth = science(obs, 200.0, during=pulse)
    through = truth["frame"]["slit_throughput"]
    assert through["start"] == pytest.approx(through["centred"], abs=1e-6)
    assert through["end"] == pytest.approx(slit_throughput(3.0, through["seeing_arcsec"], 3.6), abs=0.01)
    assert through["end"] < through["mean"] < through["start"]
    assert through["offset_end_arcsec"][0] == pytest.approx(-3.0, abs=0.05)  # the star is now west of the slit


def test_light_collected_while_the_mount_slews_misses_the_slit():
    with SimObservatory(scenario(PERFECT)) as sim:
        obs = sim.observatory
        obs.telescope.put_unpark()
        obs.telescope.put_slewtocoordinatesasync(*ZET_TAU)
        truth = science(obs, 300.0)
    through = truth["frame"]["slit_throughput"]
    assert 0.0 < through["tracked_fraction"] < 1.0 and through["start"] == 0.0
    assert through["mean"] == pytest.approx(through["centred"] * through["tracked_fraction"], abs=0.01)


def test_the_periodic_error_has_the_scenarios_amplitude_and_period():
    with SimObservatory(scenario({"periodic_error": 3.0, "worm_period": 100.0, "drift_ra": 0.0, "drift_dec": 0.0}, rate=200.0)) as sim:
        tel = sim.observatory.telescope
        on_target(sim.observatory)
        t0 = sim.clock.now().timestamp()
        time.sleep(1.2)  # 240 simulated seconds: over two worm turns
        east, north, valid = tel.pointing_track(t0 + np.linspace(0.0, 200.0, 801))
    assert valid.all() and np.abs(north).max() < 1e-9
    assert np.ptp(east) == pytest.approx(6.0, abs=0.05)  # peak to peak = twice the amplitude
    assert np.allclose(east[:401], east[400:], atol=1e-6)  # one worm turn later, the same error


def test_abort_slew_ends_a_pulse_guide_in_progress():
    with SimObservatory(scenario(PERFECT)) as sim:
        tel = sim.observatory.telescope
        on_target(sim.observatory)
        tel.put_pulseguide(0, 30000)
        assert tel.get_ispulseguiding() is True
        tel.put_abortslew()
        assert tel.get_ispulseguiding() is False
        assert tel.get_tracking() is True
