"""Batch: grouping by observation and two spawn worker processes."""

import shutil

from rosace_reduction.batch import plan_folder, reduce_paths
from rosace_reduction.frames import scan_folder
from rosace_reduction.pipeline import Options


def test_two_observations_on_two_spawned_workers(synthetic_night, tmp_path):
    folder, _ = synthetic_night
    night = tmp_path / "20261120"
    shutil.copytree(folder, night / "a")
    shutil.copytree(folder, night / "b")
    # Second copy becomes another observation of another star.
    from astropy.io import fits

    for p in (night / "b").rglob("*.fits"):
        with fits.open(p, mode="update") as h:
            h[0].header["ROSOBSID"] = "obs-2"
            h[0].header["OBJECT"] = "HD 5678"
    frames, bad = scan_folder(night)
    plans = plan_folder(frames)
    assert not bad and len(plans) == 2
    assert all(len(p.bias) == 3 and len(p.arc) == 1 for p, _, _ in plans)
    seen = []
    report = reduce_paths([night], Options(output_root=str(tmp_path / "out")), workers=2, progress=lambda d, t, m: seen.append((d, t)))
    assert report.counts == {"reduced": 2}, report.to_dict()
    assert seen[-1] == (2, 2)
    assert {o.object for o in report.outcomes} == {"HD 1234", "HD 5678"}
