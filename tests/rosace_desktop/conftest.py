"""Desktop test fixtures: a small fake module, installed for real (package + entry point).

The fake module is a real package with a real ``rosace.modules`` entry point
written as distribution metadata in a temporary folder on ``sys.path`` and on
``PYTHONPATH``, so that both this process and the child servers the desktop
starts (``python -m rosace_core.cli fake serve``) discover it.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from rosace_core.plugins import LoadedModule

SCREENSHOTS = Path(os.environ.get("ROSACE_SCREENSHOTS", Path(__file__).resolve().parents[2] / "build" / "screenshots" / "desktop"))

FAKE_PACKAGE = '''
"""A fake ROSACE module for the desktop tests."""
import os
import time

from rosace_core.plugins import ModuleSpec
from rosace_core.rest import Api, create_module_app

MODULE = ModuleSpec(id="fake", title="Fake", app="rosace_fakemod:create_app", client="rosace_fakemod:FakeClient",
                    widget="rosace_fakemod.gui:create_widget", port=8799, description="fake module for tests")
BROKEN_WIDGET = ModuleSpec(id="badwidget", title="Bad widget", app="rosace_fakemod:create_app",
                           client="rosace_fakemod:FakeClient", widget="rosace_fakemod:exploding_widget")

api = Api("fake", "Fake", "a module for tests")


@api.route("/slow", summary="Answer after a pause")
def slow():
    time.sleep(float(os.environ.get("ROSACE_FAKE_SLOW", "2")))
    return {"slow": True}


@api.route("/status", summary="Dome-like status")
def status():
    return {"safe": False, "verdict": {"safe": False, "reasons": ["rain detected"], "since": None}}


def create_app(config=None, *, token=None, slow_health=0.0):
    app = create_module_app(api, config=config, token=token)
    if slow_health:
        # A module that takes seconds to answer anything (an overloaded observatory PC).
        @app.before_request
        def _pause():
            time.sleep(slow_health)
    return app


def exploding_widget(client):
    raise RuntimeError("widget exploded on purpose")


from rosace_core.http import RestClient


class FakeClient(RestClient):
    module = "fake"
'''


@pytest.fixture
def fake_site(tmp_path, monkeypatch) -> Path:
    """Install the fake module (package + entry points) in a temporary site folder."""
    site = tmp_path / "site"
    pkg = site / "rosace_fakemod"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(FAKE_PACKAGE), encoding="utf-8")
    dist = site / "rosace_fakemod-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rosace-fakemod\nVersion: 0.1\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text("[rosace.modules]\nfake = rosace_fakemod:MODULE\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p))
    yield site
    import sys

    for name in [n for n in sys.modules if n.startswith("rosace_fakemod")]:
        del sys.modules[name]


@pytest.fixture
def fake_spec(fake_site):
    """The fake module's ModuleSpec."""
    import rosace_fakemod

    return rosace_fakemod.MODULE


@pytest.fixture
def fake_loaded(fake_spec) -> list[LoadedModule]:
    """The fake module alone, as discovery returns it."""
    return [LoadedModule("fake", fake_spec)]


@pytest.fixture
def screenshots() -> Path:
    """Where the tests save tab screenshots (build/screenshots/desktop, never committed)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def close_windows():
    """Close every window a test opened and stop its local servers."""
    windows = []
    yield windows.append
    for window in windows:
        window.shutdown()
        window.close()
        window.deleteLater()
