"""The quick-look profile of the last frame (desktop sequencer tab)."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from rosace_sequencer.service import frame_preview


def _write(path, data, imagetyp):
    hdu = fits.PrimaryHDU(data.astype(np.uint16))
    hdu.header["IMAGETYP"] = imagetyp
    hdu.writeto(path)
    return path


def _frame(rows=200, cols=600, seed=1):
    rng = np.random.default_rng(seed)
    return 1000.0 + rng.normal(0, 5, (rows, cols))


def test_an_arc_profile_stays_positive(tmp_path):
    """A lamp fills the slit (rows 30-170): its lines are positive peaks, not -20000 ADU troughs."""
    data = _frame()
    lines = np.zeros(600)
    for c, amp in ((100, 30000), (250, 12000), (420, 50000)):
        lines += amp * np.exp(-0.5 * ((np.arange(600) - c) / 2.0) ** 2)
    data[30:170] += lines
    prof = np.array(frame_preview(_write(tmp_path / "arc.fits", np.clip(data, 0, 65535), "Arc"))["profile"])
    assert prof.min() > -100
    assert abs(prof[420] - 50000) < 2500 and abs(prof[100] - 30000) < 1500
    assert abs(np.median(prof)) < 50


def test_a_star_profile_loses_its_sky(tmp_path):
    data = _frame()
    data += 200.0  # sky over the whole slit
    data[97:104] += 3000.0 * np.exp(-0.5 * ((np.arange(97, 104) - 100) / 1.5) ** 2)[:, None]
    prev = frame_preview(_write(tmp_path / "sci.fits", data, "Light Frame"))
    prof = np.array(prev["profile"])
    assert abs(prev["trace_row"] - 100) <= 1
    assert 700 < np.median(prof) < 1600  # the star (mean over 11 rows), not star + sky + bias
