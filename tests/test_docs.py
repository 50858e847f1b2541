"""The documentation site builds without a single warning, and every page of its navigation exists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


class _Loader(yaml.SafeLoader):
    """mkdocs.yml may use MkDocs' own YAML tags; the nav never does."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def nav_pages(nav) -> list[str]:
    """Every Markdown page named in a MkDocs nav (nested sections included)."""
    pages: list[str] = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            pages += nav_pages(value)
        elif isinstance(value, str) and not value.startswith(("http://", "https://")):
            pages.append(value)
    return pages


def load_nav() -> list[str]:
    config = yaml.load((REPO / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_Loader)
    return nav_pages(config["nav"])


#: pages generated at build time by docs/api/openapi_pages.py rather than written by hand
GENERATED = {f"api/{m}.md" for m in ("dome", "scheduler", "sequencer", "reduction", "share")}


def test_every_hand_written_page_of_the_nav_exists():
    pages = load_nav()
    assert "getting-started.md" in pages and "troubleshooting.md" in pages and "api/dome.md" in pages
    missing = [p for p in pages if p not in GENERATED and not (REPO / "docs" / p).is_file()]
    assert missing == []


def test_rest_pages_render_each_module_openapi(tmp_path):
    sys.path.insert(0, str(REPO / "docs" / "api"))
    try:
        import openapi_pages
    finally:
        sys.path.remove(str(REPO / "docs" / "api"))
    doc = openapi_pages.openapi_of("scheduler", tmp_path)
    page = openapi_pages.render_markdown("scheduler", doc)
    assert "`POST /api/v1/scheduler/next`" in page
    assert "### ObservingFileSubmission" in page or "Request body (JSON)" in page
    # Every path the server documents appears on the page.
    assert all(f"`{path}`" in page for path in doc["paths"])


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr
    for page in load_nav():
        built = site / Path(page).with_suffix(".html")
        assert built.is_file(), f"{page} was not built"
    assert "POST /api/v1/dome/open" in (site / "api" / "dome.html").read_text(encoding="utf-8")
