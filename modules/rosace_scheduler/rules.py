"""User rules of the scheduler: extra constraints and extra scoring terms (a stable extension interface).

Two kinds of plug-in, each a small class with a ``name``:

- a :class:`Constraint` says when a request may be observed. Its :meth:`~Constraint.allows`
  answers for one request at any instants (Unix seconds) and is what the independent
  validator re-checks at 10 s; its :meth:`~Constraint.mask` answers for every request on
  the night grid at once (by default by calling ``allows`` per request; override it to
  vectorise). The mask is AND-ed with the built-in constraints, so the plan, ``next``,
  the queue states and ``explain`` (the rule's name is the reason) all honour it.
- a :class:`ScoringRule` adds ``weight x score(candidates)`` to the dispatch score of the
  requests that can start at an instant; ``next`` and the plan show it in ``rules`` under
  its name.

They are the ``scheduler.rule`` kind of the plug-in registry (:mod:`rosace_core.plugins`) and
come from the entry-point group ``rosace.scheduler.rule`` or the older ``rosace.scheduler_rules`` (installed packages: a rule
is used once ``[scheduler.rules.<name>]`` exists in the configuration) and from the Python
files listed in ``[scheduler] rule_files`` (every rule defined there is used). Options of a
rule are the keys of its ``[scheduler.rules.<name>]`` table, given to its constructor as
keyword arguments; ``weight`` (scoring rules) and ``enabled`` are read by the scheduler.
Everything is checked when the scheduler starts: a file that cannot be imported, a rule
without a valid name, a name used twice, options the rule refuses, a table naming no rule
all raise :class:`~rosace_core.errors.ConfigError` naming the file or table.

Contract of a constraint, so that the planner's guarantee still holds: the plan accepts an
observation when the grid instants bracketing it pass, so a mask must not pass at two
consecutive grid instants when it fails somewhere in between (true for time intervals and
for limits on quantities that change slowly over a grid step; keep a small margin). Masks
are cached per night and file content: they may depend on the request, the night and the
rule's options, not on the history or the hour the question is asked.
See docs/scheduler.md ("Custom rules") and examples/scheduler_rule/.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from rosace_core.errors import ConfigError
from rosace_core.plugins import PluginError, Registry, groups, registry

from rosace_scheduler.observing_request import ObservingRequest

log = logging.getLogger(__name__)

#: the registry kind of scheduler rules; its entry-point groups are ``rosace.scheduler.rule``
#: and the older ``rosace.scheduler_rules`` (:data:`ENTRY_POINT_GROUP`)
KIND = "scheduler.rule"
ENTRY_POINT_GROUP = "rosace.scheduler_rules"
#: names a user rule may not take: the built-in constraints and scoring terms
RESERVED_NAMES = ("altitude", "horizon", "sun", "moon_separation", "moon_illumination", "time_window", "phase",
                  "priority", "urgency", "cadence", "slew", "overlap", "duration", "airmass")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
#: keys of ``[scheduler.rules.<name>]`` read by the scheduler itself, not passed to the rule
FRAMEWORK_KEYS = ("enabled", "weight")


class Constraint:
    """A user constraint. Subclasses set ``name`` (and ``title``) and implement :meth:`allows`.

    Options of ``[scheduler.rules.<name>]`` arrive as keyword arguments of the constructor;
    raise ValueError or TypeError there to refuse them (the error is shown with the table).
    """

    name: ClassVar[str] = ""
    #: a short sentence for explanations and the docs
    title: ClassVar[str] = ""

    def allows(self, request: ObservingRequest, unix: np.ndarray, site) -> np.ndarray:
        """Return, for each instant ``unix`` (Unix seconds, UTC), whether ``request`` may be observed.

        ``site`` is the configuration's ``[site]`` (latitude, longitude degrees east,
        elevation m). The independent validator calls this at 10-s steps over every
        planned observation, so it should compute the truth (astropy), not an approximation.
        """
        raise NotImplementedError

    def mask(self, sky, requests: Sequence[ObservingRequest]) -> np.ndarray:
        """Return a boolean array (len(requests), len(sky.times)) on the night grid.

        ``sky`` is a :class:`~rosace_scheduler.sky.NightSky`: ``times`` (Unix seconds),
        ``site``, ``sun_alt``, ``moon_alt``, ``lst`` (local apparent sidereal time, hours).
        The default calls :meth:`allows` once per request; override it to vectorise.
        """
        out = np.ones((len(requests), len(sky.times)), dtype=bool)
        for i, r in enumerate(requests):
            out[i] = self.allows(r, sky.times, sky.site)
        return out

    def __repr__(self) -> str:
        return f"<scheduler constraint {self.name}>"


@dataclass(frozen=True)
class Candidates:
    """The requests that can start their whole observation at one instant (arrays over them).

    Given to :meth:`ScoringRule.score`; every array has one value per candidate.
    """

    t: float  # Unix seconds of the start
    k: int  # index of ``t`` on the night grid
    sky: Any  # the NightSky (``lst[k]`` is the local sidereal time at ``t``, hours)
    rows: np.ndarray  # indices of the candidates in the night table
    requests: Sequence[ObservingRequest]
    ra: np.ndarray  # degrees (ICRS)
    dec: np.ndarray  # degrees
    altitude: np.ndarray  # degrees at ``t``
    slew: np.ndarray  # seconds, from where the mount points
    duration: np.ndarray  # seconds, without the slew
    priority: np.ndarray  # 1-10


class ScoringRule:
    """A user scoring rule. Subclasses set ``name`` (and ``title``) and implement :meth:`score`.

    The term added to the score is ``weight * score(candidates)``; ``weight`` comes from
    ``[scheduler.rules.<name>] weight`` (default :attr:`default_weight`). For scale: one
    priority level is worth 1, the built-in altitude term at most 0.5.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    default_weight: ClassVar[float] = 1.0

    def score(self, candidates: Candidates) -> np.ndarray:
        """Return one float per candidate (higher is better)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<scheduler scoring rule {self.name}>"


class _RowView(Sequence):
    """The requests of some rows of a list, without copying them (scoring runs at every step)."""

    def __init__(self, reqs: list, rows: np.ndarray):
        self._reqs, self._rows = reqs, rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, j):
        if isinstance(j, slice):
            return [self._reqs[int(i)] for i in self._rows[j]]
        return self._reqs[int(self._rows[j])]


@dataclass
class LoadedRule:
    """A rule in use: the object, its weight (scoring rules), where it came from and its options."""

    rule: Constraint | ScoringRule
    source: str
    options: dict = field(default_factory=dict)
    weight: float = 1.0

    @property
    def name(self) -> str:
        return self.rule.name

    @property
    def kind(self) -> str:
        return "constraint" if isinstance(self.rule, Constraint) else "scoring"


class RuleSet:
    """The user rules in use by one scheduler, and what went wrong with them at run time."""

    def __init__(self, rules: list[LoadedRule] | None = None):
        self.rules = list(rules or [])
        self.constraints = [r for r in self.rules if r.kind == "constraint"]
        self.scoring = [r for r in self.rules if r.kind == "scoring"]
        self.constraint_names = tuple(r.name for r in self.constraints)
        self.errors: dict[str, str] = {}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def masks(self, sky, requests: Sequence[ObservingRequest]) -> dict[str, np.ndarray]:
        """Return each constraint's mask (n, T). A rule that fails blocks every request (fail safe)."""
        shape = (len(requests), len(sky.times))
        out = {}
        for lr in self.constraints:
            rule = lr.rule
            assert isinstance(rule, Constraint)  # self.constraints holds the constraints only
            try:
                m = np.asarray(rule.mask(sky, requests))
                if m.shape != shape:
                    raise ValueError(f"mask has shape {m.shape}, expected {shape} (requests x night grid)")
                out[lr.name] = m.astype(bool, copy=False)
            except Exception as exc:  # a user rule must never take the scheduler down; nothing it cannot vouch for is observed
                self._failed(lr, exc)
                out[lr.name] = np.zeros(shape, dtype=bool)
        return out

    def scores(self, candidates: Candidates) -> dict[str, np.ndarray]:
        """Return each scoring rule's weighted term; a failing rule adds 0 (and is reported)."""
        n = len(candidates.rows)
        out = {}
        for lr in self.scoring:
            scoring = lr.rule
            assert isinstance(scoring, ScoringRule)  # self.scoring holds the scoring rules only
            try:
                s = np.asarray(scoring.score(candidates), dtype=float)
                if s.shape != (n,):
                    raise ValueError(f"score has shape {s.shape}, expected ({n},) (one value per candidate)")
                if not np.all(np.isfinite(s)):
                    raise ValueError("score has NaN or infinite values")
                out[lr.name] = lr.weight * s
            except Exception as exc:
                self._failed(lr, exc)
                out[lr.name] = np.zeros(n)
        return out

    def predicates(self, request: ObservingRequest, site) -> list[tuple[str, Any]]:
        """Return ``(name, allows(unix) -> bool array)`` of every constraint, bound to one request (for the validator)."""
        return [(lr.name, lambda unix, rule=lr.rule: np.asarray(rule.allows(request, np.asarray(unix, dtype=float), site), dtype=bool))
                for lr in self.constraints]

    def title(self, name: str) -> str:
        for lr in self.rules:
            if lr.name == name:
                return lr.rule.title
        return ""

    def describe(self) -> list[dict]:
        """Return the rules in use as JSON-able dicts (``GET /rules``)."""
        return [{"name": lr.name, "kind": lr.kind, "title": lr.rule.title, "source": lr.source, "options": lr.options,
                 "weight": lr.weight if lr.kind == "scoring" else None, "error": self.errors.get(lr.name)} for lr in self.rules]

    def _failed(self, lr: LoadedRule, exc: Exception) -> None:
        text = f"{exc.__class__.__name__}: {exc}"
        if self.errors.get(lr.name) != text:  # log each new failure once, not at every step of a plan
            log.error("scheduler rule %s (%s) failed: %s", lr.name, lr.source, text, exc_info=exc)
        self.errors[lr.name] = text


