"""A full or unwritable disk: the sequencer never exposes what it cannot store, alarms, and resumes by itself.

The "full disk" is real but bounded: ``disk_quota_gb`` caps what the raw folder
may use, so a (sparse) file in it fills the quota without filling the machine's
disk; the failing write is real too (a file where the night's target folder
should be: it fails for root as for anyone, on every platform).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from rosace_core.clock import now
from rosace_core.config import config_from_dict
from rosace_core.rest import BackgroundServer

from rosace_sequencer.api import create_app
from rosace_sequencer.client import SequencerClient
from rosace_sequencer.frames import (TMP_SUFFIX, StorageError, check_free_space, check_writable, frame_folder, free_gb,
                                     night_of, write_frame)
from rosace_sim.testing import SimObservatory

from tests.rosace_sequencer.test_with_sim import TOKEN, config_dict, scenario, small_file, wait_for


def test_quota_bounds_the_free_space(tmp_path):
    raw = tmp_path / "raw"
    assert free_gb(raw) > 0  # a folder not created yet: the disk it would be on
    assert free_gb(raw, quota_gb=1.0) == pytest.approx(1.0)
    raw.mkdir()
    with open(raw / "big.bin", "wb") as fh:
        fh.truncate(600_000_000)  # sparse: counts against the quota, costs no disk
    assert free_gb(raw, quota_gb=1.0) == pytest.approx(0.4, abs=1e-6)
    assert check_free_space(raw, 0.3, quota_gb=1.0) == pytest.approx(0.4, abs=1e-6)
    with pytest.raises(StorageError, match=r"disk full: only 0\.40 GB free of the 1 GB allowed to .*raw; frames need 0\.5 GB"):
        check_free_space(raw, 0.5, quota_gb=1.0)


def test_a_frame_that_cannot_be_written_raises_storage_error(tmp_path):
    (tmp_path / "night").mkdir()
    (tmp_path / "night" / "target").write_text("a file where the target folder should be", encoding="utf-8")
    path = tmp_path / "night" / "target" / "obs_05_LIGHT_001.fits"
    with pytest.raises(StorageError, match="obs_05_LIGHT_001.fits could not be written"):
        write_frame(path, np.zeros((4, 5), np.uint16), fits.Header())
    with pytest.raises(StorageError, match="cannot be written in"):
        check_writable(path.parent)
    (tmp_path / "night" / "target").unlink()
    check_writable(path.parent)
    write_frame(path, np.zeros((4, 5), np.uint16), fits.Header())
    assert fits.getdata(path).shape == (4, 5)
    assert not list(path.parent.glob(f"*{TMP_SUFFIX}")) and not list(path.parent.glob(".*"))


def _spectro_exposures(sim) -> list[dict]:
    """Frames the simulated spectrograph camera (#0) finished, oldest first."""
    records = [sim.observatory.truths.get(i) for i in sim.observatory.truths.ids()]
    return [r for r in records if r and r.get("camera") == 0]


@pytest.mark.slow
def test_disk_full_then_write_failure_stop_alarm_and_the_night_resumes_by_itself(tmp_path):
    with SimObservatory(scenario()) as sim:
        app = create_app(config_from_dict(config_dict(sim.url, tmp_path, min_free_gb=0.1, disk_quota_gb=0.3, storage_retry=30.0)),
                         token=TOKEN)
        seq = app.extensions["rosace_sequencer"]
        raw = seq.raw_root
        raw.mkdir(parents=True, exist_ok=True)
        filler = raw / "someone-elses-data.bin"
        with open(filler, "wb") as fh:
            fh.truncate(250_000_000)  # 0.05 GB left of the 0.3 GB quota: below the 0.1 GB minimum
        folder = frame_folder(raw, night_of(now()), "gam Cas")
        with BackgroundServer(app) as server:
            client = SequencerClient(server.url, token=TOKEN)
            # 300 s science frames: 3 s wall each at 100x, time enough to break the disk under the first one
            job = client.start_night([small_file(science={"count": 3, "exposure": 300})])

            # 1. The disk is full before anything is taken: alarm, nothing exposed, nothing observed.
            alarm = wait_for(lambda: [a for a in client.status()["alarms"] if a["code"] == "storage"], timeout=60)[0]
            assert "disk full" in alarm["message"] and "0.05 GB free" in alarm["message"]
            time.sleep(1.0)  # several storage checks (30 clock s = 0.3 s wall each)
            assert client.status()["job"]["state"] == "running" and client.history() == []
            assert _spectro_exposures(sim) == []

            # 2. Room again: the observation starts; while its first science frame exposes, the
            #    target folder becomes unwritable (a file where it should be). That frame's write
            #    fails and the second science frame is stopped at its next check, not exposed for nothing.
            filler.unlink()
            wait_for(lambda: ((client.status().get("observation") or {}).get("frame") or "") == "LIGHT 1/3", timeout=90, poll=0.05)
            moved = folder.with_name(folder.name + ".aside")
            folder.rename(moved)
            folder.write_text("a file where the target's folder should be", encoding="utf-8")
            row = wait_for(lambda: [h for h in client.history() if h["state"] == "interrupted"], timeout=60)[0]
            assert row["message"].startswith("storage:") and "could not be written" in row["message"], row
            alarm = wait_for(lambda: [a for a in client.status()["alarms"] if a["code"] == "storage" and "written" in a["message"]], timeout=30)[0]
            assert str(folder) in alarm["message"]
            time.sleep(1.0)
            kinds = [r["kind"] for r in _spectro_exposures(sim)]
            assert kinds.count("arc") == 1 and len(kinds) == 2, kinds  # the arc, the lost science frame, nothing more
            assert client.status()["job"]["state"] == "running"
            assert wait_for(lambda: sim.observatory.telescope.get_atpark(), timeout=30)  # parked while it waits

            # 3. The fault clears: the same observation resumes by itself and completes; the alarm clears.
            folder.unlink()
            moved.rename(folder)
            done = client.wait_job(job["id"], timeout=180, poll=0.3)
            assert done["state"] == "succeeded", done
            night = done["result"]
            assert night["completed"] == 1 and night["interrupted"] == 1, night
            history = client.history()
            assert [h["observation_id"] for h in history] == [row["observation_id"]]
            assert history[0]["state"] == "completed" and history[0]["attempts"] == 2
            names = sorted(Path(p).name.split("_", 1)[1] for p in history[0]["frames"])
            assert names == ["04_ARC_001.fits", "05_LIGHT_001.fits", "05_LIGHT_002.fits", "05_LIGHT_003.fits", "06_ARC_001.fits"]
            assert all(Path(p).is_file() for p in history[0]["frames"])
            assert client.status()["alarms"] == []
            assert any("the night resumes" in line["message"] for line in client.log(limit=500))
        seq.close()


def _mount_tmpfs(folder: Path, size: str) -> bool:
    """A small real file system for the journal (root on Linux only); False where it cannot be had."""
    import os
    import subprocess
    import sys

    if sys.platform != "linux" or os.geteuid() != 0:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True).returncode == 0


