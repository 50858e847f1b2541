"""Hand-off benchmark: latency through the outboxes, and recovery after an outage.

Real servers as processes (the observatory's share archive and an upstream share
server, SQLite), the reduction's real upload outbox (``rosace_reduction.api.share_outbox``)
in this process:

- latency, hand-off -> archived upstream: a reduced spectrum is put in the
  outbox, uploaded to share (acknowledged) and forwarded by share's own outbox
  to the upstream server; p50/p99 of put -> acknowledged by share and put ->
  archived upstream. Reference, side by side: the same upload straight through
  ``upload_to_share`` (the pre-outbox path, nothing persisted);
- recovery: share killed (kill -9), ``--spectra`` uploads queued meanwhile,
  share started again after ``--outage`` s: time from share answering again to
  the outbox drained, and to every spectrum archived upstream; then the same
  with the upstream server down (share's forward outbox drains). Default
  back-off (2 s doubling to 60 s): the first try after the restart can wait up
  to the back-off reached during the outage.

The sequencer -> reduction hop uses the same class; its latency is the
reduction's own time (bench_reduction.py).

Run: ``python benchmarks/bench_handoff.py [--count 40] [--spectra 10] [--outage 30]``.
The last line of output is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "modules"), str(ROOT), str(ROOT / "benchmarks")]

TOKEN = "bench-observatory"
UP_ADMIN = "bench-upstream-admin"
CAMPAIGN = "bench-2026"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(round(q * (len(values) - 1))))] * 1000.0, 1)


def spectrum(folder: Path, n: int, tag: str) -> Path:
    from astropy.io import fits

    from bench_share import fits_bytes

    data = fits_bytes("gam Cas", datetime(2026, 1, 1) + timedelta(minutes=n), seed=n, emission=2.0)
    with fits.open(__import__("io").BytesIO(data)) as hdul:
        hdul[0].header["ROSOBSID"] = f"{tag}-{n}"
        hdul[0].header["ROSCAMP"] = CAMPAIGN
        path = folder / f"{tag}-{n}.fits"
        hdul.writeto(path)
    return path


def wait_for(predicate, timeout: float = 300.0, poll: float = 0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError("condition not met")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=40, help="hand-offs timed for the latency")
    parser.add_argument("--spectra", type=int, default=10, help="hand-offs queued during each outage")
    parser.add_argument("--outage", type=float, default=30.0, help="wall seconds each server stays down")
    args = parser.parse_args()

    import tomli_w

    from rosace_core.astro import configure_offline
    from rosace_core.http import RestClient
    from rosace_demo.processes import ProcessGroup, free_port
    from rosace_reduction.api import share_outbox, upload_to_share
    from rosace_share.client import ShareClient

    configure_offline()
    work = Path(tempfile.mkdtemp(prefix="bench_handoff_"))
    ports = {"share": free_port(), "upstream": free_port()}
    url = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
    procs = ProcessGroup(work)

    def up(name: str) -> float:
        client = RestClient(url[name], timeout=2)
        try:
            wait_for(lambda: _answers(client), timeout=120, poll=0.05)
        finally:
            client.session.close()
        return time.monotonic()

    def start(name: str, config: dict) -> None:
        path = work / f"{name}.toml"
        path.write_text(tomli_w.dumps(config), encoding="utf-8")
        procs.start(name, ["--config", str(path), "share", "serve", "--port", str(ports[name])])

    out: dict = {"benchmark": "handoff", "count": args.count, "outage_s": args.outage, "spectra_per_outage": args.spectra}
    try:
        start("upstream", {"server": {"host": "127.0.0.1", "token": UP_ADMIN}, "data": {"root": (work / "up").as_posix()}, "share": {"mode": "server"}})
        up("upstream")
        admin = ShareClient(url["upstream"], token=UP_ADMIN)
        up_token = admin.create_account("bench-obs")["token"]
        ShareClient(url["upstream"], token=admin.create_account("bench-org", "organiser")["token"]).create_campaign(CAMPAIGN, "Bench")
        start("share", {"server": {"host": "127.0.0.1", "token": TOKEN}, "data": {"root": (work / "obs").as_posix()},
                        "share": {"observer": "bench-obs", "upstream_url": url["upstream"], "upstream_token": up_token}})
        up("share")
        local = ShareClient(url["share"], token=TOKEN)
        box = share_outbox(work / "reduction.sqlite", url["share"], TOKEN).start()
        folder = work / "spectra"
        folder.mkdir()

        def archived_upstream(local_id: int) -> bool:
            return str(local.spectrum(local_id).get("upstream") or "").startswith(url["upstream"] + "#")

        # -------------------------------------------------------------- latency
        for mode in ("outbox", "direct"):
            acked, archived = [], []
            for n in range(args.count):
                path = spectrum(folder, n, mode)
                t0 = time.monotonic()
                if mode == "outbox":
                    entry = box.put(f"{mode}-{n}", {"fits": str(path), "campaign": CAMPAIGN, "observation_id": f"{mode}-{n}"})
                    box.process(entry, wait=True)
                    row = box.get(entry)
                    assert row["state"] == "acked", row
                    local_id = json.loads(row["result"])["detail"]["id"]
                else:
                    res = upload_to_share(str(path), url["share"], TOKEN, campaign=CAMPAIGN)
                    assert res["ok"], res
                    local_id = res["detail"]["id"]
                acked.append(time.monotonic() - t0)
                wait_for(lambda i=local_id: archived_upstream(i))
                archived.append(time.monotonic() - t0)
            out[f"{mode}_ack_p50_ms"], out[f"{mode}_ack_p99_ms"] = pct(acked, 0.5), pct(acked, 0.99)
            out[f"{mode}_archived_p50_ms"], out[f"{mode}_archived_p99_ms"] = pct(archived, 0.5), pct(archived, 0.99)
            print(json.dumps({"mode": mode, "ack_mean_ms": round(statistics.mean(acked) * 1000, 1),
                              **{k: v for k, v in out.items() if k.startswith(mode)}}))

        # -------------------------------------------------------------- recovery: share down
        procs.kill("share")
        ids = []
        for n in range(args.spectra):
            ids.append(box.put(f"out-{n}", {"fits": str(spectrum(folder, n, "out")), "campaign": CAMPAIGN, "observation_id": f"out-{n}"}))
        time.sleep(args.outage)
        waiting_before = box.waiting()
        procs.restart("share")
        t_up = up("share")
        wait_for(lambda: box.waiting() == 0, timeout=600, poll=0.05)
        t_drained = time.monotonic()
        local_ids = [json.loads(box.get(i)["result"])["detail"]["id"] for i in ids]
        wait_for(lambda: all(archived_upstream(i) for i in local_ids), timeout=600, poll=0.05)
        t_all = time.monotonic()
        out.update(share_outage_waiting=waiting_before, share_recovery_drained_s=round(t_drained - t_up, 2),
                   share_recovery_archived_upstream_s=round(t_all - t_up, 2))
        print(json.dumps({"outage": "share", "waiting": waiting_before, "drained_s": out["share_recovery_drained_s"],
                          "archived_upstream_s": out["share_recovery_archived_upstream_s"]}))

        # -------------------------------------------------------------- recovery: upstream down
        procs.kill("upstream")
        local_ids = []
        for n in range(args.spectra):
            entry = box.put(f"upout-{n}", {"fits": str(spectrum(folder, n, "upout")), "campaign": CAMPAIGN, "observation_id": f"upout-{n}"})
            box.process(entry, wait=True)
            local_ids.append(json.loads(box.get(entry)["result"])["detail"]["id"])
        time.sleep(args.outage)
        status = RestClient(url["share"], timeout=5)
        waiting_before = status.get(url["share"] + "/api/v1/share/status")["forwards"]["waiting"]
        procs.restart("upstream")
        t_up = up("upstream")
        wait_for(lambda: status.get(url["share"] + "/api/v1/share/status")["forwards"]["waiting"] == 0, timeout=600, poll=0.05)
        t_drained = time.monotonic()
        assert all(archived_upstream(i) for i in local_ids)
        out.update(upstream_outage_waiting=waiting_before, upstream_recovery_drained_s=round(t_drained - t_up, 2))
        print(json.dumps({"outage": "upstream", "waiting": waiting_before, "drained_s": out["upstream_recovery_drained_s"]}))
        total = admin.search(campaign=CAMPAIGN, limit=1)["total"]
        out["upstream_total"] = total
        assert total == 2 * args.count + 2 * args.spectra, total  # nothing lost, nothing doubled
        box.close()
    finally:
        procs.stop_all()
    print(json.dumps(out))
    return 0


def _answers(client) -> bool:
    try:
        client.health()
        return True
    except Exception:
        return False


if __name__ == "__main__":
    sys.exit(main())
