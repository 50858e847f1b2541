"""Binned and sub-framed frames: the set-up's geometry (unbinned pixels) brought to the image's pixels.

Frames come from the simulated observatory's renderer (rosace_sim.render) at
1x1 and 2x2 binning, with the keywords the sequencer writes (XBINNING,
YBINNING; XORGSUBF/YORGSUBF for a subframe).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from numpy.polynomial import polynomial as P

from rosace_reduction.frames import FrameError, read_frame_info
from rosace_reduction.instrument import Detector, layout_of, load_instrument
from rosace_reduction.pipeline import Options, Plan, ReductionError, reduce_observation

render = pytest.importorskip("rosace_sim.render")

T0 = datetime(2026, 11, 20, 21, 0, tzinfo=timezone.utc)
STAR = ("gam Cas", 14.177, 60.717, 2.39, "B0.5IVe")


def _write(path: Path, img, setup, kind: str, exptime: float, binning: int, origin=None) -> str:
    h = fits.Header()
    h.update({"IMAGETYP": kind, "OBJECT": "gam Cas", "RA": 14.177, "DEC": 60.717, "DATE-OBS": T0.isoformat()[:19], "EXPTIME": exptime,
              "AIRMASS": 1.2, "SITENAME": "sim", "SITELAT": 43.75, "SITELONG": 6.92, "SITEELEV": 1270.0, "INSTRUME": setup.name,
              "OBSERVER": "Sim", "CCD-TEMP": -10.0, "ROSOBSID": f"bin{binning}", "XBINNING": binning, "YBINNING": binning})
    if origin is not None:
        h["XORGSUBF"], h["YORGSUBF"] = origin
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(img, header=h).writeto(path, overwrite=True)
    return str(path)


def _observation(name: str, folder: Path, b: int, subframe=None, *, origin_keywords: bool = True, arc_exposure: float | None = None):
    """Render science, arc, flat and bias frames at binning b x b; return (plan, science truth)."""
    setup = load_instrument(name)
    r = render.Renderer(name)
    rng = np.random.default_rng(7)
    exposure = 4.0 if name == "alpy600" else 30.0
    # Binned pixels collect b*b times the charge: the arc is exposed b*b times shorter, as an observer would.
    arc_exp = arc_exposure if arc_exposure is not None else (2.0 if name == "alpy600" else 20.0) / b**2
    kw = dict(binning=(b, b), subframe=subframe, rng=rng)
    origin = subframe[:2] if subframe is not None and origin_keywords else None
    img, truth = r.science(render.Star(*STAR, be_emission={"ew": -30}), exposure=exposure, airmass=1.2, time=T0, site=(43.75, 6.92, 1270), **kw)
    plan = Plan(
        science=[_write(folder / "light.fits", img, setup, "LIGHT", exposure, b, origin)],
        arc=[_write(folder / "arc.fits", r.arc(exposure=arc_exp, **kw)[0], setup, "ARC", arc_exp, b, origin)],
        flat=[_write(folder / "flat.fits", r.flat(**kw)[0], setup, "FLAT", 5.0, b, origin)],
        bias=[_write(folder / f"bias{i}.fits", r.bias(**kw)[0], setup, "BIAS", 0.0, b, origin) for i in range(3)],
    )
    return plan, truth


def _solution(rec: dict):
    sol = rec["wavelength_solution"]
    return lambda x: P.polyval(np.asarray(x, float) - sol["x0"], sol["coeffs"])


def _error_px(rec: dict, truth: dict) -> float:
    """RMS of (reduction - truth) wavelength along the trace, in image pixels, between the outermost arc lines."""
    n = truth["image"]["shape"][1]
    x = np.arange(n)
    true_wl = P.polyval(x, truth["dispersion"]["coeffs_image"])
    xs = [l["x"] for l in rec["wavelength_solution"]["lines"]]
    inside = (x >= min(xs)) & (x <= max(xs))
    err = (_solution(rec)(x) - true_wl) / np.gradient(true_wl)
    return float(np.sqrt(np.mean(err[inside] ** 2)))


@pytest.mark.parametrize("name", ["alpy600", "lhires2400"])
def test_binned_and_unbinned_frames_reduce_to_the_same_wavelengths(name, tmp_path):
    recs, truths = {}, {}
    for b in (1, 2):
        plan, truths[b] = _observation(name, tmp_path / f"raw{b}", b)
        recs[b] = reduce_observation(plan, Options(output_root=str(tmp_path / f"out{b}")))
        assert Path(recs[b]["products"]["fits"]).exists()
        assert _error_px(recs[b], truths[b]) < 0.05
    # The trace was found where the simulator put it, in each image's rows.
    for b in (1, 2):
        found = P.polyval(100.0, recs[b]["quality"]["trace"]["coeffs"])
        assert found == pytest.approx(P.polyval(100.0, truths[b]["geometry"]["trace_coeffs_image"]), abs=0.3)
    # 2x2 column j covers unbinned columns 2j, 2j+1: both solutions agree there within a tenth of a binned pixel.
    lines = [l["x"] for l in recs[2]["wavelength_solution"]["lines"]]
    j = np.arange(int(min(lines)), int(max(lines)))
    binned_px = np.abs(np.gradient(_solution(recs[2])(j)))
    diff = (_solution(recs[2])(j) - _solution(recs[1])(2 * j + 0.5)) / binned_px
    assert np.sqrt(np.mean(diff**2)) < 0.1
    # The extraction window was scaled to the binned rows and recorded as used.
    w1, w2 = recs[1]["quality"]["window"], recs[2]["quality"]["window"]
    assert w2["aperture_half_width"] == round(w1["aperture_half_width"] / 2)
    assert w2["sky_offset"] == round(w1["sky_offset"] / 2)
    assert recs[2]["quality"]["layout"]["binning"] == [2, 2]


def test_subframe_with_and_without_its_origin(tmp_path):
    setup = load_instrument("alpy600")
    # 2x2 binned, 100 binned rows starting at binned row 450 (unbinned 900-1099): the trace (row ~995) is inside.
    sub = (0, 450, setup.detector.nx // 2, 100)
    for keywords in (True, False):
        plan, truth = _observation("alpy600", tmp_path / f"raw{keywords}", 2, sub, origin_keywords=keywords)
        rec = reduce_observation(plan, Options(output_root=str(tmp_path / f"out{keywords}")))
        assert _error_px(rec, truth) < 0.05
        assert P.polyval(100.0, rec["quality"]["trace"]["coeffs"]) == pytest.approx(P.polyval(100.0, truth["geometry"]["trace_coeffs_image"]), abs=0.3)
        assert ("subframe_origin_unknown" in rec["flags"]) is (not keywords)
        assert rec["quality"]["layout"]["origin_known"] == [True, keywords]
        if keywords:
            assert rec["quality"]["layout"]["origin_unbinned"] == [0, 900]


def test_layout_maps_unbinned_geometry():
    det = Detector(nx=3000, ny=2000)
    full = layout_of(det, (1000, 1500), (2, 2))
    assert (full.x0, full.y0, full.x_known, full.y_known) == (0, 0, True, True)
    # Image row i of a 2x2 frame is centred on unbinned row 2i + 0.5.
    assert full.image_row(1000.5) == pytest.approx(500.0)
    assert full.unbinned_column(10) == pytest.approx(20.5)
    assert full.rows(12) == 6 and full.rows(1, minimum=2) == 2
    sub = layout_of(det, (100, 1500), (2, 2), (0, 450))
    assert (sub.y0, sub.y_known) == (900, True)
    assert sub.image_row(1000.5) == pytest.approx(50.0)
    unknown = layout_of(det, (100, 1500), (2, 2))
    assert unknown.y_known is False and unknown.x_known is True


def test_calibrations_of_another_binning_are_refused(tmp_path):
    plan, _ = _observation("alpy600", tmp_path / "raw2", 2)
    plan1, _ = _observation("alpy600", tmp_path / "raw1", 1)
    plan.bias = plan1.bias
    with pytest.raises(ReductionError, match=r"bias0.fits \(bias\) was read out 1x1 binned.*same binning"):
        reduce_observation(plan, Options(output_root=str(tmp_path / "out")))


def test_bad_binning_keyword_names_the_file_and_keyword(tmp_path):
    setup = load_instrument("alpy600")
    path = Path(_write(tmp_path / "x.fits", np.zeros((10, 10), np.uint16), setup, "BIAS", 0.0, 1))
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["XBINNING"] = "two"
    with pytest.raises(FrameError, match=r"x.fits: XBINNING 'two'"):
        read_frame_info(path)


def test_batch_picks_only_calibrations_read_out_like_the_science(tmp_path):
    from rosace_reduction.batch import plan_folder, reduce_paths
    from rosace_reduction.frames import scan_folder

    night = tmp_path / "night"
    plan2, _ = _observation("alpy600", night / "binned", 2)
    plan1, _ = _observation("alpy600", night / "unbinned", 1)
    # Only 1x1 bias frames in the folder, written for the binned observation.
    for p in plan2.bias:
        Path(p).unlink()
    for p in plan1.bias:
        with fits.open(p, mode="update") as h:
            h[0].header["ROSOBSID"] = "bin2"
    frames, bad = scan_folder(night)
    plans = {p.observation_id: p for p, _, _ in plan_folder(frames)}
    assert not bad and plans["bin2"].bias == [] and len(plans["bin2"].arc) == 1
    assert len(plans["bin1"].bias) == 3
    report = reduce_paths([night], Options(output_root=str(tmp_path / "out")))
    assert report.counts == {"reduced": 2}, report.to_dict()
