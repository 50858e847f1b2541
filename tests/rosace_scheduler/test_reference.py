"""Automatic reference stars: bright A/B stars, high enough, close in airmass."""

import time

from rosace_core.config import Site, config_from_dict
from rosace_scheduler.reference import choose_reference, load_reference_stars
from rosace_scheduler.scheduler import Scheduler, to_unix


def test_bundled_list_is_bright_a_and_b_stars():
    stars = load_reference_stars()
    assert len(stars) >= 40
    assert all(s.sptype[0] in "AB" and s.vmag <= 3.8 for s in stars)
    assert all(0 <= s.ra < 360 and -30 <= s.dec <= 90 for s in stars)
    vega = next(s for s in stars if s.name == "alf Lyr")
    assert abs(vega.ra - 279.2347) < 0.001 and abs(vega.dec - 38.7837) < 0.001


def test_choice_matches_airmass_and_respects_limits():
    t = to_unix("2026-11-20T20:00:00Z")
    for wanted in (1.05, 1.4, 1.9):
        best = choose_reference(Site(), t, wanted, spectrograph="alpy600", min_altitude=30)
        assert best and all(s["altitude"] >= 30 for s in best)
        assert abs(best[0]["airmass"] - wanted) < 0.15
        assert abs(best[0]["airmass"] - wanted) <= abs(best[-1]["airmass"] - wanted)
    lhires = choose_reference(Site(), t, 1.2, spectrograph="lhires2400", count=10)
    assert all(s["vmag"] <= 3.0 for s in lhires)


def test_folder_watcher_picks_up_a_new_file(tmp_path, examples_dir):
    folder = tmp_path / "q"
    folder.mkdir()
    cfg = config_from_dict({"data": {"root": str(tmp_path / "d")}, "scheduler": {"watch_interval": 0.2}})
    s = Scheduler(cfg, database=":memory:", queue_folder=folder)
    s.start_watching()
    try:
        (folder / "g.yaml").write_text((examples_dir / "be_gamcas_halpha_alpy.yaml").read_text(), encoding="utf-8")
        deadline = time.monotonic() + 10
        while "be-gamcas-alpy" not in s.files and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "be-gamcas-alpy" in s.files
    finally:
        s.close()
