"""examples/user_module: a user module found through the ``rosace.modules`` entry point,
answering on its own REST API and shown by the desktop shell after the built-in five.

The example is "installed" the way pip installs it, without touching the
environment: a temporary site folder holds the package's ``.dist-info`` (its
entry points copied from the example's own pyproject.toml) and goes on
``sys.path`` and ``PYTHONPATH`` for the test only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from rosace_core import plugins
from rosace_core.config import config_from_dict
from rosace_core.errors import ConfigError
from rosace_core.http import ApiError
from rosace_core.rest import BackgroundServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "user_module"
BUILTINS = ["dome", "scheduler", "sequencer", "reduction", "share"]


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Register the example like `pip install -e examples/user_module` would; undo afterwards."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    site = tmp_path / "site"
    dist = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n", encoding="utf-8")
    lines = [f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for group, eps in project["entry-points"].items()]
    (dist / "entry_points.txt").write_text("\n".join(lines), encoding="utf-8")
    for path in (site, EXAMPLE):
        monkeypatch.syspath_prepend(str(path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(EXAMPLE), os.environ.get("PYTHONPATH", "")]))
    yield site
    for name in [n for n in sys.modules if n.startswith("rosace_nightlog")]:
        del sys.modules[name]


@pytest.fixture
def server(installed, tmp_path):
    """The example's REST app on a free localhost port, with its own data folder and token."""
    spec = plugins.get_module("nightlog")
    config = config_from_dict({"data": {"root": str(tmp_path / "data")}})
    with BackgroundServer(spec.create_app(config, token="log-secret")) as srv:
        yield srv


def test_discovered_after_the_builtin_five(installed):
    found = plugins.discover_modules()
    names = [m.name for m in found]
    assert names[:5] == BUILTINS
    assert names[5] == "nightlog"
    nightlog = found[5]
    assert nightlog.error is None and nightlog.spec.title == "Night log" and nightlog.spec.port == 8710


def test_rest_api_answers_and_checks_token(server, tmp_path):
    spec = plugins.get_module("nightlog")
    client = spec.create_client(server.url, token="log-secret")
    assert client.health()["modules"] == ["nightlog"]
    note = client.add("clouds from the west, roof closed by the dome", "weather")
    assert note["id"] == 1 and note["category"] == "weather" and note["time"]
    assert [n["text"] for n in client.notes("weather")] == ["clouds from the west, roof closed by the dome"]
    assert client.notes("hardware") == []
    # Kept in the data folder, one JSON object per line.
    assert "roof closed" in (tmp_path / "data" / "state" / "nightlog.jsonl").read_text(encoding="utf-8")
    with pytest.raises(ApiError) as bad:
        client.add("x", "gossip")
    assert bad.value.status == 422
    with pytest.raises(ApiError) as anonymous:
        spec.create_client(server.url).add("no token")
    assert anonymous.value.status == 401
    paths = client.get(f"{server.url}/api/v1/openapi.json")["paths"]
    assert set(paths["/api/v1/nightlog/notes"]) == {"get", "post"}


def test_options_table_of_the_module(installed, tmp_path):
    """[nightlog] in the observatory configuration reaches the module; a bad key is named."""
    spec = plugins.get_module("nightlog")
    config = config_from_dict({"data": {"root": str(tmp_path / "data")},
                               "nightlog": {"file_name": "log-2026.jsonl", "default_author": "Valérie"}})
    with BackgroundServer(spec.create_app(config, token="t")) as srv:
        note = spec.create_client(srv.url, token="t").add("dew on the corrector")
    assert note["author"] == "Valérie"
    assert "dew" in (tmp_path / "data" / "state" / "log-2026.jsonl").read_text(encoding="utf-8")
    bad = config_from_dict({"nightlog": {"file_name": "../escape", "colour": "red"}}, source="obs.toml")
    with pytest.raises(ConfigError) as info:
        spec.create_app(bad, token="t")
    assert {loc for loc, _ in info.value.problems} == {"nightlog.file_name", "nightlog.colour"}
    assert "obs.toml" in str(info.value)


def test_cli_lists_the_module(installed):
    result = subprocess.run([sys.executable, "-m", "rosace_core.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "nightlog" in result.stdout


def test_desktop_shows_its_tab_after_the_builtin_five(installed, server, qtbot):
    from rosace_desktop.app import create_window
    from rosace_desktop.launch import free_port
    from rosace_desktop.tabs import BrokenTab, GenericTab

    spec = plugins.get_module("nightlog")
    spec.create_client(server.url, token="log-secret").add("first light with the LISA", "target")
    dead = f"http://127.0.0.1:{free_port()}"
    urls = {m: dead for m in BUILTINS} | {"nightlog": server.url}
    window = create_window(None, mode="remote", urls=urls, token="log-secret", use_saved=False)
    qtbot.addWidget(window)
    try:
        window.show()
        titles = [window.tabs.tabText(i) for i in range(window.tabs.count())]
        assert titles == ["Dome", "Scheduler", "Sequencer", "Reduction", "Share", "Night log"]
        qtbot.waitUntil(lambda: window.module_state("nightlog") == "online", timeout=30000)
        qtbot.waitUntil(lambda: window.hosts["nightlog"].content is not None, timeout=10000)
        tab = window.hosts["nightlog"].content
        assert not isinstance(tab, (BrokenTab, GenericTab)) and tab.objectName() == "nightlogTab"
        qtbot.waitUntil(lambda: tab.list.count() == 1, timeout=10000)
        assert "first light with the LISA" in tab.list.item(0).text()
        # Typing a note in the tab reaches the module over REST.
        tab.text.setText("guider lost the star at 02:10")
        tab.add_button.click()
        qtbot.waitUntil(lambda: tab.list.count() == 2, timeout=10000)
        notes = spec.create_client(server.url).notes()
        assert notes[-1]["text"] == "guider lost the star at 02:10"
    finally:
        window.shutdown()
        window.close()


def test_core_imports_neither_flask_nor_qt(installed):
    code = ("import sys, rosace_nightlog, rosace_nightlog.notes; "
            "bad = [m for m in ('flask', 'PySide6') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
