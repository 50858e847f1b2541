"""FITS frames (names, headers, atomic writes) and the SQLite journal."""

from datetime import datetime, timezone

import numpy as np
import pytest
from astropy.io import fits

from rosace_core.config import config_from_dict
from rosace_sequencer.frames import (
    TMP_SUFFIX,
    FrameInfo,
    build_header,
    clean_partial,
    frame_folder,
    frame_name,
    load_setup,
    night_of,
    parse_frame_name,
    write_frame,
)
from rosace_sequencer.journal import Journal

CONTRACT_KEYS = ["IMAGETYP", "OBJECT", "RA", "DEC", "OBJCTRA", "OBJCTDEC", "DATE-OBS", "EXPTIME", "JD-OBS", "AIRMASS",
                 "SITENAME", "SITELAT", "SITELONG", "SITEELEV", "TELESCOP", "INSTRUME", "OBSERVER", "CCD-TEMP", "SET-TEMP",
                 "XBINNING", "YBINNING", "GAIN", "RDNOISE", "LAMP", "ROSOBSID", "ROSOFID", "ROSOFHSH", "ROSSTEP", "ROSSTEPN",
                 "ROSREF", "SIMTRUTH"]


def test_night_is_the_utc_date_of_the_evening():
    assert night_of(datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)) == "20260301"
    assert night_of(datetime(2026, 3, 1, 20, 0, tzinfo=timezone.utc)) == "20260301"


def test_names_round_trip_and_folders(tmp_path):
    name = frame_name("20260301T2000-be_gam", 4, "LIGHT", 2)
    assert name == "20260301T2000-be-gam_04_LIGHT_002.fits"
    assert parse_frame_name(name) == {"obs": "20260301T2000-be-gam", "step": 4, "imagetyp": "LIGHT", "number": 2}
    assert frame_folder(tmp_path, "20260301", "gam Cas") == tmp_path / "20260301" / "gam_Cas"
    with pytest.raises(ValueError):
        frame_name("x", 1, "SCIENCE", 1)


def test_header_has_every_contract_key_and_write_is_atomic(tmp_path):
    cfg = config_from_dict({})
    det = load_setup("alpy600")
    assert det.gain == pytest.approx(0.8)
    info = FrameInfo(imagetyp="LIGHT", exptime=60.0, date_obs=datetime(2026, 1, 10, 21, 0, tzinfo=timezone.utc), obj="gam Cas",
                     ra=14.177, dec=60.717, observation_id="obs1", file_id="be-gamcas-alpy", file_hash="ab" * 32, step="science",
                     step_index=5, number=1, ccd_temp=-10.02, set_temp=-10.0, observer="J. Martin", sim_truth="t-123")
    header = build_header(info, cfg, det)
    missing = [k for k in CONTRACT_KEYS if k not in header]
    assert missing == []
    assert 1.0 <= header["AIRMASS"] < 3.0  # gam Cas is high in a January evening sky from 43.75 N
    path = tmp_path / "f" / frame_name("obs1", 5, "LIGHT", 1)
    image = np.arange(12, dtype=np.int32).reshape(3, 4) * 5000
    write_frame(path, image, header)
    with fits.open(path) as hdul:
        data = hdul[0].data
        assert data.dtype.kind == "u" and data.shape == (3, 4)
        assert data.max() == 55000
        assert hdul[0].header["DATE-OBS"].startswith("2026-01-10T21:00:00")
        assert hdul[0].header["ROSSTEPN"] == 5
    assert not list(path.parent.glob(f"*{TMP_SUFFIX}"))
    with pytest.raises(FileExistsError):
        write_frame(path, image, header)


def test_the_campaign_of_the_file_is_written_as_roscamp_only_when_there_is_one():
    cfg = config_from_dict({})
    det = load_setup("alpy600")
    start = datetime(2026, 1, 10, 21, 0, tzinfo=timezone.utc)
    with_campaign = build_header(FrameInfo(imagetyp="ARC", exptime=5.0, date_obs=start, obj="gam Cas", campaign="aras-be-2026"), cfg, det)
    assert with_campaign["ROSCAMP"] == "aras-be-2026"
    without = build_header(FrameInfo(imagetyp="ARC", exptime=5.0, date_obs=start, obj="gam Cas"), cfg, det)
    assert "ROSCAMP" not in without


def test_clean_partial_removes_only_temporary_files(tmp_path):
    (tmp_path / "n" / "t").mkdir(parents=True)
    keep = tmp_path / "n" / "t" / "a_01_ARC_001.fits"
    keep.write_bytes(b"x")
    tmp = tmp_path / "n" / "t" / f"a_01_ARC_002{TMP_SUFFIX}"
    tmp.write_bytes(b"half")
    assert clean_partial(tmp_path) == [tmp]
    assert keep.exists() and not tmp.exists()


def test_journal_survives_reopening(tmp_path):
    db = tmp_path / "j.sqlite"
    j = Journal(db)
    j.begin_observation("o1", {"id": "f"}, file_id="f", file_hash="h", target="T", night="20260101", folder=tmp_path, source="scheduler")
    j.set_step("o1", "science", 5)
    assert j.add_frame(tmp_path / "a.fits", "o1", "LIGHT", step="science", step_index=5)
    assert not j.add_frame(tmp_path / "a.fits", "o1", "LIGHT")  # registered once only
    nid = j.begin_night("20260101")
    j.close()
    j2 = Journal(db)
    [row] = j2.unfinished()
    assert row["observation_id"] == "o1" and row["step"] == "science" and row["step_index"] == 5
    assert j2.running_night()["id"] == nid
    j2.begin_observation("o1", {"id": "f"}, file_id="f", file_hash="h", target="T", night="20260101", folder=tmp_path)
    assert j2.observation("o1")["attempts"] == 2
    j2.finish_observation("o1", "completed")
    assert j2.unfinished() == []
    assert [r["observation_id"] for r in j2.unreported()] == ["o1"]
    hist = j2.history()
    assert hist[0]["frames"] == [str(tmp_path / "a.fits")] and hist[0]["state"] == "completed"
