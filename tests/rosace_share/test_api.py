"""REST API of the share module on both backends: uploads, search, downloads, campaigns, reports, security."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime

import pytest
from astropy.io import fits


AUTH = {"Authorization": "Bearer admin-token-for-tests"}


def upload(web, data, headers=AUTH, campaign=None, name="s.fits", path="/api/v1/share/spectra", method="post"):
    form = {"file": (io.BytesIO(data), name)}
    if campaign:
        form["campaign"] = campaign
    return getattr(web, method)(path, data=form, headers=headers, content_type="multipart/form-data")


def account(web, name, role="observer"):
    resp = web.post("/api/v1/share/accounts", json={"name": name, "role": role}, headers=AUTH)
    assert resp.status_code == 201, resp.json
    return {"Authorization": f"Bearer {resp.json['token']}"}


def test_upload_search_download(web, make_bess):
    resp = upload(web, make_bess("gam Cas", datetime(2025, 9, 1, 22, 30)))
    assert resp.status_code == 201, resp.json
    sid = resp.json["id"]
    assert resp.json["object"] == "gam Cas" and resp.json["aras_name"] == "asdb_gamcas_20250901_937.fit"
    dup = upload(web, make_bess("gam Cas", datetime(2025, 9, 1, 22, 30)))
    assert dup.status_code == 409 and dup.json["existing_id"] == sid
    found = web.get("/api/v1/share/spectra?object=GAM%20CAS&start=2025-09-01&end=2025-09-01").json
    assert found["total"] == 1 and found["items"][0]["id"] == sid
    assert web.get("/api/v1/share/spectra?object=gam%20Cas&start=2025-09-02").json["total"] == 0
    full = web.get(f"/api/v1/share/spectra/{sid}").json
    assert full["header"]["BSS_ITRP"] == 15000 and full["provenance"]["calibrations"]["arc"] == ["arc.fits"]
    raw = web.get(f"/api/v1/share/spectra/{sid}/fits")
    assert raw.status_code == 200 and raw.data == make_bess("gam Cas", datetime(2025, 9, 1, 22, 30))
    bess = web.get(f"/api/v1/share/spectra/{sid}/bess")
    assert bess.status_code == 200 and "_gamcas_20250901_937_AObserver.fit" in bess.headers["Content-Disposition"]
    assert fits.open(io.BytesIO(bess.data))[0].header["OBJNAME"] == "gam Cas"
    csv = web.get(f"/api/v1/share/spectra/{sid}/csv")
    assert csv.data.decode().startswith("wavelength_angstrom,flux,error\n")
    data = web.get(f"/api/v1/share/spectra/{sid}/data").json
    assert len(data["wavelength"]) == len(data["flux"]) == len(data["error"]) == 600
    png = web.get(f"/api/v1/share/spectra/{sid}/plot.png")
    assert png.mimetype == "image/png" and png.data[:4] == b"\x89PNG"
    assert web.get("/api/v1/share/objects").json[0]["spectra"] == 1


def test_bess_export_refused_with_missing_keywords(web, make_bess):
    sid = upload(web, make_bess(drop=("BSS_TELL",))).json["id"]
    resp = web.get(f"/api/v1/share/spectra/{sid}/bess")
    assert resp.status_code == 422 and resp.json["missing"] == ["BSS_TELL"]


def test_object_zip_and_line_analysis(web, be_series):
    for data, _, _ in be_series[:6]:
        assert upload(web, data).status_code == 201
    z = zipfile.ZipFile(io.BytesIO(web.get("/api/v1/share/objects/gam%20Cas/zip").data))
    names = z.namelist()
    assert "index.json" in names and sum(n.endswith(".fit") for n in names) == 6 and sum(n.endswith(".csv") for n in names) == 6
    lines = web.get("/api/v1/share/objects/gamcas/lines?line=H-alpha&vmax=800").json
    assert len(lines["jd"]) == 6 and len(lines["image"][0]) == 150 and all(e["ew"] < 0 for e in lines["ew"])
    assert web.get("/api/v1/share/objects/gamcas/lines?line=Lyman").status_code == 400


def test_write_without_token_is_401(web, make_bess):
    assert upload(web, make_bess(), headers={}).status_code == 401
    assert upload(web, make_bess(), headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert web.post("/api/v1/share/reports", json={"title": "x", "body_html": "y"}).status_code == 401
    assert web.post("/api/v1/share/campaigns", json={"id": "c", "title": "t"}).status_code == 401
    assert web.get("/api/v1/share/audit").status_code == 401


def test_owner_only_delete_and_replace(web, make_bess):
    alice, bob = account(web, "alice"), account(web, "bob")
    sid = upload(web, make_bess(seed=1), headers=alice).json["id"]
    assert web.delete(f"/api/v1/share/spectra/{sid}", headers=bob).status_code == 403
    assert upload(web, make_bess(seed=2), headers=bob, path=f"/api/v1/share/spectra/{sid}", method="put").status_code == 403
    replaced = upload(web, make_bess(seed=2, snr=50), headers=alice, path=f"/api/v1/share/spectra/{sid}", method="put")
    assert replaced.status_code == 200 and replaced.json["snr"] == 50
    assert web.delete(f"/api/v1/share/spectra/{sid}", headers=alice).status_code == 204
    assert web.get(f"/api/v1/share/spectra/{sid}").status_code == 404
    log = web.get("/api/v1/share/audit", headers=AUTH).json
    assert [(e["actor"], e["action"]) for e in log[:3]] == [("alice", "spectrum.delete"), ("alice", "spectrum.replace"), ("alice", "spectrum.add")]
    assert web.get("/api/v1/share/audit", headers=bob).status_code == 403


def test_an_account_named_like_the_installation_owns_nothing_of_it(web, make_bess):
    """Ownership is the account's id: a name equal to the installation's owner gives no rights."""
    sid = upload(web, _obs(make_bess, "inst-1", 1)).json["id"]  # the installation's own token
    owner = web.get(f"/api/v1/share/spectra/{sid}").json["owner"]
    impostor = account(web, owner)
    assert web.delete(f"/api/v1/share/spectra/{sid}", headers=impostor).status_code == 403
    assert upload(web, make_bess(seed=3), headers=impostor, path=f"/api/v1/share/spectra/{sid}", method="put").status_code == 403
    # Its upload of the same observation id is its own spectrum, not a new version of the installation's.
    theirs = upload(web, _obs(make_bess, "inst-1", 2), headers=impostor)
    assert theirs.status_code == 201 and theirs.json["id"] != sid
    assert web.get(f"/api/v1/share/spectra/{sid}").status_code == 200


def _obs(make_bess, obs_id, seed, **kw):
    return make_bess("gam Cas", datetime(2025, 9, 1, 22, 30), seed=seed, extra={"ROSOBSID": obs_id}, **kw)


def test_a_re_reduced_observation_replaces_its_first_version(web, make_bess):
    """The reduction uploads the same observation again (night's darks, better response): one spectrum, 200, new data."""
    first = upload(web, _obs(make_bess, "20250901-gamcas-01", 1, snr=40), name="gamcas_20250901.fits")
    assert first.status_code == 201 and first.json["replaced"] is False and first.json["observation_id"] == "20250901-gamcas-01"
    new_data = _obs(make_bess, "20250901-gamcas-01", 2, snr=160)
    second = upload(web, new_data, name="gamcas_20250901.fits")
    assert second.status_code == 200, second.json
    assert second.json["id"] == first.json["id"] and second.json["replaced"] is True and second.json["snr"] == 160
    assert web.get("/api/v1/share/spectra").json["total"] == 1
    assert web.get(f"/api/v1/share/spectra/{first.json['id']}/fits").data == new_data
    full = web.get(f"/api/v1/share/spectra/{first.json['id']}").json
    assert full["observation_id"] == "20250901-gamcas-01" and "replaced" not in full
    log = web.get("/api/v1/share/audit", headers=AUTH).json
    assert [(e["action"], e["target"]) for e in log[:2]] == [("spectrum.replace", f"spectrum/{first.json['id']}"), ("spectrum.add", f"spectrum/{first.json['id']}")]
    # The very same file again is still a duplicate (a re-run), not a new version.
    again = upload(web, new_data)
    assert again.status_code == 409 and again.json["existing_id"] == first.json["id"]


def test_same_observation_id_from_two_accounts_is_two_spectra(web, make_bess):
    alice, bob = account(web, "alice"), account(web, "bob")
    a = upload(web, _obs(make_bess, "obs-1", 1), headers=alice)
    b = upload(web, _obs(make_bess, "obs-1", 2), headers=bob)
    assert (a.status_code, b.status_code) == (201, 201) and a.json["id"] != b.json["id"]
    assert web.get("/api/v1/share/spectra").json["total"] == 2


def test_spectra_without_observation_id_are_each_added(web, make_bess):
    first, second = upload(web, make_bess(seed=1)), upload(web, make_bess(seed=2))
    assert (first.status_code, second.status_code) == (201, 201) and first.json["id"] != second.json["id"]
    assert "observation_id" not in first.json and first.json["replaced"] is False
    assert web.get("/api/v1/share/spectra").json["total"] == 2


def test_path_traversal_in_downloads_is_404(web, make_bess):
    sid = upload(web, make_bess()).json["id"]
    for path in [
        f"/api/v1/share/spectra/..%2F..%2F{sid}/fits",
        "/api/v1/share/spectra/../../etc/passwd/fits",
        "/api/v1/share/spectra/%2e%2e%2fetc%2fpasswd/csv",
        "/gallery/static/../api.py",
        "/gallery/static/..%2fapi.py",
        "/gallery/static/%2e%2e/templates/share/base.html",
        "/api/v1/share/campaigns/..%2F..%2Fetc/files/passwd",
        "/api/v1/share/spectra/99999999999999999999/fits",
    ]:
        resp = web.get(path)
        assert resp.status_code == 404, path
        assert b"import" not in resp.data and b"root:" not in resp.data


def test_oversized_and_non_fits_uploads(web, make_bess):
    big = upload(web, make_bess(n=700_000))
    assert big.status_code == 413 and "MiB" in big.json["detail"]
    text = upload(web, b"just some text, not FITS\n" * 200, name="notes.txt")
    assert text.status_code == 422 and "not a FITS file" in text.json["detail"]
    no_axis = upload(web, make_bess(drop=("CRVAL1",)))
    assert no_axis.status_code == 422 and "CRVAL1" in no_axis.json["detail"]
    nofile = web.post("/api/v1/share/spectra", data={"x": "1"}, headers=AUTH, content_type="multipart/form-data")
    assert nofile.status_code == 400 and "'file'" in nofile.json["detail"]


@pytest.mark.parametrize("hostile", ["' OR '1'='1", "<script>alert(1)</script>", "%' ; DROP TABLE spectra; --", "\u202e\u0000x", "a" * 5000, "../../etc/passwd"])
def test_hostile_search_parameters_are_harmless(web, make_bess, hostile):
    upload(web, make_bess())
    for param in ("object", "observer", "instrument", "campaign", "start", "quality", "min_snr", "limit"):
        resp = web.get("/api/v1/share/spectra", query_string={param: hostile})
        assert resp.status_code in (200, 400), (param, resp.status_code)
        if resp.status_code == 200:
            assert resp.json["total"] == 0
    page = web.get("/gallery/", query_string={"object": hostile})
    assert page.status_code in (200, 400) and b"<script>alert(1)" not in page.data
    assert web.get("/api/v1/share/spectra").json["total"] == 1


def test_reports_are_cleaned_and_shown(web):
    resp = web.post("/api/v1/share/reports", headers=AUTH, json={
        "title": "Night 2025-09-01", "body_html": "<h2>Summary</h2><p onclick='x()'>3 targets <script>alert(1)</script><a href='javascript:x'>bad</a></p>",
        "sections": [{"heading": "Targets", "items": ["gam Cas", "<b>zet Tau</b>"]}],
    })
    assert resp.status_code == 201 and resp.json["url"] == f"/gallery/reports/{resp.json['id']}"
    page = web.get(resp.json["url"]).data.decode()
    assert "<h2>Summary</h2>" in page and "3 targets" in page and "gam Cas" in page
    assert "<script>alert" not in page and "onclick" not in page and "javascript:" not in page and "&lt;b&gt;zet Tau" in page
    assert web.post("/api/v1/share/reports", headers=AUTH, json={"title": "empty"}).status_code == 422


OF = """rosace: 1
id: {id}
observer: {{name: Organiser}}
target: {{name: gam Cas, ra: "00:56:42.5", dec: "+60:43:00"}}
instrument: {{spectrograph: lhires2400}}
sequence:
  science: {{count: 3, exposure: 300}}
"""


def test_campaign_roles(web, make_bess):
    org, obs = account(web, "org", "organiser"), account(web, "obs1")
    assert web.post("/api/v1/share/campaigns", json={"id": "be-2025", "title": "Be stars"}, headers=obs).status_code == 403
    assert web.post("/api/v1/share/campaigns", json={"id": "be-2025", "title": "Be stars"}, headers=org).status_code == 201
    assert web.post("/api/v1/share/campaigns", json={"id": "be-2025", "title": "again"}, headers=org).status_code == 409
    ok = web.post("/api/v1/share/campaigns/be-2025/files", json={"content": OF.format(id="gamcas-1"), "filename": "gamcas.yaml"}, headers=org)
    assert ok.status_code == 201, ok.json
    bad = web.post("/api/v1/share/campaigns/be-2025/files", json={"content": "rosace: 1\nid: x\n", "filename": "bad.yaml"}, headers=org)
    assert bad.status_code == 422 and bad.json["errors"]
    assert web.post("/api/v1/share/campaigns/be-2025/files", json={"content": OF.format(id="z")}, headers=obs).status_code == 403
    files = web.get("/api/v1/share/campaigns/be-2025/files").json
    assert [f["id"] for f in files] == ["gamcas-1"] and "gam Cas" in files[0]["content"]
    assert upload(web, make_bess(), headers=obs, campaign="nope").status_code == 404  # server mode: known campaigns only
    assert upload(web, make_bess(), headers=obs, campaign="be-2025").status_code == 201
    camp = web.get("/api/v1/share/campaigns/be-2025").json
    assert camp["files"] == 1 and camp["spectra"] == 1 and camp["organiser"] == "org"
    assert "Be stars" in web.get("/gallery/campaigns/be-2025").data.decode()
    assert web.delete("/api/v1/share/campaigns/be-2025", headers=obs).status_code == 403


def test_gallery_pages(web, be_series):
    for data, _, _ in be_series[:4]:
        upload(web, data)
    index = web.get("/gallery/").data.decode()
    assert "gam Cas" in index and "/gallery/objects/GAMCAS" in index
    page = web.get("/gallery/objects/GAMCAS").data.decode()
    assert page.count("/gallery/spectra/") == 4 and 'id="plot-dynamic"' in page
    for kind in ("overlay", "line", "dynamic", "ew"):
        img = web.get(f"/gallery/objects/GAMCAS/{kind}.png?line=H-alpha")
        assert img.status_code == 200 and img.data[:4] == b"\x89PNG", kind
    sid = web.get("/api/v1/share/spectra").json["items"][0]["id"]
    spage = web.get(f"/gallery/spectra/{sid}").data.decode()
    assert "BSS_ITRP" in spage and f"/api/v1/share/spectra/{sid}/bess" in spage
    assert web.get("/gallery/objects/NOPE").status_code == 404
    css = web.get("/gallery/static/style.css")
    assert css.status_code == 200 and b"font-family" in css.data
    assert "cdn" not in (index + page).lower() and "https://" not in (index + page)


def test_gallery_root_single_epoch_and_network_campaign(app, web, be_series):
    """Regressions of the gallery audit: '/' 404, '1 spectra', campaign link 404, absurd one-epoch plots."""
    import io

    import numpy as np
    from PIL import Image

    assert web.get("/").status_code in (301, 302, 303, 308) and web.get("/").headers["Location"].endswith("/gallery/")
    data = be_series[0][0]
    # An observatory's archive (campaigns not checked) sending to a campaign of the network.
    archive = app.extensions["rosace_share"].archive
    archive.require_known_campaign = False
    archive.add(data, owner="observatory", campaign="net-camp")
    page = web.get("/gallery/objects/GAMCAS").data.decode()
    assert "1 spectrum from" in page and "1 spectra" not in page
    sid = web.get("/api/v1/share/spectra").json["items"][0]["id"]
    assert "/gallery/campaigns/net-camp" in web.get(f"/gallery/spectra/{sid}").data.decode()
    camp = web.get("/gallery/campaigns/net-camp")
    assert camp.status_code == 200 and "Results: 1 spectrum" in camp.data.decode()
    assert web.get("/gallery/campaigns/nothing-here").status_code == 404
    for kind in ("dynamic", "ew", "overlay"):
        png = web.get(f"/gallery/objects/GAMCAS/{kind}.png?line=H-alpha").data
        img = Image.open(io.BytesIO(png))
        assert img.size[0] >= 1200, (kind, img.size)  # sharp: 160 dpi
    # One epoch: the dynamic spectrum says it needs two (mostly blank), not a stretched single row.
    dyn = np.asarray(Image.open(io.BytesIO(web.get("/gallery/objects/GAMCAS/dynamic.png?line=H-alpha").data)).convert("L"))
    assert (dyn > 240).mean() > 0.9


def test_single_epoch_ew_axis_is_readable():
    """One EW point: a day either side on a plain MJD axis, not +-1e-5 d with an offset."""
    from matplotlib.figure import Figure  # noqa: F401 - matplotlib present

    from rosace_share import plots

    captured = {}
    original = plots._png

    def keep(fig):
        ax = fig.axes[0]
        captured["xlim"], captured["ylim"] = ax.get_xlim(), ax.get_ylim()
        fig.canvas.draw()
        captured["offset"] = ax.xaxis.get_major_formatter().get_offset()
        return original(fig)

    plots._png = keep
    try:
        plots.ew_png([2460700.5], [-12.0], "H-alpha")
    finally:
        plots._png = original
    lo, hi = captured["xlim"]
    assert hi - lo >= 2 and lo < 60700 < hi
    assert captured["offset"] == ""
    assert abs(captured["ylim"][0] - captured["ylim"][1]) >= 1


def test_openapi_documents_multipart_upload(web):
    doc = web.get("/api/v1/openapi.json").json
    post = doc["paths"]["/api/v1/share/spectra"]["post"]
    assert "multipart/form-data" in post["requestBody"]["content"]
    assert {"200", "201"} <= set(post["responses"]) and "replaced" in doc["components"]["schemas"]["SpectrumOut"]["properties"]
    assert "/api/v1/share/campaigns/{slug}/files" in doc["paths"]


def test_a_share_server_loads_matplotlib_only_for_its_first_plot(tmp_path):
    # A fresh interpreter: the test session itself has imported matplotlib long ago.
    code = f"""
import sys
from tests.rosace_share.conftest import share_config, bess_bytes, ADMIN
from rosace_share.api import create_app
app = create_app(share_config(__import__("pathlib").Path({str(tmp_path)!r}), "sqlite:///{(tmp_path / 'a.db').as_posix()}", mode="server"), token=ADMIN)
assert "matplotlib" not in sys.modules, "imported with the app"
web = app.test_client()
import io
r = web.post("/api/v1/share/spectra", data={{"file": (io.BytesIO(bess_bytes()), "s.fits")}}, headers={{"Authorization": f"Bearer {{ADMIN}}"}}, content_type="multipart/form-data")
assert r.status_code == 201, r.get_json()
assert "matplotlib" not in sys.modules, "imported by an upload"
png = web.get(f"/api/v1/share/spectra/{{r.get_json()['id']}}/plot.png")
assert png.data[:4] == b"\\x89PNG" and "matplotlib" in sys.modules
print("ok")
"""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120)
    assert result.stdout.strip().endswith("ok"), result.stderr[-2000:]