# --------------------------------------------------------------------------- loading


def _rule_classes(module) -> list[type]:
    """Return the Constraint and ScoringRule subclasses defined in a module (not imported ones)."""
    out = []
    for obj in vars(module).values():
        if (isinstance(obj, type) and issubclass(obj, (Constraint, ScoringRule)) and obj not in (Constraint, ScoringRule)
                and obj.__module__ == module.__name__ and "name" in obj.__dict__):
            out.append(obj)
    return out


def load_rule_file(path: Path, source, plugins: Registry | None = None) -> list[type]:
    """Import a Python file and return its rule classes; raise ConfigError naming the file.

    With ``plugins``, the classes are registered there (kind ``scheduler.rule``, origin
    ``file``); a name another file already defines is a ConfigError naming both files.
    """
    path = Path(path).expanduser()
    mod_name = f"rosace_user_rules_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}"
    where = "scheduler.rule_files"
    if not path.is_file():
        raise ConfigError(source, [(where, f"{path}: no such file")])
    found: list[type] = []

    class NoRules(Exception):
        pass

    def collect(module) -> dict[str, type]:
        found.extend(_rule_classes(module))
        if not found:
            raise NoRules
        return {getattr(cls, "name", ""): cls for cls in found}

    target = plugins if plugins is not None else Registry()
    try:
        target.load_file(KIND, path, collect, module_name=mod_name)
    except PluginError as exc:
        if exc.sources:
            raise ConfigError(source, [(f"scheduler rule {exc.name}", f"defined twice: {' and '.join(exc.sources)}")]) from None
        raise ConfigError(source, [(where, str(exc))]) from None
    except SyntaxError as exc:
        raise ConfigError(source, [(where, f"{path}, line {exc.lineno}: syntax error: {exc.msg}")]) from None
    except NoRules:
        raise ConfigError(source, [(where, f"{path}: defines no scheduler rule (a subclass of rosace_scheduler.rules.Constraint or ScoringRule with a name)")]) from None
    except Exception as exc:
        raise ConfigError(source, [(where, f"{path}: cannot load it: {exc.__class__.__name__}: {exc}")]) from None
    return found


