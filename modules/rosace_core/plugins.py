"""The plug-in registry, and module discovery.

One :class:`Registry` holds every kind of plug-in ROSACE knows, by kind and name:

- ``module``: a :class:`ModuleSpec` (a REST module); groups ``rosace.module``, ``rosace.modules``
- ``sequence.step``: a sequencer step class or factory; ``rosace.sequence.step``, ``rosace.sequence_steps``
- ``scheduler.rule``: a scheduler Constraint/ScoringRule class; ``rosace.scheduler.rule``, ``rosace.scheduler_rules``
- ``reduction.stage``: a reduction stage; ``rosace.reduction.stage``
- ``device.role``: an Alpaca adapter class (``rosace_core.alpaca``) that ``[devices.NAME] type = "..."``
  names; ``rosace.device.role``

Entries come from code (built-ins), installed packages (entry points), ``"pkg.mod:attr"``
strings and user Python files. A name registered twice by the same kind of source is an
error naming both; otherwise the later source wins in the order
**built-in < entry point < user file** (a user's file can replace a built-in step on
purpose; an installed package cannot hide the user's file). See ``docs/adapting/plugins.md``.

Module discovery through the ``rosace.modules`` entry-point group:

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
from pathlib import Path
from typing import Any, Callable, Iterable

from rosace_core.errors import RosaceError

log = logging.getLogger(__name__)

GROUP = "rosace.modules"
BUILTIN_ORDER = ("dome", "scheduler", "sequencer", "reduction", "share")

#: the kinds of plug-in the registry holds
KINDS = ("module", "sequence.step", "scheduler.rule", "reduction.stage", "device.role")
#: older entry-point group names still read, after ``rosace.<kind>``
GROUP_ALIASES: dict[str, tuple[str, ...]] = {
    "module": ("rosace.modules",),
    "sequence.step": ("rosace.sequence_steps",),
    "scheduler.rule": ("rosace.scheduler_rules",),
}
#: where an entry came from, lowest precedence first
ORIGINS = ("builtin", "entry point", "file")


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


class PluginError(RosaceError, LookupError):
    """A plug-in that is unknown, registered twice, or cannot be loaded (the message names the kind and name).

    A name defined twice also carries ``kind``, ``name`` and ``sources`` (both origins).
    """

    def __init__(self, message: str, *, kind: str = "", name: str = "", sources: tuple[str, ...] = ()):
        super().__init__(message)
        self.kind, self.name, self.sources = kind, name, sources


def groups(kind: str) -> tuple[str, ...]:
    """The entry-point groups read for ``kind``: ``rosace.<kind>`` then its older aliases."""
    _check_kind(kind)
    return (f"rosace.{kind}", *GROUP_ALIASES.get(kind, ()))


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise PluginError(f"unknown plug-in kind {kind!r}; kinds: {', '.join(KINDS)}")


def kind_entry_points(kind: str) -> list:
    """The installed entry points of ``kind`` (every group of :func:`groups`), the first of a name kept."""
    seen: set[str] = set()
    out = []
    for group in groups(kind):
        for ep in entry_points(group=group):
            if ep.name not in seen:
                seen.add(ep.name)
                out.append(ep)
    return out


@dataclass(frozen=True)
class Plugin:
    """One registered entry: its kind and name, the object, its origin (``builtin``,
    ``entry point``, ``file``) and where exactly it came from (``source``)."""

    kind: str
    name: str
    obj: Any
    origin: str = "builtin"
    source: str = ""


class Registry:
    """Plug-ins by kind and name (see the module text for the kinds and the override order).

    ``register`` adds one; ``get`` returns one or raises :class:`PluginError` naming the
    kind, the name and the known names; ``names`` lists a kind. ``load_entry_points``,
    ``load_ref`` and ``load_file`` fill it from installed packages, ``"pkg.mod:attr"``
    strings and user Python files. ``copy`` gives an independent registry with the same
    entries (a component loading its configured files into its own).
    """

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Plugin]] = {k: {} for k in KINDS}

    def copy(self) -> "Registry":
        new = Registry()
        new._entries = {k: dict(v) for k, v in self._entries.items()}
        return new

    # ---------------------------------------------------------------- entries

    def register(self, kind: str, name: str, obj: Any, *, origin: str = "builtin", source: str = "") -> Plugin:
        """Add ``obj`` as ``name`` of ``kind``; return the entry in force for that name.

        A name already registered from the same origin (two user files, two packages)
        with another object raises PluginError naming both sources; from a lower origin
        it is replaced, from a higher one the new entry is ignored (and logged).
        """
        _check_kind(kind)
        if origin not in ORIGINS:
            raise PluginError(f"unknown origin {origin!r} for {kind} {name!r}; origins: {', '.join(ORIGINS)}")
        if not isinstance(name, str) or not name:
            raise PluginError(f"a {kind} needs a non-empty name (got {name!r} from {source or origin})")
        entry = Plugin(kind, name, obj, origin, source or origin)
        table = self._entries[kind]
        old = table.get(name)
        if old is not None and old.obj is not obj:
            rank_old, rank_new = ORIGINS.index(old.origin), ORIGINS.index(origin)
            if rank_old == rank_new and origin != "builtin":
                raise PluginError(f"{kind} {name!r} is defined twice: by {old.source} and by {entry.source}",
                                  kind=kind, name=name, sources=(old.source, entry.source))
            if rank_new < rank_old:
                log.info("%s %s from %s ignored: %s overrides it", kind, name, entry.source, old.source)
                return old
            log.info("%s %s from %s overrides the one from %s", kind, name, entry.source, old.source)
        table[name] = entry
        return entry

    def unregister(self, kind: str, name: str) -> None:
        _check_kind(kind)
        self._entries[kind].pop(name, None)

    def entry(self, kind: str, name: str) -> Plugin:
        """The registered entry of ``name``; PluginError naming the kind, the name and the known names."""
        _check_kind(kind)
        found = self._entries[kind].get(name)
        if found is None:
            known = ", ".join(sorted(self._entries[kind])) or "none"
            raise PluginError(f"no {kind} named {name!r}; known: {known}")
        return found

    def get(self, kind: str, name: str) -> Any:
        """The object registered as ``name`` (see :meth:`entry`)."""
        return self.entry(kind, name).obj

    def __contains__(self, key: tuple[str, str]) -> bool:
        kind, name = key
        return name in self._entries.get(kind, {})

    def names(self, kind: str) -> list[str]:
        """The names registered for ``kind``, sorted."""
        _check_kind(kind)
        return sorted(self._entries[kind])

    def entries(self, kind: str) -> list[Plugin]:
        _check_kind(kind)
        return [self._entries[kind][n] for n in sorted(self._entries[kind])]

    # ---------------------------------------------------------------- loading

    def load_entry_points(self, kind: str, *, only: Iterable[str] | None = None,
                          check: Callable[[str, Any], None] | None = None) -> dict[str, str]:
        """Register the installed entry points of ``kind`` (``rosace.<kind>`` and its aliases).

        ``only``: import just these names (the others stay unimported). ``check(name, obj)``
        may raise to refuse an object. Returns ``{name: error}`` for the entry points that
        could not be loaded: a broken package must not break the others, the caller
        decides whether that is fatal.
        """
        wanted = None if only is None else set(only)
        errors: dict[str, str] = {}
        for ep in kind_entry_points(kind):
            if wanted is not None and ep.name not in wanted:
                continue
            source = f"entry point {ep.value} ({ep.group})"
            try:
                obj = ep.load()
                if check is not None:
                    check(ep.name, obj)
                self.register(kind, ep.name, obj, origin="entry point", source=source)
            except PluginError as exc:
                errors[ep.name] = str(exc)
            except Exception as exc:  # a broken plug-in must not break the others
                errors[ep.name] = f"{source} cannot be loaded: {exc.__class__.__name__}: {exc}"
                log.warning("%s %s failed to load: %s", kind, ep.name, exc)
        return errors

    def load_ref(self, kind: str, name: str, ref: str, *, origin: str = "file", source: str = "") -> Any:
        """Register the object named by ``"pkg.mod:attr"`` (PluginError naming it if it cannot be imported)."""
        if not isinstance(ref, str) or ":" not in ref:
            raise PluginError(f"{kind} {name!r}: {ref!r} is not a 'package.module:attribute' reference")
        try:
            obj = load_object(ref)
        except Exception as exc:
            raise PluginError(f"{kind} {name!r}: cannot import {ref}: {exc.__class__.__name__}: {exc}") from None
        self.register(kind, name, obj, origin=origin, source=source or ref)
        return obj

    def load_file(self, kind: str, path, collect: Callable[[Any], dict[str, Any]], *, module_name: str | None = None) -> list[str]:
        """Import a user's Python file and register what ``collect(module)`` finds in it (name -> object).

        Import errors propagate (the caller names its configuration key); names are
        registered with origin ``file``. Returns the names.
        """
        path = Path(path).expanduser()
        module = import_file(path, module_name or f"rosace_user_{kind.replace('.', '_')}_{_identifier(path.stem)}")
        names = []
        for name, obj in collect(module).items():
            self.register(kind, name, obj, origin="file", source=str(path))
            names.append(name)
        return names


def _identifier(text: str) -> str:
    import re

    return re.sub(r"[^0-9A-Za-z_]", "_", text)


#: the process-wide registry: built-in device roles are registered by ``rosace_core.alpaca``;
#: components copy it (``registry.copy()``) before loading their configured files.
registry = Registry()


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
    for ep in kind_entry_points("module"):
        try:
            spec = ep.load()
            if not isinstance(spec, ModuleSpec):
                raise TypeError(f"entry point {ep.value} is not a ModuleSpec")
            found.append(LoadedModule(ep.name, spec))
            try:  # the registry's "module" kind lists them too
                registry.register("module", ep.name, spec, origin="entry point", source=f"entry point {ep.value} ({ep.group})")
            except PluginError as exc:
                log.debug("module %s: %s", ep.name, exc)
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
    raise PluginError(f"no module {name!r} registered in entry-point groups {', '.join(groups('module'))}")
