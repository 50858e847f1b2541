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


#: the hand-written guides whose command lines are checked against the real `rosace` parser
GUIDES = ["getting-started.md", "hardware.md", "campaigns.md", "operations.md", "troubleshooting.md",
          "adapting/custom-step.md", "adapting/new-spectrograph.md", "adapting/scheduler-rule.md", "adapting/user-module.md"]


def _subcommands(parser) -> dict:
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def test_rosace_commands_in_the_guides_exist():
    import re

    from rosace_core.cli import build_parser

    root = build_parser()
    checked = 0
    for page in GUIDES:
        text = (REPO / "docs" / page).read_text(encoding="utf-8")
        blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
        inline = re.findall(r"(?<!`)`(rosace [^`]+)`(?!`)", re.sub(r"```.*?```", "", text, flags=re.S))
        for block in blocks + inline:
            for line in block.splitlines():
                words = line.split("#")[0].split()
                if not words or words[0] not in ("rosace", "rosace.exe") or "nightlog" in words:
                    continue  # the example user module is installed only by its own test
                parser, i = root, 1
                # global options come before the command
                while i < len(words) and words[i].startswith("--"):
                    i += 1 if words[i] in ("--version", "--help") or "=" in words[i] else 2
                while i < len(words) and not words[i].startswith("-") and not set(words[i]) & set("<.["):
                    choices = _subcommands(parser)
                    if not choices:
                        break
                    assert words[i] in choices, f"{page}: `{line.strip()}`: no command {words[i]!r}"
                    parser = choices[words[i]]
                    i += 1
                options = {s for a in parser._actions for s in a.option_strings}
                for word in words[i:]:
                    if word.startswith("--") and "<" not in line:
                        assert word.split("=")[0] in options, f"{page}: `{line.strip()}`: no option {word}"
                checked += 1
    assert checked >= 20