def _instantiate(cls: type, options: dict, origin: str, source) -> LoadedRule:
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ConfigError(source, [(f"scheduler rule {cls.__name__} ({origin})", f"name {name!r} must be lower case letters, digits and _, starting with a letter")])
    if name in RESERVED_NAMES:
        raise ConfigError(source, [(f"scheduler rule {name} ({origin})", f"{name!r} is a built-in constraint or score term; choose another name")])
    table = f"scheduler.rules.{name}"
    rule_opts = {k: v for k, v in options.items() if k not in FRAMEWORK_KEYS}
    weight = options.get("weight", getattr(cls, "default_weight", 1.0))
    if issubclass(cls, Constraint) and "weight" in options:
        raise ConfigError(source, [(f"{table}.weight", f"{name} is a constraint: it has no weight")])
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not np.isfinite(weight):
        raise ConfigError(source, [(f"{table}.weight", f"must be a number, not {weight!r}")])
    try:
        rule = cls(**rule_opts)
    except (TypeError, ValueError) as exc:
        raise ConfigError(source, [(table, f"rule {name} ({origin}) refused its options: {exc}")]) from None
    except Exception as exc:
        raise ConfigError(source, [(table, f"rule {name} ({origin}) failed to start: {exc.__class__.__name__}: {exc}")]) from None
    return LoadedRule(rule, origin, rule_opts, float(weight))


