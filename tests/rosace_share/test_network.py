"""Two simulated observatories exchange a campaign and its results through a share server on PostgreSQL.

Real servers (waitress on free ports) and the real client: the organiser publishes
an Observing File; each observatory pulls it into its inbox; each observatory's
local archive (SQLite, installation token) forwards its campaign results upstream
automatically; both observatories then see every result on the server.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from rosace_core.errors import ConflictError
from rosace_core.http import ApiError
from rosace_core.rest import BackgroundServer
from rosace_share.api import create_app
from rosace_share.client import ShareClient

OBSERVING_FILE = """rosace: 1
id: gamcas-campaign
observer: {name: Organiser}
target: {name: gam Cas, ra: "00:56:42.5", dec: "+60:43:00"}
instrument: {spectrograph: lhires2400}
sequence:
  science: {count: 3, exposure: 300}
"""


def _config(tmp_path, name, **share):
    from rosace_core.config import config_from_dict

    return config_from_dict({"data": {"root": str(tmp_path / name)}, "share": share})


class _Clients(list):
    """Every client made by the test, closed before the servers stop (waitress waits for open connections)."""

    def __call__(self, url, token=None):
        client = ShareClient(url, token=token)
        self.append(client)
        return client

    def close(self):
        for client in self:
            client.session.close()


def _wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.mark.postgres
def test_two_observatories_exchange_a_campaign(tmp_path, pg_schema_url, make_bess):
    server_app = create_app(_config(tmp_path, "server", mode="server", database_url=pg_schema_url), token="server-admin")
    ShareClient = _Clients()  # noqa: N806 (shadows the class on purpose: same call, tracked)
    with BackgroundServer(server_app) as server:
        admin = ShareClient(server.url, token="server-admin")
        org_token = admin.create_account("organiser", "organiser")["token"]
        tokens = {name: admin.create_account(name)["token"] for name in ("obs-north", "obs-south")}
        organiser = ShareClient(server.url, token=org_token)
        organiser.create_campaign("be-2025", "Be stars autumn 2025", "H-alpha every 3 nights")
        organiser.publish("be-2025", OBSERVING_FILE, filename="gamcas.yaml")

        observatories = {}
        for name, token in tokens.items():
            local_app = create_app(_config(tmp_path, name, observer=name, upstream_url=server.url, upstream_token=token), token=f"{name}-local")
            observatories[name] = (local_app, BackgroundServer(local_app).start())
        try:
            for i, (name, (_, local)) in enumerate(observatories.items()):
                pulled = ShareClient(server.url, token=tokens[name]).pull_campaign("be-2025", folder=tmp_path / name / "inbox")
                assert [f["id"] for f in pulled] == ["gamcas-campaign"]
                assert "gam Cas" in (tmp_path / name / "inbox" / "gamcas.yaml").read_text()
                # The reduction uploads to the local archive with the campaign tag...
                reduction = ShareClient(local.url, token=f"{name}-local")
                for night in range(2):
                    reduction.upload(make_bess("gam Cas", datetime(2025, 9, 1 + 3 * night, 22, 10 * i), seed=10 * i + night, observer=name), campaign="be-2025")
                reduction.upload(make_bess("zet Tau", datetime(2025, 9, 2, 23), seed=90 + i, observer=name))  # not a campaign result

            # ...and the results reach the share server on their own.
            results = _wait(lambda: (r := organiser.get("/campaigns/be-2025/spectra"))["total"] == 4 and r)
            assert sorted({s["owner"] for s in results["items"]}) == ["obs-north", "obs-south"]
            assert admin.search(object="zet Tau")["total"] == 0
            for name, (app, local) in observatories.items():
                local_items = ShareClient(local.url).search(campaign="be-2025")["items"]
                assert all(s["upstream"].startswith(server.url + "#") for s in local_items)
            # Every observatory sees the others' results; only the owner may delete.
            north = ShareClient(server.url, token=tokens["obs-north"])
            south_item = next(s for s in north.search(campaign="be-2025")["items"] if s["owner"] == "obs-south")
            with pytest.raises(ApiError) as err:
                north.delete_spectrum(south_item["id"])
            assert err.value.status == 403
            # Pushing the same files again is harmless (duplicates by content hash).
            again = make_bess("gam Cas", datetime(2025, 9, 1, 22, 0), seed=0, observer="obs-north")
            with pytest.raises(ConflictError):
                north.upload(again, campaign="be-2025")
            audit = admin.get("/audit")
            assert {("obs-north", "spectrum.add"), ("obs-south", "spectrum.add"), ("organiser", "campaign.publish")} <= {(e["actor"], e["action"]) for e in audit}
        finally:
            ShareClient.close()
            for app, local in observatories.values():
                local.stop()
                app.extensions["rosace_share"].archive.close()
    server_app.extensions["rosace_share"].archive.close()


def test_a_new_version_replaces_the_forwarded_copy_upstream(tmp_path, db_url, make_bess):
    """A re-reduced campaign result (same ROSOBSID) replaces its copy on the share server (PUT), never a second copy."""

    def version(obs_id, seed, **kw):
        return make_bess("gam Cas", datetime(2025, 9, 1, 22, 30), seed=seed, observer="obs-north", extra={"ROSOBSID": obs_id}, **kw)

    server_app = create_app(_config(tmp_path, "server", mode="server", database_url=db_url), token="server-admin")
    ShareClient = _Clients()  # noqa: N806 (tracked clients, see _Clients)
    with BackgroundServer(server_app) as server:
        admin = ShareClient(server.url, token="server-admin")
        token = admin.create_account("obs-north")["token"]
        admin.create_campaign("be-2025", "Be stars autumn 2025")
        local_app = create_app(_config(tmp_path, "north", observer="obs-north", upstream_url=server.url, upstream_token=token), token="north-local")
        local = BackgroundServer(local_app).start()
        try:
            reduction = ShareClient(local.url, token="north-local")

            def forwarded(local_id):
                return _wait(lambda: (u := reduction.spectrum(local_id)["upstream"]) and u.startswith(server.url + "#") and u)

            # 1. Sent, then re-reduced with the night's darks: the upstream copy is replaced in place.
            first = reduction.upload(version("obs-1", 1, snr=40), campaign="be-2025")
            remote_id = int(forwarded(first["id"]).split("#")[1])
            better = version("obs-1", 2, snr=120)
            second = reduction.upload(better, campaign="be-2025")
            assert second["id"] == first["id"] and second["replaced"] is True
            _wait(lambda: admin.download(remote_id) == better)
            assert admin.search(campaign="be-2025")["total"] == 1
            assert reduction.spectrum(first["id"])["upstream"] == f"{server.url}#{remote_id}"
            audit = [(e["actor"], e["action"], e["target"]) for e in admin.get("/audit")]
            assert ("obs-north", "spectrum.replace", f"spectrum/{remote_id}") in audit

            # 2. The upstream refuses the new version (its copy was deleted there): logged, the local replacement stays.
            third = reduction.upload(version("obs-2", 3), campaign="be-2025")
            gone = int(forwarded(third["id"]).split("#")[1])
            ShareClient(server.url, token=token).delete_spectrum(gone)
            newer = version("obs-2", 4, snr=90)
            assert reduction.upload(newer, campaign="be-2025")["replaced"] is True
            note = _wait(lambda: "not sent" in (u := reduction.spectrum(third["id"])["upstream"]) and u)
            assert note.startswith(f"{server.url}#{gone} (new version not sent:")
            assert reduction.download(third["id"]) == newer and ShareClient(local.url).search()["total"] == 2
            assert admin.search(campaign="be-2025")["total"] == 1  # not posted a second time

            # 3. Two versions uploaded back to back (the first still on its way): one copy upstream, the newest.
            fast = reduction.upload(version("obs-3", 5), campaign="be-2025")
            newest = version("obs-3", 6, snr=200)
            reduction.upload(newest, campaign="be-2025")
            rid = int(forwarded(fast["id"]).split("#")[1])
            _wait(lambda: admin.download(rid) == newest)
            assert admin.search(campaign="be-2025")["total"] == 2
            jobs = local_app.extensions["rosace_share"].runner.list()
            assert all(job.wait(30) for job in jobs) and {job.state for job in jobs} == {"succeeded"}
            sent = sorted(job.result["sent"] for job in jobs)
            assert sent == ["posted"] * 3 + ["refused"] + ["replaced"] * 2, sent  # PUT, never a second POST
        finally:
            for job in local_app.extensions["rosace_share"].runner.list():
                job.wait(30)  # no forward still running while the servers stop
            ShareClient.close()
            local.stop()
            local_app.extensions["rosace_share"].archive.close()
    server_app.extensions["rosace_share"].archive.close()
