"""Rectification and its inverse, used to compare raw pixels with the extraction's model."""

import numpy as np

from rosace_reduction.geometry import LineGeometry, Trace, rectify, unrectify


def test_unrectify_inverts_rectify():
    nx, row0 = 400, 20
    trace = Trace(np.array([50.3, 0.004, 1e-6]), nx, 4.0, 0.0)
    geometry = LineGeometry(tilt=0.01, smile=2e-6)
    y = np.arange(row0, row0 + 60)[:, None]
    x = np.arange(nx)[None, :]
    # A smooth star (sigma 3 rows) whose flux varies along the dispersion.
    img = 1000 * np.exp(-0.5 * ((y - trace.rows()[None, :]) / 3.0) ** 2) * (1 + 0.2 * np.sin(x / 15))
    rect = rectify(img.astype(np.float32), row0, trace, geometry, 12)
    assert rect.shape == (25, nx)
    back = unrectify(rect.astype(np.float64), row0, 60, trace, geometry, 12)
    near = np.abs(y - trace.rows()[None, :]) <= 11
    assert np.isfinite(back[near & (x > 2) & (x < nx - 3)]).all()
    assert np.isnan(back[np.abs(y - trace.rows()[None, :]) > 13]).all()
    inner = near & (x > 2) & (x < nx - 3)
    # Two bilinear interpolations smooth the peak by ~ f(1-f)/2 x curvature each (2-3 % here).
    assert np.max(np.abs(back - img)[inner]) < 0.04 * img.max()
