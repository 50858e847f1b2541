"""Pictures of the frames (saved as PNG for a human look), the slit-jaw guide
image, and the stars: spectral types, catalogue entries, Be emission over time,
binary RV curves, barycentric correction."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from numpy.polynomial import polynomial as P

from rosace_sim.render import Renderer, Star, barycentric_correction
from rosace_sim.render.guider import render_guide_image, slit_mask
from rosace_sim.render.stars import teff_of

WHEN = datetime(2026, 11, 24, 22, 0, tzinfo=timezone.utc)


def _save(path, img, title, *, band=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = img.astype(float) if band is None else img[band].astype(float)
    lo, hi = np.percentile(data, [1, 99.8])
    fig, ax = plt.subplots(figsize=(12, 4))
    ax.imshow(data, origin="lower", aspect="auto", cmap="gray", vmin=lo, vmax=hi)
    ax.set_title(title)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def test_lamp_flat_and_be_star_frames_look_right(tmp_path):
    r = Renderer("alpy600")
    rng = np.random.default_rng(5)
    arc, t_arc = r.arc(exposure=3.0, rng=rng)
    flat, t_flat = r.flat(exposure=5.0, rng=rng)
    star = Star("gam Cas", 14.177, 60.717, 2.39, "B0.5IVe", be_emission={"ew": -30.0})
    sci, t_sci = r.science(star, exposure=4.0, airmass=1.2, time=WHEN, site=(43.6, 1.44, 150.0), rng=rng)
    paths = [
        _save(tmp_path / "arc.png", arc, "Alpy 600 NeAr arc"),
        _save(tmp_path / "flat.png", flat, "Alpy 600 tungsten flat"),
        _save(tmp_path / "be_star.png", sci, "gam Cas (Be), Alpy 600", band=slice(940, 1060)),
    ]
    assert all(p.stat().st_size > 10_000 for p in paths)

    # The lamp frame shows lines only: dark between lines, bright on them.
    cols = [ln["column"] for ln in t_arc["arc"]["lines"]]
    trace_row = int(P.polyval(1500, t_arc["geometry"]["trace_coeffs_unbinned"]))
    row = arc[trace_row].astype(float) - 1000
    brightest = max(t_arc["arc"]["lines"], key=lambda ln: ln["peak_e"] if ln["peak_e"] < 50000 else 0)
    assert row[int(round(brightest["column"]))] > 0.8 * brightest["peak_e"] / 0.8 * 0.9
    gaps = [c for c in range(100, 2900, 7) if min(abs(c - x) for x in cols) > 40]
    assert np.median(row[gaps]) < 5  # nothing but bias and noise between lines

    # The flat is smooth along the dispersion and follows the slit illumination along the slit.
    assert flat[1000, 2000] > 20000 and flat[5, 2000] < 1200  # beyond the slit end: bias only
    # The Be star's H-alpha emission rises above its continuum.
    wl = P.polyval(np.arange(3000), t_sci["dispersion"]["coeffs_image"])
    rows = np.round(P.polyval(np.arange(3000), t_sci["geometry"]["trace_coeffs_image"])).astype(int)
    spec = sci[rows[None, :] + np.arange(-6, 7)[:, None], np.arange(3000)[None, :]].astype(float).sum(axis=0) - 13 * 1000
    ha = np.argmin(np.abs(wl - 6563))
    cont = np.median(np.r_[spec[ha - 120 : ha - 60], spec[ha + 60 : ha + 120]])
    assert spec[ha - 5 : ha + 6].max() > 1.8 * cont


def test_guide_image_shows_the_slit_as_a_dark_line(tmp_path):
    rng = np.random.default_rng(8)
    slit = (320.0, 240.0, 3.0, 300.0)
    img, lost = render_guide_image((480, 640), [(321.0, 240.0, 30000.0), (100.0, 400.0, 30000.0)], exposure=1.0, seeing_px=4.0, slit=slit, rng=rng, return_slit_flux=True)
    _save(tmp_path / "guide.png", img, "slit-jaw view")
    assert img.shape == (480, 640) and img.dtype == np.uint16
    sky = np.median(img)
    assert np.median(img[150:200, 320]) < sky - 10  # the slit is darker than the sky on the jaws
    # The star on the slit loses the light that enters the slit; the other one keeps all of it.
    on = img[225:256, 300:341].astype(float).sum() - sky * 31 * 41
    off = img[385:416, 80:121].astype(float).sum() - sky * 31 * 41
    m = slit_mask((480, 640), slit)
    on += 20.0 * (1 - m[225:256, 300:341]).sum()  # the sky that fell into the slit is missing too (20 e-/s default)
    assert lost[1] == 0.0 and 0.2 * 30000 < lost[0] < 0.8 * 30000
    assert on == pytest.approx(off - lost[0], rel=0.05)
    assert m[240, 320] == 0 and m[240, 330] == 1 and m[10, 320] == 1
    edge = slit_mask((480, 640), (320.3, 240.0, 3.0, 300.0))
    assert edge[240, 319] == pytest.approx(0.25) and edge[240, 322] == pytest.approx(0.75)  # anti-aliased edges


def test_star_from_catalogue_entry():
    s = Star.from_catalogue({"name": "zet Tau", "ra": "05:37:38.69", "dec": "+21:08:33.2", "V": 3.0, "sptype": "B1IVe_sh", "rv_curve": {"gamma": 20, "k": 10, "period_days": 132.97, "t0": 2450000.0}})
    assert s.ra == pytest.approx(84.411, abs=1e-3) and s.dec == pytest.approx(21.1426, abs=1e-3)
    assert s.be_emission is not None  # 'e' in the spectral type: default emission
    assert 20000 < s.teff < 30000
    with pytest.raises(ValueError):
        Star.from_catalogue({"name": "x", "ra": 1.0})
    g = Star.generic(10.0, 20.0, 8.0)
    assert g.be_emission is None and g.vmag == 8.0


def test_spectral_types_order_the_temperature():
    temps = [teff_of(t) for t in ("O7V", "B2V", "A0V", "F5V", "G2V", "K5III", "M3V")]
    assert temps == sorted(temps, reverse=True)
    assert teff_of("G2V") == pytest.approx(5800, abs=50)


def test_be_emission_varies_with_date_and_binary_rv_with_phase():
    s = Star("Be", 0, 0, 5, "B2Ve", be_emission={"ew": -20, "ew_amplitude": 8, "period_days": 100, "t0": "2026-01-01T00:00:00"})
    ews = [s.halpha_ew(datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(days=d)) for d in (0, 25, 75)]
    assert ews == pytest.approx([-20, -12, -28], abs=0.01)
    b = Star("bin", 0, 0, 5, "A0V", rv_curve={"gamma": -10, "k": 50, "period_days": 10, "t0": 2460000.0, "e": 0.0, "omega_deg": 90})
    v = [b.rv(2460000.0 + p * 10) for p in (0, 0.25, 0.5)]
    assert v == pytest.approx([-10, -60, -10], abs=1e-6)
    # A normal A0V star has the strongest Balmer absorption: H-alpha EW near +13 A.
    assert Star("A", 0, 0, 5, "A0V").halpha_ew() == pytest.approx(13.0, abs=2.0)


def test_barycentric_correction_matches_the_annual_cycle():
    # A star on the ecliptic near RA 90 deg: the correction swings by ~ +-30 km/s over the year.
    site = (43.6, 1.44, 150.0)
    march = barycentric_correction(90.0, 23.4, datetime(2026, 3, 21, tzinfo=timezone.utc), site)
    sept = barycentric_correction(90.0, 23.4, datetime(2026, 9, 22, tzinfo=timezone.utc), site)
    assert abs(march - sept) > 50
    assert barycentric_correction(90.0, 23.4, None, site) == 0.0
