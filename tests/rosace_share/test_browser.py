"""The web gallery in a real headless browser (Debian's chromium through Playwright)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rosace_core.rest import BackgroundServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Where CI keeps the gallery's pictures for a person to look at (build/ is git-ignored).
SCREENSHOTS = Path(os.environ.get("ROSACE_SCREENSHOTS_GALLERY", Path(__file__).resolve().parents[2] / "build" / "screenshots" / "gallery"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not found at {CHROMIUM}: install Debian's chromium to run the gallery browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_gallery_in_browser(app, be_series, browser, tmp_path):
    archive = app.extensions["rosace_share"].archive
    for data, _, _ in be_series:
        archive.add(data, owner="observatory")
    outside = []
    with BackgroundServer(app) as server:
        page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
        # Offline by design: any request leaving this server is a failure.
        page.on("request", lambda req: None if req.url.startswith(server.url) else outside.append(req.url))
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.goto(f"{server.url}/")  # the server's bare address opens the gallery
        assert page.url == f"{server.url}/gallery/"
        assert "gam Cas" in page.inner_text("table.objects")
        page.screenshot(path=str(SCREENSHOTS / "index.png"), full_page=True)
        page.click("text=gam Cas")
        page.wait_for_load_state("networkidle")
        assert page.title().startswith("gam Cas")
        for plot in ("overlay", "line", "dynamic", "ew"):
            img = page.locator(f"#plot-{plot}")
            img.scroll_into_view_if_needed()
            page.wait_for_function("id => { const i = document.getElementById(id); return i.complete && i.naturalWidth > 0; }", arg=f"plot-{plot}", timeout=30000)
            box = img.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 100, plot
        assert page.locator("table.epochs tbody tr").count() == 30
        # Sharp plots: drawn at least as wide as they are shown on this page.
        for plot in ("overlay", "dynamic"):
            natural = page.evaluate("id => document.getElementById(id).naturalWidth", f"plot-{plot}")
            shown = page.locator(f"#plot-{plot}").bounding_box()["width"]
            assert natural >= shown, (plot, natural, shown)
        assert "30 spectra from" in page.inner_text("main")
        shot = SCREENSHOTS / "object.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 50_000
        # Spectrum page: header and working downloads.
        page.locator("table.epochs tbody tr").first.locator("a").first.click()
        page.wait_for_load_state("networkidle")
        assert "BSS_ITRP" in page.inner_text("table.header")
        page.screenshot(path=str(SCREENSHOTS / "spectrum.png"), full_page=True)
        with page.expect_download() as dl:
            page.click("#dl-bess")
        path = dl.value.path()
        assert dl.value.suggested_filename.startswith("_gamcas_") and Path(path).read_bytes().startswith(b"SIMPLE  =")
        with page.expect_download() as dl:
            page.click("#dl-csv")
        assert Path(dl.value.path()).read_text().startswith("wavelength_angstrom,flux,error")
        page.close()
    assert outside == []
    print(f"object page screenshot: {shot}")
