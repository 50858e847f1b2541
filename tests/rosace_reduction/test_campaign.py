"""Campaign tagging: ROSCAMP on the raw frames -> reduced FITS -> ``campaign`` of the upload to a real share app."""

from __future__ import annotations

import shutil

import pytest
import requests
from astropy.io import fits

from rosace_core.config import config_from_dict
from rosace_core.rest import BackgroundServer
from rosace_reduction.api import create_app, upload_to_share
from rosace_reduction.client import ReductionClient

SHARE_TOKEN = "share-admin"
CAMPAIGN = "aras-be-2026"


def share_app(tmp_path, mode: str):
    from rosace_share.api import create_app as create_share_app

    cfg = config_from_dict({"data": {"root": str(tmp_path / f"share-{mode}")}, "share": {"mode": mode}})
    return create_share_app(cfg, token=SHARE_TOKEN)


def share_search(url: str, **query) -> dict:
    resp = requests.get(url + "/api/v1/share/spectra", params=query, headers={"Authorization": f"Bearer {SHARE_TOKEN}"}, timeout=10)
    resp.raise_for_status()
    return resp.json()


@pytest.fixture
def campaign_night(synthetic_night, tmp_path):
    """The synthetic night with ROSCAMP on every frame, as the sequencer writes it for a campaign file."""
    folder, _ = synthetic_night
    night = tmp_path / "raw" / "20261120"
    shutil.copytree(folder, night)
    paths = list(night.rglob("*.fits"))
    assert paths
    for path in paths:
        with fits.open(path, mode="update") as hdul:
            hdul[0].header["ROSCAMP"] = CAMPAIGN
    return night


def test_the_campaign_goes_from_the_frames_to_the_share_module(campaign_night, tmp_path):
    app = share_app(tmp_path, "observatory")
    try:
        with BackgroundServer(app) as share:
            cfg = config_from_dict({"data": {"root": str(tmp_path)}, "reduction": {"share_url": share.url, "share_token": SHARE_TOKEN}})
            with BackgroundServer(create_app(cfg, token="tok")) as srv:
                client = ReductionClient(srv.url, token="tok")
                done = client.wait_job(client.reduce(folder=str(campaign_night))["id"], timeout=120)
            assert done["state"] == "succeeded", done
            spectrum = done["result"]["spectra"][0]
            assert spectrum["share"]["ok"] and spectrum["share"]["status"] == 201
            assert spectrum["share"]["campaign"] == CAMPAIGN
            with fits.open(spectrum["fits"]) as hdul:
                assert hdul[0].header["ROSCAMP"] == CAMPAIGN
            # The share archive holds the spectrum under the campaign: what its upstream forwarding needs.
            tagged = share_search(share.url, campaign=CAMPAIGN)
            assert tagged["total"] == 1 and tagged["items"][0]["campaign"] == CAMPAIGN
    finally:
        app.extensions["rosace_share"].archive.close()


def test_a_share_that_refuses_the_campaign_still_gets_the_spectrum_untagged(campaign_night, tmp_path):
    from rosace_reduction.batch import reduce_paths
    from rosace_reduction.pipeline import Options

    report = reduce_paths([campaign_night], Options(output_root=str(tmp_path / "reduced")))
    record = report.outcomes[0].record
    assert record["campaign"] == CAMPAIGN
    # A network server knows only its own campaigns: this one is unknown there.
    app = share_app(tmp_path, "server")
    try:
        with BackgroundServer(app) as share:
            out = upload_to_share(record["products"]["fits"], share.url, SHARE_TOKEN, campaign=record["campaign"])
            assert out["ok"] and out["status"] == 201 and out["campaign"] is None
            assert share_search(share.url)["total"] == 1
            assert share_search(share.url, campaign=CAMPAIGN)["total"] == 0
    finally:
        app.extensions["rosace_share"].archive.close()
