"""Kill drills of the hand-offs: nothing is lost between the modules.

A short simulated night (two observations, an empty bias/dark library, so the
end-of-night library session hands both observations to the reduction again)
while the reduction, the observatory's share archive and the upstream share
server run as real processes, each killed (kill -9: ``Popen.kill``) at a random
moment of the night and started again a few seconds later (one seed = one
schedule). When the outboxes have drained, each archive must hold exactly one
spectrum per completed observation, the reduction's final product (reduced
with the library's bias and dark), and nothing else.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from pathlib import Path

import pytest
import tomli_w
import yaml

from rosace_core.config import config_from_dict
from rosace_core.http import RestClient
from rosace_core.observing_file import ObservingFile
from rosace_core.resources import resource_path
from rosace_demo.processes import ProcessGroup, free_port
from rosace_reduction.client import ReductionClient
from rosace_sequencer.service import Sequencer
from rosace_share.client import ShareClient
from rosace_sim import devices_config
from rosace_sim.testing import SimObservatory

from tests.rosace_sequencer.test_reduction_handoff import observing_file

TOKEN = "drill-observatory"
UP_ADMIN = "drill-upstream-admin"
CAMPAIGN = "drill-2026"
SERVICES = ("reduction", "share", "upstream")


class Observatory:
    """The three processes of the drill (reduction, share, upstream share server) and their URLs."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.ports = {name: free_port() for name in SERVICES}
        self.procs = ProcessGroup(folder)
        self.kills: list[tuple[str, float, float]] = []

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def write(self, name: str, config: dict) -> Path:
        path = self.folder / f"{name}.toml"
        path.write_text(tomli_w.dumps(config), encoding="utf-8")
        return path

    def start(self, name: str, config: Path, module: str) -> None:
        self.procs.start(name, ["--config", str(config), module, "serve", "--port", str(self.ports[name])])

    def wait_up(self, name: str, timeout: float = 90.0) -> None:
        client = RestClient(self.url(name), timeout=2)
        try:
            deadline = time.monotonic() + timeout
            while True:
                assert name not in self.procs.dead(), f"{name} exited:\n{self.procs.tail(name)}"
                try:
                    client.health()
                    return
                except Exception:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{name} not up after {timeout} s:\n{self.procs.tail(name)}") from None
                    time.sleep(0.2)
        finally:
            client.session.close()

    def kill_schedule(self, seed: int, span: float, stop: threading.Event) -> threading.Thread:
        """Kill each service once at a random moment of the first ``span`` wall seconds; restart it 1-6 s later."""
        rng = random.Random(seed)
        plan = sorted((rng.uniform(0.0, span), name, rng.uniform(1.0, 6.0)) for name in SERVICES)

        def run():
            t0 = time.monotonic()
            for at, name, down in plan:
                if stop.wait(max(0.0, at - (time.monotonic() - t0))):
                    return
                self.procs.kill(name)  # no clean shutdown: what a power cut or kill -9 does
                self.kills.append((name, round(at, 1), round(down, 1)))
                time.sleep(down)
                self.procs.restart(name)
                self.wait_up(name)

        thread = threading.Thread(target=run, name="kill-schedule", daemon=True)
        thread.start()
        return thread


def _status(obs: Observatory, name: str, path: str) -> dict:
    client = RestClient(obs.url(name), token=TOKEN, timeout=5)
    try:
        return client.get(obs.url(name) + path)
    finally:
        client.session.close()


def _drained(obs: Observatory, seq: Sequencer) -> bool:
    try:
        red = _status(obs, "reduction", "/api/v1/reduction/status")
        share = _status(obs, "share", "/api/v1/share/status")
    except Exception:
        return False
    return (seq.outbox.waiting() == 0 and red["jobs_running"] == 0 and red["uploads"]["waiting"] == 0
            and share["forwards"]["waiting"] == 0 and share["jobs_running"] == 0)


def drill_file(file_id: str) -> ObservingFile:
    data = observing_file(20, file_id, binning=(1, 1)).to_dict()
    data["sequence"]["arcs"]["exposure"] = 2
    data["acquisition"]["tolerance"] = 3.0  # unbinned guide images: a 1.5" acquisition can fail under load; not what this is about
    data["programme"] = {"name": "drill", **(data.get("programme") or {}), "campaign": CAMPAIGN}
    return ObservingFile.model_validate(data)


