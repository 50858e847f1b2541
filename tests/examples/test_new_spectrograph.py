"""examples/new_spectrograph: one set-up file drives the simulator's renderer and the reduction,
and the set-up's custom reduction step runs.

An arc, a flat, biases and a Be star are rendered by ``rosace_sim.render.Renderer``
from the example's TOML, written as raw FITS with the contract headers, and reduced
by ``rosace_reduction``; the wavelength solution is compared with the renderer's truth.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from numpy.polynomial import polynomial as P

from rosace_core.config import ObservatoryConfig
from rosace_core.errors import ConfigError
from rosace_reduction.batch import options_from_config
from rosace_reduction.instrument import load_instrument
from rosace_reduction.pipeline import Plan, reduce_observation
from rosace_sim.render import Renderer, Star

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "new_spectrograph"


def write_frame(path: Path, image, instrument: str, kind: str, exptime: float, start: str) -> str:
    header = fits.Header()
    header.update({
        "IMAGETYP": kind, "OBJECT": "48 Lib", "RA": 239.3971, "DEC": -14.2792, "DATE-OBS": start, "EXPTIME": exptime,
        "AIRMASS": 1.2, "SITENAME": "example", "SITELAT": 43.75, "SITELONG": 6.92, "SITEELEV": 1270.0,
        "INSTRUME": instrument, "OBSERVER": "Example", "CCD-TEMP": -10.0, "ROSOBSID": "lisa-example-1",
        "LAMP": {"ARC": "NeAr", "FLAT": "tungsten"}.get(kind, "none"),
    })
    fits.PrimaryHDU(image, header=header).writeto(path)
    return str(path)


def lisa_config(tmp_path):
    """An observatory configuration that mounts the example set-up by its path."""
    return ObservatoryConfig(instrument={"spectrograph": str(EXAMPLE / "lisa_r1000.toml")},
                             reduction={"output": str(tmp_path / "reduced")})


@pytest.fixture
def observation(tmp_path, monkeypatch):
    """Render one LISA observation from the example set-up; return (plan, truth, setup)."""
    # The frames carry the set-up's NAME in INSTRUME, as the sequencer writes it; the
    # reduction finds the file through the configuration. The custom step's module
    # must be importable.
    monkeypatch.syspath_prepend(str(EXAMPLE))
    instrument = "lisa_r1000"
    renderer = Renderer(EXAMPLE / "lisa_r1000.toml")
    rng = np.random.default_rng(7)
    t = datetime(2026, 11, 20, 21, 0, tzinfo=timezone.utc)
    start = t.isoformat()[:19]
    star = Star("48 Lib", 239.3971, -14.2792, 4.88, "B3IVe", be_emission={"ew": -25})
    science, truth = renderer.science(star, exposure=6.0, airmass=1.2, time=t, site=(43.75, 6.92, 1270), rng=rng)
    arc, arc_truth = renderer.arc("NeAr", exposure=2.0, rng=rng)
    flat, _ = renderer.flat(rng=rng)
    raw = tmp_path / "raw"
    raw.mkdir()
    plan = Plan(
        science=[write_frame(raw / "light.fits", science, instrument, "LIGHT", 6.0, start)],
        arc=[write_frame(raw / "arc.fits", arc, instrument, "ARC", 2.0, start)],
        flat=[write_frame(raw / "flat.fits", flat, instrument, "FLAT", 5.0, start)],
        bias=[write_frame(raw / f"bias{i}.fits", renderer.bias(rng=rng)[0], instrument, "BIAS", 0.0, start) for i in range(3)],
    )
    return plan, truth, load_instrument(str(EXAMPLE / "lisa_r1000.toml"))


def test_the_set_up_file_is_valid_for_both_sides():
    setup = load_instrument(str(EXAMPLE / "lisa_r1000.toml"))
    assert setup.name == "lisa_r1000" and setup.detector.nx == 1392 and setup.resolving_power == 1000
    assert setup.recipe.steps == ["lisa_steps:TelluricBandMask"]
    # The renderer draws the detector the file describes.
    bias, _ = Renderer(EXAMPLE / "lisa_r1000.toml").bias(rng=np.random.default_rng(1))
    assert bias.shape == (1040, 1392)


def test_render_and_reduce_with_the_new_set_up(observation, tmp_path):
    plan, truth, setup = observation
    record = reduce_observation(plan, options_from_config(lisa_config(tmp_path)))
    assert record["instrument"] == "lisa_r1000"
    assert Path(record["products"]["fits"]).is_relative_to(tmp_path / "reduced")

    # Wavelength solution within 0.1 px RMS of the renderer's true one where arc lines constrain it.
    solution = record["wavelength_solution"]
    x = np.arange(setup.detector.nx)
    true_wl = P.polyval(x, truth["dispersion"]["coeffs_image"])
    xs = [line["x"] for line in solution["lines"]]
    assert len(xs) >= 10
    inside = (x >= min(xs)) & (x <= max(xs))
    error_px = (P.polyval(x - solution["x0"], solution["coeffs"]) - true_wl) / np.gradient(true_wl)
    assert np.sqrt(np.mean(error_px[inside] ** 2)) < 0.1
    assert record["quality"]["resolving_power"] == pytest.approx(1000, rel=0.25)

    # The custom step ran: flag in the record, variance inflated inside the H2O band only.
    assert any(f.startswith("telluric_bands_masked") for f in record["flags"])
    assert record["custom_steps"] == ["telluric_band_mask"]
    assert not any(f.startswith("saturated") for f in record["flags"])
    with fits.open(record["products"]["fits"]) as hdul:
        head = hdul[0].header
        wl = head["CRVAL1"] + head["CDELT1"] * (np.arange(head["NAXIS1"]) + 1 - head["CRPIX1"])
        flux = hdul[0].data.astype(float)
        sigma = hdul["STD"].data.astype(float)
    snr = flux / sigma
    band = (wl > 7180) & (wl < 7310)
    clear = (wl > 6000) & (wl < 6400)
    assert np.nanmedian(snr[band]) < 0.2 * np.nanmedian(snr[clear])


def test_without_the_configuration_the_set_up_is_not_found_and_the_error_says_where_it_looked(observation, tmp_path):
    plan, _, _ = observation
    with pytest.raises(ConfigError) as err:
        reduce_observation(plan, options_from_config(ObservatoryConfig(reduction={"output": str(tmp_path / "reduced")})))
    message = str(err.value)
    assert "lisa_r1000" in message and "resources/instruments/lisa_r1000.toml" in message and "instruments_dir" in message


def test_the_simulated_observatory_mounts_the_set_up():
    import time

    from rosace_core.alpaca import Camera
    from rosace_sim.testing import SimObservatory

    scenario = {"clock": {"start": "2026-12-01T17:00:00Z", "rate": 10}, "instrument": str(EXAMPLE / "lisa_r1000.toml")}
    with SimObservatory(scenario) as sim:
        camera = Camera(sim.url, 0)
        camera.connect()
        camera.start_exposure(0.0, light=False)
        deadline = time.monotonic() + 30
        while not camera.image_ready:
            assert time.monotonic() < deadline, "the simulated camera never finished its bias"
            time.sleep(0.05)
        assert camera.read_image().shape == (1040, 1392)  # rows along the slit, columns along the dispersion