def load_rules(options, source=None, base: Path | None = None) -> RuleSet:
    """Build the rules in use from ``[scheduler]``: ``rule_files``, entry points and ``rules`` tables.

    Relative ``rule_files`` are taken from ``base`` (the configuration file's folder).
    Raises ConfigError (``source`` names the configuration) for anything wrong, so that a
    scheduler never starts with a rule silently missing.
    """
    source = source or "<config>"
    tables: dict[str, dict] = {}
    for name, table in (options.rules or {}).items():
        if not isinstance(table, dict):
            raise ConfigError(source, [(f"scheduler.rules.{name}", "must be a table of the rule's options ([scheduler.rules.NAME])")])
        tables[name] = dict(table)
    # the rules in use: a copy of the process registry (rules registered by code), then the
    # configured files, then the entry points they name (a file wins over a package)
    plugins = registry.copy()
    from_files: set[str] = set()
    for path in options.rule_files:
        path = Path(path).expanduser()
        if not path.is_absolute() and base is not None:
            path = (base / path).resolve()
        for cls in load_rule_file(path, source, plugins):
            from_files.add(getattr(cls, "name", ""))  # as collect() names them
    found = {e.name: (e.obj, e.source) for e in plugins.entries(KIND)}
    wanted = set(from_files) | set(tables)
    # entry points are only imported when the configuration asks for them: an installed
    # package cannot change the schedule behind the observer's back
    installed = [ep for group in groups(KIND) for ep in entry_points(group=group)]
    for ep in installed:
        if ep.name not in wanted or ep.name in found:
            continue
        origin = f"entry point {ep.value}"
        try:
            cls = ep.load()
        except Exception as exc:
            raise ConfigError(source, [(f"scheduler.rules.{ep.name}", f"{origin} cannot be loaded: {exc.__class__.__name__}: {exc}")]) from None
        if not (isinstance(cls, type) and issubclass(cls, (Constraint, ScoringRule))):
            raise ConfigError(source, [(f"scheduler.rules.{ep.name}", f"{origin} is not a Constraint or ScoringRule class")])
        if cls.name != ep.name:
            raise ConfigError(source, [(f"scheduler.rules.{ep.name}", f"{origin} names its rule {cls.name!r}, not {ep.name!r}")])
        plugins.register(KIND, ep.name, cls, origin="entry point", source=origin)
        found[ep.name] = (cls, origin)
    unknown = sorted(set(tables) - set(found))
    if unknown:
        known = ", ".join(sorted(set(found) | {ep.name for ep in installed})) or "none"
        raise ConfigError(source, [(f"scheduler.rules.{n}", f"no scheduler rule named {n!r} (in rule_files or entry points {', '.join(groups(KIND))}; known: {known})") for n in unknown])
    loaded = []
    for name, (cls, origin) in found.items():
        opts = tables.get(name, {})
        enabled = opts.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(source, [(f"scheduler.rules.{name}.enabled", "must be true or false")])
        if enabled:
            loaded.append(_instantiate(cls, opts, origin, source))
    return RuleSet(loaded)