@pytest.fixture
def sim():
    data = yaml.safe_load(resource_path("scenarios", "clear.yaml").read_text())
    data["clock"]["rate"] = 100.0
    data["shelter"]["start_open"] = True
    with SimObservatory(data) as s:
        yield s


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_of_reduction_share_and_upstream_during_a_night_loses_and_doubles_nothing(sim, tmp_path, seed):
    obs = Observatory(tmp_path)
    fast = {"backoff": 0.5, "max": 4.0}
    up_cfg = obs.write("upstream", {"server": {"host": "127.0.0.1", "token": UP_ADMIN}, "data": {"root": (tmp_path / "upstream").as_posix()},
                                    "share": {"mode": "server"}})
    modules = {m: {"url": obs.url(m), "token": TOKEN} for m in ("reduction", "share")}
    common = {"server": {"host": "127.0.0.1", "token": TOKEN}, "data": {"root": (tmp_path / "data").as_posix()}, "modules": modules}
    red_cfg = obs.write("reduction", {**common, "reduction": {"share_url": obs.url("share"), "upload_backoff": fast["backoff"],
                                                              "upload_max_backoff": fast["max"]}})
    obs.start("upstream", up_cfg, "share")
    obs.start("reduction", red_cfg, "reduction")  # starts meanwhile (the slowest to import)
    obs.wait_up("upstream")
    admin = ShareClient(obs.url("upstream"), token=UP_ADMIN)
    up_token = admin.create_account("drill-obs")["token"]
    org = ShareClient(obs.url("upstream"), token=admin.create_account("drill-org", "organiser")["token"])
    org.create_campaign(CAMPAIGN, "Drill campaign")
    share_cfg = obs.write("share", {**common, "share": {"observer": "drill-obs", "upstream_url": obs.url("upstream"), "upstream_token": up_token,
                                                         "upstream_backoff": fast["backoff"], "upstream_max_backoff": fast["max"]}})
    obs.start("share", share_cfg, "share")
    obs.wait_up("share")
    obs.wait_up("reduction")
    seq_opts = {"use_scheduler": False, "hand_to_reduction": True, "backoff": 1.0, "retries": 2, "library_count": 1,
                "handoff_backoff": fast["backoff"], "handoff_max_backoff": fast["max"]}
    seq = Sequencer(config_from_dict({"devices": devices_config(sim.url, retries=1), "data": {"root": str(tmp_path / "data")},
                                      "sequencer": seq_opts, "modules": modules}))
    stop = threading.Event()
    try:
        killer = obs.kill_schedule(seed, span=40.0, stop=stop)
        job = seq.start_night([drill_file(f"drill-{seed}-a"), drill_file(f"drill-{seed}-b")])
        assert job.wait(400), "the night did not end"
        assert job.to_dict()["state"] == "succeeded", job.to_dict()
        killer.join(120)
        assert not killer.is_alive()
        assert [k[0] for k in obs.kills] and sorted(k[0] for k in obs.kills) == sorted(SERVICES), obs.kills
        deadline = time.monotonic() + 300
        while not _drained(obs, seq):
            assert time.monotonic() < deadline, f"outboxes not drained: {seq.outbox.counts()}"
            time.sleep(0.5)

        print(f"seed {seed}: kills (service, at s, down s) {obs.kills}; sequencer hand-offs {seq.outbox.counts()}")
        completed = sorted(h["observation_id"] for h in seq.journal.history() if h["state"] == "completed")
        assert len(completed) == 2, seq.journal.history()
        assert seq.outbox.counts()["failed"] == 0, seq.outbox.entries("failed")
        reduction = ReductionClient(obs.url("reduction"), token=TOKEN)
        local = ShareClient(obs.url("share"), token=TOKEN)
        local_items = local.search(limit=100)["items"]
        up_items = admin.search(campaign=CAMPAIGN, limit=100)["items"]
        assert sorted(s["observation_id"] for s in local_items) == completed, (obs.kills, local_items)
        assert sorted(s["observation_id"] for s in up_items) == completed, (obs.kills, up_items)
        for oid in completed:
            records = reduction.results(observation_id=oid)
            assert len(records) == 1, records
            rec = records[0]
            cal = rec["calibrations"]
            assert cal["bias"] and cal["dark"], (oid, cal)  # reduced again with the library's bias and dark
            final = hashlib.sha256(Path(rec["products"]["fits"]).read_bytes()).hexdigest()
            here = next(s for s in local_items if s["observation_id"] == oid)
            there = next(s for s in up_items if s["observation_id"] == oid)
            assert here["sha256"] == final and there["sha256"] == final, (oid, obs.kills)
            assert here["upstream"] == f"{obs.url('upstream')}#{there['id']}"
        for client in (reduction, local, admin, org):
            client.session.close()
    finally:
        stop.set()
        seq.close()
        obs.procs.stop_all()