@pytest.mark.slow
def test_a_journal_whose_disk_fills_up_mid_observation_parks_alarms_and_resumes(tmp_path):
    """The journal's disk (not the frames') fills up while an observation runs: before, the journal
    write failed and the night crashed; now the night parks, alarms, waits, and goes on by itself."""
    import subprocess

    state = tmp_path / "state"
    if not _mount_tmpfs(state, "4m"):
        pytest.skip("needs root on Linux to mount a small tmpfs for the journal (a really full disk)")
    try:
        with SimObservatory(scenario()) as sim:
            app = create_app(config_from_dict(config_dict(sim.url, tmp_path, storage_retry=30.0)), token=TOKEN)
            seq = app.extensions["rosace_sequencer"]
            assert seq.journal.path.parent == state
            filler = state / "filler.bin"
            with BackgroundServer(app) as server:
                client = SequencerClient(server.url, token=TOKEN)
                job = client.start_night([small_file(science={"count": 3, "exposure": 300})])
                wait_for(lambda: ((client.status().get("observation") or {}).get("frame") or "") == "LIGHT 1/3", timeout=90, poll=0.05)
                with open(filler, "wb") as fh:  # fill the journal's file system to the last byte
                    try:
                        while True:
                            fh.write(b"\0" * 65536)
                            fh.flush()
                    except OSError:
                        pass
                alarm = wait_for(lambda: [a for a in client.status()["alarms"] if a["code"] == "storage" and "journal" in a["message"]],
                                 timeout=90)[0]
                assert "disk full or not writable" in alarm["message"]
                assert client.status()["job"]["state"] == "running"  # the night did not crash
                assert wait_for(lambda: sim.observatory.telescope.get_atpark(), timeout=30)  # parked while it waits
                filler.unlink()
                done = client.wait_job(job["id"], timeout=240, poll=0.3)
                assert done["state"] == "succeeded", done
                assert done["result"]["completed"] == 1, done["result"]
                assert client.status()["alarms"] == []
                (row,) = client.history()
                assert row["state"] == "completed" and len([p for p in row["frames"] if "_LIGHT_" in p]) == 3
            seq.close()
    finally:
        subprocess.run(["umount", "-l", str(state)], capture_output=True)
