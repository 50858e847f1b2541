"""Where each tab's module runs: local child process or remote server (no Qt here).

Per module the desktop has a *mode*:

- ``local``: the desktop starts the module's REST server on this PC (child process);
- ``remote``: the tab connects to a server already running, here or on the
  observatory PC, at the URL of the configuration (``[modules.<id>] url``) with
  its token;
- ``auto`` (default): remote if a server already answers at the configured URL,
  else local.

Precedence: command-line options, then the choices saved from the connection
dialog (``desktop.json`` in the user config folder), then the configuration.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import platformdirs

from rosace_core.auth import explicit_token, resolve_token
from rosace_core.config import DEFAULT_PORTS
from rosace_core.state import atomic_write_json

log = logging.getLogger(__name__)

MODES = ("auto", "local", "remote")


@dataclass
class Endpoint:
    """How the desktop reaches one module."""

    module: str
    mode: str = "auto"
    url: str = ""
    token: str | None = None

    def client_token(self, config=None) -> str:
        """The token to present: the one given, else the configuration's, else this installation's."""
        return self.token or resolve_token(config, self.module)


def settings_file() -> Path:
    """Return the file holding the connection choices saved from the dialog."""
    return Path(platformdirs.user_config_dir("rosace", appauthor=False)) / "desktop.json"


def load_saved() -> dict[str, dict]:
    """Return the saved per-module choices ({} when none or unreadable)."""
    path = settings_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return {}
    return {k: v for k, v in data.get("modules", {}).items() if isinstance(v, dict)}


def save(endpoints: dict[str, Endpoint]) -> Path:
    """Save the per-module choices of the connection dialog."""
    path = settings_file()
    data = {"modules": {m: {k: v for k, v in asdict(e).items() if k != "module"} for m, e in endpoints.items()}}
    return atomic_write_json(path, data, indent=2)


def parse_module_urls(items: list[str] | None) -> dict[str, str]:
    """Parse ``MODULE=URL`` items (command line); raise ValueError on a malformed one."""
    urls: dict[str, str] = {}
    for item in items or []:
        for part in item.split(","):
            if not part.strip():
                continue
            module, sep, url = part.partition("=")
            if not sep or not module.strip() or not url.strip().startswith(("http://", "https://")):
                raise ValueError(f"expected MODULE=http://host:port, got {part!r}")
            urls[module.strip()] = url.strip().rstrip("/")
    return urls


def resolve_endpoints(modules: list[str], config, *, mode: str | None = None, urls: dict[str, str] | None = None,
                      token: str | None = None, use_saved: bool = True) -> dict[str, Endpoint]:
    """Decide the endpoint of every module from the options, saved choices and configuration.

    ``mode`` (``--local``/``--remote``) applies to every module; a module given
    in ``urls`` is remote at that URL.
    """
    saved = load_saved() if use_saved else {}
    urls = urls or {}
    result = {}
    for module in modules:
        s = saved.get(module, {})
        url = (config.module_url(module) if config is not None and module in config.modules
               else f"http://127.0.0.1:{DEFAULT_PORTS.get(module, 8700)}")
        ep = Endpoint(module, s.get("mode", "auto"), s.get("url") or url, s.get("token") or None)
        if ep.mode not in MODES:
            ep.mode = "auto"
        if mode:
            ep.mode = mode
        if module in urls:
            ep.mode, ep.url = "remote", urls[module]
        if token:
            ep.token = token
        elif not ep.token:
            ep.token = explicit_token(config, module)
        result[module] = ep
    return result
