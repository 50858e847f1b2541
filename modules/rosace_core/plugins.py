"""Module discovery through the ``rosace.modules`` entry-point group.

Each module (the built-in five and any user module) declares a small
:class:`ModuleSpec` in its package ``__init__``; the spec names its app,
client, widget and command-line hooks as ``"package.module:attribute"`` strings
that are imported only when used, so that listing modules stays cheap and a
broken module cannot take the shell down.

Register your own module in your ``pyproject.toml``::

    [project.entry-points."rosace.modules"]
    mymodule = "my_package:MODULE"
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger(__name__)

GROUP = "rosace.modules"
BUILTIN_ORDER = ("dome", "scheduler", "sequencer", "reduction", "share")


def load_object(ref: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute."""
    module, _, attr = ref.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


def import_file(path, module_name: str):
    """Import a user's Python file (a rule, a step...) as module ``module_name``.

    The module is registered in ``sys.modules`` (so classes in it pickle and
    dataclasses work); on any failure it is removed again and the exception
    propagates for the caller to turn into an error naming its configuration key.
    """
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


@dataclass(frozen=True)
class ModuleSpec:
    """What the shell and the CLI need to know about a module.

    - ``app``: ``create_app(config=None, *, token=None) -> Flask``
    - ``client``: a RestClient subclass taking ``(base_url, token=None)``
    - ``widget``: ``create_widget(client) -> QWidget``
    - ``cli``: ``register(subparsers)`` adding extra subcommands (optional)
    - ``port``: default port of its REST server
    - ``extra``: free-form; ``extra["earth_orientation"] = False`` tells ``serve``
      not to load astropy's IERS table at start-up (a module that never needs
      UT1 or polar motion saves ~20 MB)
    """

    id: str
    title: str
    app: str
    client: str
    widget: str | None = None
    cli: str | None = None
    port: int = 8700
    description: str = ""
    extra: dict = field(default_factory=dict)

    def create_app(self, config=None, **kwargs):
        return load_object(self.app)(config, **kwargs)

    def create_client(self, base_url: str, token: str | None = None):
        return load_object(self.client)(base_url, token=token)

    def create_widget(self, client):
        if not self.widget:
            raise LookupError(f"module {self.id} has no desktop tab")
        return load_object(self.widget)(client)


@dataclass
class LoadedModule:
    """A discovered module: its spec, or the error that prevented loading it."""

    name: str
    spec: ModuleSpec | None
    error: str | None = None


def discover_modules() -> list[LoadedModule]:
    """Return every registered module, built-ins first in their order, then the others by name.

    A module whose entry point fails to load is returned with its error, never raised.
    """
    found: list[LoadedModule] = []
    for ep in entry_points(group=GROUP):
        try:
            spec = ep.load()
            if not isinstance(spec, ModuleSpec):
                raise TypeError(f"entry point {ep.value} is not a ModuleSpec")
            found.append(LoadedModule(ep.name, spec))
        except Exception as exc:  # a broken plug-in must not break the others
            log.debug("module %s failed to load: %s", ep.name, exc)
            found.append(LoadedModule(ep.name, None, f"{exc.__class__.__name__}: {exc}"))
    seen: set[str] = set()
    unique = []
    for m in found:
        if m.name not in seen:
            seen.add(m.name)
            unique.append(m)

    def key(m: LoadedModule):
        return (BUILTIN_ORDER.index(m.name) if m.name in BUILTIN_ORDER else len(BUILTIN_ORDER), m.name)

    return sorted(unique, key=key)


def get_module(name: str) -> ModuleSpec:
    """Return the spec of one registered module; raise LookupError if absent or broken."""
    for m in discover_modules():
        if m.name == name:
            if m.spec is None:
                raise LookupError(f"module {name} failed to load: {m.error}")
            return m.spec
    raise LookupError(f"no module {name!r} registered in entry-point group {GROUP}")
