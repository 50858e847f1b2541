"""The scheduler: the queue of Observing Files, its history, tonight's plan and "what next?".

Plain Python (no Flask, no Qt): ``api.py`` serves it over REST, tests use it
directly. Thread-safe: one lock guards the queue, the caches and the history.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from rosace_core.astro import configure_offline
from rosace_core.clock import now as clock_now
from rosace_core.config import ObservatoryConfig
from rosace_core.errors import ConfigError, ConflictError, NotFoundError
from rosace_core.instrument import InstrumentSetup, load_instrument, observing_file_problems
from rosace_core.observing_file import ObservingFile, ObservingFileError, Problem, from_stored, parse_observing_file

from rosace_scheduler.constraints import CONSTRAINT_NAMES, constraint_masks, run_lengths
from rosace_scheduler.dome_limit import DomeLimit
from rosace_scheduler.limits import check_file_size, check_queue_room
from rosace_scheduler.observing_request import ObservingRequest, request_from_file
from rosace_scheduler.options import scheduler_options
from rosace_scheduler.planner import NightTable, RequestState
from rosace_scheduler.reference import choose_reference
from rosace_scheduler.rules import RuleSet, load_rules
from rosace_scheduler.sky import NightSky, night_date_of, radec_to_vectors
from rosace_scheduler.store import Store, iso

log = logging.getLogger(__name__)

OUTCOMES = ("completed", "failed", "interrupted")
FILE_SUFFIXES = (".yaml", ".yml", ".json")
LOOKAHEAD_NIGHTS = 3
_FROM = "\x00from\x00"  # place of the time asked in a cached reason
DAY = 86400.0


def _short(text: str | None, limit: int = 200) -> str | None:
    """A title cut for listings (the whole file stays available under /files/<id>)."""
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


def settle_gc() -> None:
    """Put what is alive now (the queue's files, the night's tables) out of the garbage collector's reach.

    With 10,000 files queued the process holds about 600,000 long-lived objects, and every full
    collection walks them all: 0.5 s of CPU measured, spent inside whichever request allocated
    the object that triggered it. Frozen (``gc.freeze``), they
    are skipped; they are still freed by reference counting when dropped. The server calls this
    once, after loading the queue and preparing the night's tables.
    """
    gc.collect()
    gc.freeze()


def to_unix(value) -> float:
    """Return Unix seconds of a datetime, ISO text or number."""
    if value is None:
        return clock_now().timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


@dataclass
class QueuedFile:
    """A valid Observing File in the queue, and where it came from."""

    of: ObservingFile
    request: ObservingRequest
    source: str  # rest | folder
    filename: str | None
    path: str | None
    content_hash: str
    added: float


@dataclass
class _History:
    completed: list  # ended times of completed visits
    failed: list  # ended times of failed attempts
    pending: dict  # observation id -> time after which it is forgotten
    frames_done: int = 0  # science frames of the visit under way, taken in completed parts (a split file)
    parts_done: int = 0  # completed parts of the visit under way


def part_text(number: int, of_about: int, done: int, asked: int) -> str:
    """Return how a part of a split file is shown: 'part 2 of ~3, 12/24 frames'."""
    return f"part {number} of ~{max(number, of_about)}, {done}/{asked} frames"


class _Cached:
    def __init__(self, table: NightTable, version: int, keys: dict):
        self.table, self.version, self.keys = table, version, keys
        self.hist_version = -1
        self.arrays: dict | None = None
        self.reasons: dict[tuple[str, int], str] = {}  # (file id, grid index asked) -> reason


class Scheduler:
    """What to observe: the queue, the history, the night plan and the dispatcher.

    ``config`` is an ObservatoryConfig (defaults when None); its ``[scheduler]``
    table is validated by :class:`~rosace_scheduler.options.SchedulerOptions`.
    ``database=":memory:"`` keeps everything in memory (tests).
    """

    def __init__(self, config: ObservatoryConfig | None = None, *, database: Path | str | None = None, queue_folder: Path | str | None = None):
        configure_offline()
        self.config = config or ObservatoryConfig()
        self.options = scheduler_options(self.config)
        source = self.config.source
        base = source.parent if isinstance(source, Path) and source.is_file() else None
        #: the user rules in use (``[scheduler] rule_files``, ``[scheduler.rules.NAME]``); checked now, so a bad one stops the start
        self.rules: RuleSet = load_rules(self.options, source or "<config>", base)
        self.site = self.config.site
        self.spectrograph = self.config.instrument.spectrograph
        db = database if database is not None else (self.options.database or self.config.data.state / "scheduler.sqlite")
        self.store = Store(None if str(db) == ":memory:" else Path(db))
        folder = queue_folder if queue_folder is not None else (self.options.queue_folder or self.config.data.root / "observing_files")
        self.queue_folder = Path(folder)
        if queue_folder is None and self.options.queue_folder is None:
            try:  # the default folder is ours: make it, so that users can drop files in
                self.queue_folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                log.warning("cannot create the queue folder %s: %s", self.queue_folder, exc)
        self.lock = threading.RLock()
        self.files: dict[str, QueuedFile] = {}
        self.rejected: dict[str, dict] = {}
        self._signatures: dict[str, tuple] = {}
        self._path_owner: dict[str, str] = {}
        self._version = 0
        self._hist_version = 0
        self._hist_log: list[tuple[int, str]] = []
        self._history: dict[str, _History] = {}
        #: dispatched observations without an outcome yet: id -> (file id, planned start, planned end)
        #: ... and the science frames of a split file's part (None: a whole observation)
        self._running: dict[str, tuple[str, float, float, int | None]] = {}
        self._skies: dict[date, NightSky] = {}
        self._cache: dict[date, _Cached] = {}
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.dome_limit = DomeLimit(self.config, self.options)
        self._closing_sun: float | None = self.dome_limit.value() if self.dome_limit.fixed else None
        self._load()
        self.scan_folder()

    # ------------------------------------------------------------------ loading, files

    def _load(self) -> None:
        for row in self.store.load_files():
            try:
                of = from_stored(row["content"])
            except Exception as exc:  # a row written by a future version: skip it, loudly
                log.warning("stored file %s no longer valid: %s", row["id"], exc)
                continue
            self.files[of.id] = QueuedFile(of, request_from_file(of, self.site, self.options, self._closing_sun), row["source"], row["filename"], row["path"], row["content_hash"], row["added"])
            if row["path"]:
                self._path_owner[row["path"]] = of.id
        for obs in reversed(self.store.observations()):  # oldest first: parts add up in the order they were taken
            self._note_observation(obs)

    def _note_observation(self, obs: dict) -> None:
        h = self._history.setdefault(obs["file_id"], _History([], [], {}))
        outcome = obs.get("outcome")
        part, asked = obs.get("science_frames"), obs.get("science_total")
        if outcome == "completed" and part is not None and asked and h.frames_done + part < asked:
            # a part of a split file: its frames count, the visit is complete once they add up to the file's
            h.frames_done += int(part)
            h.parts_done += 1
            h.pending.pop(obs["id"], None)
        elif outcome == "completed":
            h.completed.append(obs.get("ended") or obs.get("reported") or obs.get("dispatched"))
            h.frames_done = h.parts_done = 0
            h.pending.pop(obs["id"], None)
        elif outcome == "failed":
            h.failed.append(obs.get("ended") or obs.get("reported") or obs.get("dispatched"))
            h.pending.pop(obs["id"], None)
        elif outcome == "interrupted":
            h.pending.pop(obs["id"], None)
        elif obs.get("planned_end") is not None:
            h.pending[obs["id"]] = obs["planned_end"] + self.options.dispatch_grace
            self._running[obs["id"]] = (obs["file_id"], obs.get("planned_start") or obs.get("dispatched") or obs["planned_end"], obs["planned_end"], part)
        if outcome:
            self._running.pop(obs["id"], None)

    def parse(self, content: str, fmt: str | None = None, filename: str | None = None) -> ObservingFile:
        """Parse and validate Observing File text; raise ObservingFileError with every problem."""
        return parse_observing_file(content, filename or "<submitted>", fmt)

    def submit(self, content: str, fmt: str | None = None, filename: str | None = None, *, source: str = "rest", path: str | None = None) -> ObservingFile:
        """Validate a file and add it to the queue (replacing a file with the same id).

        Raises ObservingFileError (FileTooLarge, QueueFull for the limits) naming the problem.
        """
        check_file_size(len(content.encode("utf-8")), filename or "<submitted>", self.options)
        of = self.parse(content, fmt, filename)
        with self.lock:
            if of.id not in self.files:
                check_queue_room(len(self.files), of.id, filename or "<submitted>", self.options)
            owner = self.files.get(of.id)
            if source == "folder" and owner is not None and owner.path not in (None, path) and owner.source == "folder":
                raise ObservingFileError(filename or str(path), [Problem("id", f"id '{of.id}' is already used by {owner.path}")])
            self._add(of, source, filename, path)
        return of

    def _add(self, of: ObservingFile, source: str, filename: str | None, path: str | None) -> None:
        h = of.content_hash()
        old = self.files.get(of.id)
        if old is not None and old.content_hash == h and old.path == path:
            return
        self.store.save_file(of.id, of.to_dict(), h, source, filename, path)
        self.files[of.id] = QueuedFile(of, request_from_file(of, self.site, self.options, self._closing_sun), source, filename, path, h, old.added if old else clock_now().timestamp())
        if path:
            self._path_owner[path] = of.id
        self._version += 1

    def remove(self, file_id: str) -> None:
        """Take a file out of the queue (its history is kept)."""
        with self.lock:
            qf = self.files.pop(file_id, None)
            if qf is None:
                raise NotFoundError(f"no Observing File {file_id!r} in the queue")
            self.store.deactivate_file(file_id)
            if qf.path:
                self._path_owner.pop(qf.path, None)
            self._version += 1

    def get_file(self, file_id: str) -> QueuedFile:
        """Return a queued file; raise NotFoundError."""
        qf = self.files.get(file_id)
        if qf is None:
            raise NotFoundError(f"no Observing File {file_id!r} in the queue")
        return qf

    # ------------------------------------------------------------------ the watched folder

    def scan_folder(self) -> dict:
        """Take new, changed and removed files of the queue folder into account.

        An invalid file is listed in ``rejected`` with its errors; the queue keeps
        working (and keeps the last valid version of that file, if any).
        """
        with self.lock:
            return self._scan_folder()

    def _scan_folder(self) -> dict:
        changes: dict[str, list[Any]] = {"added": [], "rejected": [], "removed": []}
        folder = self.queue_folder
        if not folder.is_dir():
            return changes
        seen = set()
        for p in sorted(folder.iterdir()):
            if p.suffix.lower() not in FILE_SUFFIXES or not p.is_file():
                continue
            key = str(p.resolve())
            seen.add(key)
            try:
                st = p.stat()
            except OSError:
                continue
            sig = (st.st_mtime_ns, st.st_size)
            if self._signatures.get(key) == sig:
                continue
            self._signatures[key] = sig
            try:
                check_file_size(st.st_size, p.name, self.options)  # before reading it
                text = p.read_text(encoding="utf-8")
                of = self.submit(text, "json" if p.suffix.lower() == ".json" else None, p.name, source="folder", path=key)
                self.rejected.pop(key, None)
                changes["added"].append(of.id)
            except ObservingFileError as exc:
                # the first problems are enough to fix a file; thousands would weigh on every queue listing
                self.rejected[key] = {"filename": p.name, "path": key, "errors": [e.to_dict() for e in exc.problems[:20]],
                                      "problems": len(exc.problems), "time": iso(clock_now().timestamp())}
                changes["rejected"].append(p.name)
                log.warning("rejected %s:\n%s", p.name, exc.report())
            except (OSError, UnicodeDecodeError) as exc:
                self.rejected[key] = {"filename": p.name, "path": key, "errors": [{"path": "", "message": f"cannot read: {exc}", "line": None, "column": None}], "time": iso(clock_now().timestamp())}
                changes["rejected"].append(p.name)
        with self.lock:
            for key in [k for k in self._signatures if k not in seen]:
                self._signatures.pop(key)
                self.rejected.pop(key, None)
                fid = self._path_owner.get(key)
                if fid and fid in self.files and self.files[fid].path == key:
                    self.remove(fid)
                    changes["removed"].append(fid)
        return changes

    def start_watching(self) -> None:
        """Scan the queue folder every ``watch_interval`` wall seconds in a daemon thread, and keep tonight's tables ready."""
        if self._watcher is not None or self.options.watch_interval <= 0:
            return

        def loop():
            settled = False
            while True:
                try:  # tonight's and the coming night's tables, ready before anyone asks
                    self.prepare()
                except Exception:
                    log.exception("preparing the night's tables failed")
                if not settled:  # once, after the queue and the first tables are loaded
                    settle_gc()
                    settled = True
                if self._stop.wait(self.options.watch_interval):
                    break
                try:
                    self.scan_folder()
                except Exception:  # the watcher must survive anything a folder can do
                    log.exception("queue folder scan failed")

        self._watcher = threading.Thread(target=loop, name="scheduler-watch", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        """Stop the watcher and close the database."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        self.store.close()

    # ------------------------------------------------------------------ nights and caches

    def night_of(self, unix: float) -> date:
        return night_date_of(datetime.fromtimestamp(unix, tz=timezone.utc), self.site.longitude)

    def sky(self, night: date) -> NightSky:
        """Return (and cache) the sky of a night (computed outside the lock: requests go on meanwhile)."""
        with self.lock:
            sky = self._skies.get(night)
        if sky is None:
            sky = NightSky.build(night, self.site, self.options.grid_step)
            with self.lock:
                sky = self._skies.setdefault(night, sky)
                for old in sorted(self._skies)[:-4]:
                    self._skies.pop(old)
        return sky

    def prepare(self, night: date | None = None) -> None:
        """Compute a night's sky, table and history arrays now, outside the lock (default: tonight and the coming night).

        The server's watcher thread calls this ahead of time, so that the first ``next`` of a
        night finds its table ready instead of building it (0.5-1 s of CPU with 10,000 files);
        a queue change meanwhile is folded in incrementally at the next request.
        """
        if night is None:
            t = clock_now().timestamp()
            for n in sorted({self.night_of(t), self.night_of(t + DAY / 2)}):
                self.prepare(n)
            return
        with self.lock:
            cached = self._cache.get(night)
            if cached is not None and cached.version == self._version:
                return
            version = self._version
            reqs = [qf.request for qf in self.files.values()]
            keys = {fid: qf.content_hash for fid, qf in self.files.items()}
        sky = self.sky(night)
        table = cached.table.updated(reqs, keys, cached.keys) if cached is not None else NightTable(sky, reqs, self.options, rules=self.rules)
        with self.lock:
            current = self._cache.get(night)
            if current is None or current.version < version:
                fresh = _Cached(table, version, keys)
                if current is not None:
                    fresh.reasons = {k: v for k, v in current.reasons.items() if keys.get(k[0]) == current.keys.get(k[0])}
                self._cache[night] = fresh
                self._trim_cache()
            self._arrays(self.table(night))

    def _trim_cache(self) -> None:
        for old in sorted(self._cache)[:-3]:
            self._cache.pop(old)

    def _follow_dome_limit(self) -> None:
        """Plan with the dome's closing sun altitude once learnt (or changed): every request is rebuilt."""
        closing = self.dome_limit.value()
        if closing == self._closing_sun:
            return
        with self.lock:
            self._closing_sun = closing
            for qf in self.files.values():
                qf.request = request_from_file(qf.of, self.site, self.options, closing)
            self._cache.clear()
            self._version += 1

    def table(self, night: date) -> _Cached:
        """Return the night table of the current queue (rows reused across queue changes)."""
        self._follow_dome_limit()
        with self.lock:
            cached = self._cache.get(night)
            if cached is not None and cached.version == self._version:
                return cached
            reqs = [qf.request for qf in self.files.values()]
            keys = {fid: qf.content_hash for fid, qf in self.files.items()}
            if cached is not None:
                table = cached.table.updated(reqs, keys, cached.keys)
            else:
                table = NightTable(self.sky(night), reqs, self.options, rules=self.rules)
            fresh = _Cached(table, self._version, keys)
            if cached is not None:  # reasons of unchanged files stay valid
                fresh.reasons = {k: v for k, v in cached.reasons.items() if keys.get(k[0]) == cached.keys.get(k[0])}
            self._cache[night] = fresh
            self._trim_cache()
            return fresh

    def _arrays(self, cached: _Cached) -> dict:
        """History-derived arrays over the table rows.

        Rebuilt when the queue changes; after a dispatch or an outcome only the rows
        of the files concerned are refreshed, so ``next`` stays fast with a long queue.
        """
        if cached.arrays is not None and cached.hist_version == self._hist_version:
            return cached.arrays
        table = cached.table
        noon = table.sky.mid_unix - DAY / 2
        if cached.arrays is not None:
            changed = {fid for v, fid in self._hist_log if v > cached.hist_version}
            if len(self._hist_log) and self._hist_log[0][0] <= cached.hist_version + 1:
                for fid in changed:
                    i = table.index.get(fid)
                    if i is not None:
                        self._fill_row(cached.arrays, i, table.reqs[i], noon)
                cached.hist_version = self._hist_version
                return cached.arrays
        n = len(table.reqs)
        a = {
            "sidereal": np.array([r.sidereal for r in table.reqs], bool),
            "static": np.zeros(n, bool),
            "last": np.full(n, np.nan),
            "last_night": np.full(n, np.nan),  # date ordinal of the night of the last completed visit
            "done": np.zeros(n),
            "wanted": np.full(n, np.inf),
            "period": np.full(n, np.nan),
            "tol": np.zeros(n),
            "failed_tonight": np.zeros(n),
            "pending_until": np.full(n, -np.inf),
            "window_end": np.full(n, np.inf),
            "frames_left": np.full(n, np.nan),  # science frames left (splittable files only)
            "duration": table.duration.copy(),  # what is left to observe (less than the whole once parts are done)
        }
        setup = self._mounted_setup()  # once per table: a stat of the set-up file, not one per request
        for i, r in enumerate(table.reqs):
            if r.split_min_frames:
                a["frames_left"][i] = r.science_count
            a["static"][i] = r.sidereal and self._instrument_reason(r, setup) is None
            if r.visits_wanted is not None:
                a["wanted"][i] = r.visits_wanted
            if r.cadence is not None:
                a["period"][i], a["tol"][i] = r.cadence[0] * DAY, r.cadence[1] * DAY
            if r.windows:
                a["window_end"][i] = max(e for _, e in r.windows)
            self._fill_row(a, i, r, noon)
        cached.arrays, cached.hist_version = a, self._hist_version
        return a

    def _due_text(self, a: dict, i: int, due: float) -> str:
        if a["period"][i] >= DAY / 2:  # counted in nights: due from the start of a night
            return f"cadence: next visit due the night of {self.night_of(due + 1).isoformat()} (one visit a night)"
        return f"cadence: next visit due from {iso(due)}"

    def _fill_row(self, a: dict, i: int, r: ObservingRequest, noon: float) -> None:
        h = self._history.get(r.file_id)
        if h is None:
            return
        a["last"][i] = max(h.completed) if h.completed else np.nan
        a["last_night"][i] = self.night_of(a["last"][i]).toordinal() if h.completed else np.nan
        a["done"][i] = len(h.completed)
        a["failed_tonight"][i] = sum(1 for t in h.failed if t is not None and t >= noon)
        a["pending_until"][i] = max(h.pending.values()) if h.pending else -np.inf
        if r.split_min_frames:
            left = max(1, r.science_count - h.frames_done)
            a["frames_left"][i] = left
            a["duration"][i] = r.part_duration(left)

    def _history_changed(self, file_id: str) -> None:
        self._hist_version += 1
        self._hist_log.append((self._hist_version, file_id))
        if len(self._hist_log) > 10000:  # older caches then rebuild from scratch
            del self._hist_log[:5000]

    def state(self, cached: _Cached, t: float) -> RequestState:
        """Return the request state at ``t`` from the history (vectorised over the queue)."""
        a = self._arrays(cached)
        noon = cached.table.sky.mid_unix - DAY / 2
        has_cad = ~np.isnan(a["period"])
        has_last = ~np.isnan(a["last"])
        eligible = a["static"] & (a["done"] < a["wanted"]) & (a["failed_tonight"] < self.options.max_retries + 1) & (a["pending_until"] <= t) & (a["window_end"] > t)
        with np.errstate(invalid="ignore"):
            due = a["last"] + a["period"] - a["tol"]
            # cadences of half a day or more count nights: at most one visit a night, the next one from
            # the night (period - tolerance) nights later, rounded to the nearest night (at least the next)
            nights = np.maximum(1.0, np.floor((a["period"] - a["tol"]) / DAY + 0.5))
            tonight = cached.table.sky.night.toordinal()
            due_night = noon + (a["last_night"] + nights - tonight) * DAY
            due = np.where(a["period"] >= DAY / 2, due_night, due)
            not_before = np.where(has_cad & has_last, due, -np.inf)
            # without a cadence, a visit done tonight is not repeated tonight
            not_before = np.where(~has_cad & has_last & (a["last"] >= noon), np.inf, not_before)
            overdue = np.where(has_cad & has_last, np.clip((t - (a["last"] + a["period"])) / a["period"], 0, 1), 0.0)
            repeat = np.where(has_cad & (a["period"] < DAY / 2), np.maximum(a["period"] - a["tol"], 600.0), np.inf)
        return RequestState(eligible, not_before, np.nan_to_num(overdue), repeat, a["duration"], a["frames_left"])

    # ------------------------------------------------------------------ next

    def next(self, t=None, pointing: dict | None = None, conditions: dict | None = None, *, runner_ups: int = 3) -> dict:
        """Return the best observation to start at ``t`` (default now), or why there is none and when to retry."""
        t = float(math.ceil(to_unix(t)))
        with self.lock:
            if conditions and conditions.get("safe") is False:
                return {"observation": None, "runner_ups": [], "reason": "conditions are unsafe: nothing is dispatched until they are safe", "retry_at": iso(t + 300)}
            night = self.night_of(t)
            cached = self.table(night)
            table = cached.table
            st = self.state(cached, t)
            vec = None
            if pointing and pointing.get("ra") is not None and pointing.get("dec") is not None:
                vec = radec_to_vectors([float(pointing["ra"])], [float(pointing["dec"])])[0]
            blocked: list[Any] = []
            ranked = table.rank(t, st, vec, limit=1 + runner_ups, blocked=blocked)
            if not ranked and blocked:
                return self._holding(cached, st, t, vec, blocked)
            if not ranked:
                reason, retry = self._nothing(cached, st, t, vec)
                return {"observation": None, "runner_ups": [], "reason": reason, "retry_at": iso(retry)}
            best = ranked[0]
            qf = self.files[table.ids[best.index]]
            obs_id = f"{qf.of.id}-{datetime.fromtimestamp(t, tz=timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
            asked = qf.request.science_count
            frames = best.frames if best.frames is not None else asked
            # a splittable file's observations carry their frames, so that completed parts add up (others: the whole file)
            part_cols = {"science_frames": frames, "science_total": asked} if qf.request.split_min_frames else {}
            self.store.add_observation(id=obs_id, file_id=qf.of.id, target=qf.request.target, dispatched=t, planned_start=best.start, planned_end=best.end, **part_cols)
            self._note_observation({"id": obs_id, "file_id": qf.of.id, "planned_start": best.start, "planned_end": best.end, **part_cols})
            self._history_changed(qf.of.id)
            observation: dict[str, Any] = {
                "observation_id": obs_id,
                "file_id": qf.of.id,
                "file": qf.of.to_dict(),
                "target": {"name": qf.request.target, "ra": qf.request.ra, "dec": qf.request.dec},
                "start": iso(best.start),
                "end": iso(best.end),
                "duration": best.end - best.start,
                "slew": best.slew,
                "score": round(best.score, 4),
                "rules": best.rules,
                "science_frames": frames,  # science frames to take: fewer than the file's for a part of a split file
            }
            part = self._part(qf, frames)
            if part is not None:
                observation["part"] = part
            if qf.request.reference_mode == "auto":
                k = table._k(min(best.end, table.sky.end))
                alt = float(table.altitudes_at(k, np.array([best.index]))[0])
                airmass = 1.0 / math.sin(math.radians(max(alt, 1.0)))
                observation["reference"] = self.reference(t=best.end, airmass=airmass, spectrograph=qf.request.spectrograph, near=(qf.request.ra, qf.request.dec), count=1)
            others = [
                {"file_id": table.ids[c.index], "target": table.reqs[c.index].target, "score": round(c.score, 4), "rules": c.rules, "start": iso(c.start), "end": iso(c.end)}
                for c in ranked[1:]
            ]
            why = ", ".join(f"{k} {v:+.2f}" for k, v in best.rules.items())
            if part is not None:
                split = frames < part["frames_asked"] - part["frames_done"]
                why += f"; {part['text']}" + (" (split: the whole block would take a higher-priority request's chance tonight)" if split else "")
            return {"observation": observation, "runner_ups": others, "reason": f"highest score {best.score:.2f} ({why})", "retry_at": None}

    def _part(self, qf: QueuedFile, frames: int, done: int | None = None, number: int | None = None) -> dict | None:
        """Describe a part of a split file taking ``frames`` science frames after ``done`` (default: the history's), or None for a whole file."""
        h = self._history.get(qf.of.id)
        done = (h.frames_done if h else 0) if done is None else done
        number = ((h.parts_done if h else 0) + 1) if number is None else number
        asked = qf.request.science_count
        if not qf.request.split_min_frames or (frames >= asked and done == 0):
            return None
        rest = max(0, asked - done - frames)
        of_about = number + (math.ceil(rest / frames) if frames else 0)
        return {"number": number, "of_about": of_about, "frames": frames, "frames_done": done, "frames_asked": asked,
                "text": part_text(number, of_about, done, asked)}

    def _holding(self, cached: _Cached, st: RequestState, t: float, vec, blocked: list) -> dict:
        """Answer of ``next`` when everything that fits now would take a higher-priority request's last chance tonight."""
        table = cached.table
        b = blocked[0]
        victim = table.reqs[b.victim]
        others = st.eligible.copy()
        others[[x.choice.index for x in blocked]] = False
        alt = table.next_start(t, others, table.slew_times(vec), st.not_before, st.duration)
        retry = min(b.victim_from, alt) if alt is not None else b.victim_from
        retry = max(retry, t + table.sky.step)
        who = table.reqs[b.choice.index]
        reason = (f"holding the time for {victim.file_id} (priority {victim.priority}, observable from {iso(b.victim_from)}): "
                  f"{who.file_id} (priority {who.priority}) would run until {iso(b.choice.end)} and take its last chance tonight"
                  + (f"; {len(blocked) - 1} other candidate(s) likewise" if len(blocked) > 1 else ""))
        held = [{"file_id": table.ids[x.choice.index], "would_end": iso(x.choice.end), "protects": table.ids[x.victim]} for x in blocked[:5]]
        return {"observation": None, "runner_ups": [], "held_back": held, "reason": reason, "retry_at": iso(retry)}

    def _nothing(self, cached: _Cached, st: RequestState, t: float, vec) -> tuple[str, float | None]:
        table = cached.table
        if not self.files:
            return "the queue is empty", None
        slew = table.slew_times(vec)
        retry = table.next_start(t, st.eligible, slew, st.not_before, st.duration)
        counts = self._state_counts(cached, st, t, slew)
        summary = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in sorted(counts.items()))
        if t < table.sky.start:
            where = "the night has not started"
        elif t >= table.sky.end:
            where = "the night is over"
        else:
            where = "nothing fits now"
        if retry is None:
            # the next night: exact when its table is ready (the watcher prepares it), else its start
            # (the next night's grid starts within minutes of this one's, a day later); never built here,
            # so that "nothing fits" at the end of a night stays fast
            nxt = self._cache.get(table.sky.night + timedelta(days=1))
            if nxt is not None and nxt.version == self._version:
                nst = self.state(nxt, nxt.table.sky.start)
                retry = nxt.table.next_start(nxt.table.sky.start - 1, nst.eligible, nxt.table.slew_times(None), nst.not_before, nst.duration)
            if retry is None:
                retry = max(table.sky.start + DAY, t + table.sky.step)
        return f"{where} ({summary})", retry

    def _states(self, cached: _Cached, st: RequestState, t: float, slew: np.ndarray | None = None, first_rows=None) -> tuple[np.ndarray, np.ndarray]:
        """Return every file's state (vectorised, same order of tests as ``_file_state``) and,
        for observable ones among ``first_rows`` (default: all), the first instant it may start (NaN otherwise).

        O(files) with the table's ``best_run``; the first start (a scan of the night) only for the rows asked.
        """
        table, a = cached.table, self._arrays(cached)
        n = len(table.reqs)
        labels = np.full(n, "", dtype=object)
        left = np.ones(n, bool)

        def take(name, mask):
            hit = left & mask
            labels[hit] = name
            left[hit] = False

        sky_end, sky_noon = table.sky.end, table.sky.mid_unix - DAY / 2
        take("unsupported", ~a["sidereal"])
        take("wrong_instrument", ~a["static"])
        take("completed", a["done"] >= a["wanted"])
        take("expired", a["window_end"] <= t)
        take("in_progress", a["pending_until"] > t)
        take("held", a["failed_tonight"] >= self.options.max_retries + 1)
        with np.errstate(invalid="ignore"):
            take("done_tonight", (st.not_before >= sky_end) & (a["last"] >= sky_noon))
        take("not_due", st.not_before > t)
        first = np.full(n, np.nan)
        sky = table.sky
        if n and left.any():
            slew = np.full(n, self.options.first_slew) if slew is None else slew
            k = 0 if t < sky.start else min(table._k(t), len(sky.times) - 1)
            need = np.ceil((st.duration + slew) / sky.step - 1e-9).astype(np.int64) + 1
            has = np.zeros(n, bool)
            has[left] = table.best_run[left, k] >= need[left]
            take("observable", has)
            rows = np.flatnonzero(has) if first_rows is None else np.array([i for i in first_rows if has[i]], dtype=np.int64)
            if len(rows):
                fits = table.run[rows, k:] >= need[rows, None]
                first[rows] = np.maximum(sky.times[k + fits.argmax(axis=1)], t)
        take("not_tonight", np.ones(n, bool))
        return labels, first

    def _reasons_for(self, cached: _Cached, st: RequestState, t: float, labels: np.ndarray, first: np.ndarray, rows) -> list[str]:
        """Return the reason text of some rows, from their vectorised states."""
        table, a = cached.table, self._arrays(cached)
        out = []
        for i in rows:
            s, r = labels[i], table.reqs[i]
            if s == "unsupported":
                out.append("moving targets (tabulated ephemeris) are not scheduled yet")
            elif s == "wrong_instrument":
                out.append(self._instrument_reason(r) or "")
            elif s == "completed":
                out.append(f"{int(a['done'][i])} of {int(a['wanted'][i])} visits done")
            elif s == "expired":
                out.append(f"its last time window ended at {iso(a['window_end'][i])}")
            elif s == "in_progress":
                out.append("dispatched; waiting for its outcome")
            elif s == "held":
                out.append(f"failed {int(a['failed_tonight'][i])} times tonight; held until the next night")
            elif s == "done_tonight":
                out.append("observed tonight; the next visit is for another night")
            elif s == "not_due":
                out.append(self._due_text(a, i, st.not_before[i]))
            elif s == "observable":
                out.append("observable now" if first[i] <= t else f"observable tonight from {iso(first[i])}")
            else:
                out.append(self._reason(cached, i, t))
        return out

    def _state_counts(self, cached: _Cached, st: RequestState, t: float, slew: np.ndarray) -> dict[str, int]:
        """Count the queue's files per state."""
        labels, _ = self._states(cached, st, t, slew, first_rows=[])
        names, counts = np.unique(labels.astype(str), return_counts=True) if len(labels) else (np.array([], dtype=str), np.array([], dtype=int))
        return {str(k): int(v) for k, v in zip(names, counts)}

    # ------------------------------------------------------------------ outcomes and history

    def record_outcome(self, observation_id: str, file_id: str, outcome: str, started=None, ended=None, frames=None, message: str | None = None) -> dict:
        """Record what happened to an observation (from the sequencer)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
        t = clock_now().timestamp()
        started_u = to_unix(started) if started is not None else None
        ended_u = to_unix(ended) if ended is not None else t
        import json

        with self.lock:
            row = self.store.get_observation(observation_id)
            if row is None:
                if file_id not in self.files and file_id not in self._history:
                    raise NotFoundError(f"no observation {observation_id!r} and no file {file_id!r}")
                self.store.add_observation(id=observation_id, file_id=file_id, dispatched=started_u or ended_u)
                row = {"id": observation_id, "file_id": file_id}
            elif row.get("outcome"):
                raise ConflictError(f"observation {observation_id} already has an outcome ({row['outcome']})")
            elif row["file_id"] != file_id:
                raise ConflictError(f"observation {observation_id} belongs to {row['file_id']}, not {file_id}")
            values = dict(outcome=outcome, started=started_u, ended=ended_u, reported=t, frames=json.dumps(list(frames or [])), message=message)
            self.store.set_outcome(observation_id, **values)
            h = self._history.setdefault(file_id, _History([], [], {}))
            h.pending.pop(observation_id, None)
            self._note_observation({**row, **values})
            self._history_changed(file_id)
            return {"observation_id": observation_id, "file_id": file_id, "outcome": outcome, "recorded": iso(t)}

    def history(self, file_id: str | None = None, limit: int = 500) -> list[dict]:
        """Return observations (dispatched and reported), newest first."""
        out = []
        for o in self.store.observations(file_id, limit):
            out.append({
                "observation_id": o["id"], "file_id": o["file_id"], "target": o["target"], "outcome": o["outcome"] or "pending",
                "dispatched": iso(o["dispatched"]), "planned_start": iso(o["planned_start"]), "planned_end": iso(o["planned_end"]),
                "started": iso(o["started"]), "ended": iso(o["ended"]), "frames": o["frames"], "message": o["message"],
            })
        return out

    # ------------------------------------------------------------------ plan

    def plan(self, night: date | str | None = None, *, start=None, curves: bool = False) -> dict:
        """Return the plan of a night: the observations in time order and the files left out.

        Tonight is planned from now (or ``start``); another night from its start.
        """
        t_now = to_unix(start) if start is not None else clock_now().timestamp()
        if isinstance(night, str) and night:
            night = date.fromisoformat(night)
        night = night or self.night_of(t_now)
        with self.lock:
            cached = self.table(night)
            table, sky = cached.table, cached.table.sky
            t0 = t_now if sky.start <= t_now < sky.end else sky.start
            st = self.state(cached, t0)
            # what is running now (dispatched, no outcome yet, inside its planned time): the plan starts when it ends
            running = sorted((v for v in self._running.values() if v[1] <= t0 < v[2]), key=lambda v: v[2])
            busy_until, pointing = t0, None
            obs: list[dict[str, Any]] = []
            parts: dict[str, tuple[int, int]] = {}  # split files: (next part number, frames done) so far in this plan
            for fid, r_start, r_end, frames in running:
                busy_until = max(busy_until, r_end)
                i = table.index.get(fid)
                if i is not None:
                    pointing = table.vec[i]
                    r, qf = table.reqs[i], self.files[fid]
                    obs.append({"file_id": fid, "title": qf.of.title, "target": r.target, "ra": r.ra, "dec": r.dec, "priority": r.priority,
                                "start": iso(r_start), "end": iso(r_end), "duration": r_end - r_start, "slew": None, "score": None, "rules": {},
                                "running": True})
                    part = self._part(qf, frames) if frames is not None else None
                    if part is not None:
                        obs[-1]["science_frames"], obs[-1]["part"] = frames, part
                        left = part["frames_asked"] - part["frames_done"] - frames
                        if left > 0:  # a part under way: the plan counts on it and plans the rest after it
                            parts[fid] = (part["number"] + 1, part["frames_done"] + frames)
                            st = st.copy()
                            st.eligible[i] = True
                            if st.frames_left is not None and st.duration is not None:  # (always, for a table's state)
                                st.frames_left[i], st.duration[i] = left, r.part_duration(left)
            choices = table.plan(busy_until, st, pointing)
            for c in choices:
                r = table.reqs[c.index]
                qf = self.files[r.file_id]
                item = {"file_id": r.file_id, "title": qf.of.title, "target": r.target, "ra": r.ra, "dec": r.dec, "priority": r.priority,
                        "start": iso(c.start), "end": iso(c.end), "duration": c.end - c.start, "slew": c.slew,
                        "score": round(c.score, 4), "rules": c.rules, "running": False}
                if c.frames is not None:
                    h = self._history.get(r.file_id)
                    number, done = parts.get(r.file_id, ((h.parts_done if h else 0) + 1, h.frames_done if h else 0))
                    part = self._part(qf, c.frames, done, number)
                    if part is not None:
                        item["science_frames"], item["part"] = c.frames, part
                    parts[r.file_id] = (number + 1, done + c.frames)
                obs.append(item)
            planned = {o["file_id"] for o in obs}
            labels, first = self._states(cached, st, t0)
            rows = [i for i, fid in enumerate(table.ids) if fid not in planned]
            reasons = self._reasons_for(cached, st, t0, labels, first, rows)
            left = [{"file_id": table.ids[i], "state": labels[i], "reason": why} for i, why in zip(rows, reasons)]
            doc: dict[str, Any] = {
                "night": night.isoformat(), "site": self.site.name, "spectrograph": self.spectrograph,
                "sunset": iso(sky.sunset), "sunrise": iso(sky.sunrise), "night_start": iso(sky.start), "start": iso(t0), "end": iso(sky.end),
                "grid_step": sky.step, "generated": iso(clock_now().timestamp()),
                "observations": obs, "unscheduled": left,
                "value": round(sum(o["priority"] * o["duration"] for o in obs if not o["running"]) / 3600.0, 3),
            }
            if curves:
                doc["curves"] = self._curves(table, sorted(planned))
            return doc

    def _curves(self, table: NightTable, file_ids: list[str]) -> dict:
        sky = table.sky
        step = max(1, int(round(300 / sky.step)))
        ks = np.arange(0, len(sky.times), step)
        rows = [table.index[f] for f in file_ids]
        out: dict[str, Any] = {"times": [iso(sky.times[k]) for k in ks], "sun_altitude": [round(float(sky.sun_alt[k]), 2) for k in ks], "altitude": {}}
        if rows:
            v = np.einsum("tij,nj->nti", sky.rotation[ks], table.cirs[rows])
            alt = np.degrees(np.arcsin(np.clip(v[..., 2], -1, 1)))
            for f, a in zip(file_ids, alt):
                out["altitude"][f] = [round(float(x), 2) for x in a]
        return out

    # ------------------------------------------------------------------ queue and explanations

    def _mounted_setup(self) -> InstrumentSetup | None:
        """The mounted set-up's model (cached by its file); None, said once in the log, when it cannot be read."""
        try:
            return load_instrument(self.spectrograph)
        except ConfigError as exc:
            if not getattr(self, "_setup_warned", False):
                self._setup_warned = True
                log.warning("the mounted instrument set-up cannot be read (%s): Observing Files' grating, slit and "
                            "central wavelength are not checked", exc)
            return None

    def _instrument_reason(self, r: ObservingRequest, setup: InstrumentSetup | None | bool = False) -> str | None:
        """Why the mounted set-up cannot observe ``r`` (another spectrograph, or a grating, slit,
        central wavelength or order it does not have); None when it can. ``setup``: the mounted
        set-up when the caller has it (False: load it)."""
        if isinstance(setup, bool):  # (False: not given)
            setup = self._mounted_setup()
        names = {self.spectrograph.lower()} | ({setup.name.lower()} if setup is not None else set())
        if r.spectrograph.lower() not in names:
            return f"needs {r.spectrograph}; {self.spectrograph} is mounted"
        if setup is None or r.instrument is None:
            return None
        return "; ".join(observing_file_problems(setup, r.instrument)) or None

    def _file_state(self, cached: _Cached, st: RequestState, t: float, fid: str, *, cheap: bool = False) -> tuple[str, str]:
        table = cached.table
        i = table.index[fid]
        r = table.reqs[i]
        a = self._arrays(cached)
        if not r.sidereal:
            return "unsupported", "moving targets (tabulated ephemeris) are not scheduled yet"
        wrong = self._instrument_reason(r)
        if wrong:
            return "wrong_instrument", wrong
        if a["done"][i] >= a["wanted"][i]:
            return "completed", f"{int(a['done'][i])} of {int(a['wanted'][i])} visits done"
        if a["window_end"][i] <= t:
            return "expired", f"its last time window ended at {iso(a['window_end'][i])}"
        if a["pending_until"][i] > t:
            return "in_progress", "dispatched; waiting for its outcome"
        if a["failed_tonight"][i] >= self.options.max_retries + 1:
            return "held", f"failed {int(a['failed_tonight'][i])} times tonight; held until the next night"
        if st.not_before[i] > t:
            if st.not_before[i] >= table.sky.end and a["last"][i] >= table.sky.mid_unix - DAY / 2:
                return "done_tonight", "observed tonight; the next visit is for another night"
            return "not_due", self._due_text(a, i, st.not_before[i])
        window = table.first_window(i, max(t, st.not_before[i]), st.duration)
        if window is not None:
            if window[0] <= t:
                return "observable", "observable now"
            return "observable", f"observable tonight from {iso(window[0])}"
        if cheap:
            return "not_tonight", ""
        return "not_tonight", self._reason(cached, i, t)

    def _reason(self, cached: _Cached, i: int, t: float) -> str:
        """Why request ``i`` cannot be observed in what is left of the night from ``t`` (cached per grid instant)."""
        table = cached.table
        k = 0 if t <= table.sky.start else min(table._k(t), len(table.sky.times) - 1)
        key = (table.ids[i], k)
        why = cached.reasons.get(key)
        if why is None:
            why = cached.reasons[key] = self._why_not(table, i, k)
        return why.replace(_FROM, iso(t) or "")  # (t is a time here: iso gives None only for None)

    def _why_not(self, table: NightTable, i: int, k: int = 0) -> str:
        """Say which constraint keeps request ``i`` from being observed from grid instant ``k`` to the end of the night.

        Reasons are for the time asked: at 01:00 they speak of 01:00 to sunrise, not of the whole night.
        """
        sky, r = table.sky, table.reqs[i]
        whole = k == 0
        when = "tonight" if whole else f"from {_FROM} to the end of the night"  # the time asked, put in by _reason
        never = [name for c, name in enumerate(table.constraint_names) if table.last_pass[i, c] < k or table.never[i, c]]
        if never:
            highest = table.max_alt[i] if whole else float(np.degrees(np.arcsin(np.clip((table.cirs[i] @ sky.rotation[k:, 2, :].T).max(), -1, 1))))
            parts = []
            for name in never:
                if name == "altitude":
                    parts.append(f"altitude: never above {r.altitude_limit:.1f} deg {when} (highest {highest:.1f} deg)")
                elif name == "sun":
                    parts.append(f"sun: never below {r.sun_max_altitude:.0f} deg {when}")
                elif name == "time_window":
                    parts.append(f"time window: none of its windows is open {when}")
                elif name == "phase":
                    parts.append(f"phase: never inside its phase windows {when}")
                elif name == "moon_separation":
                    parts.append(f"moon: never {r.moon_min_separation:.0f} deg away from the moon {when}")
                elif name == "moon_illumination":
                    parts.append("moon: too bright all night" if whole else f"moon: too bright {when}")
                else:
                    title = self.rules.title(name)
                    error = self.rules.errors.get(name)
                    parts.append(f"{name}: " + (f"the rule failed ({error})" if error else f"never passes {when}") + (f" ({title})" if title else ""))
            return "; ".join(parts)
        best = int(table.best_run[i, k])
        longest = best * sky.step
        need = table.duration[i] + self.options.first_slew
        steps = int(math.ceil(need / sky.step - 1e-9)) + 1  # grid instants bracketing the observation
        blocking = [] if best >= steps else self._blocking_rules(table, i, need) if whole else self._blocking_rules_from(table, i, need, k)
        if blocking:
            return "; ".join(f"{name}: the built-in constraints allow it tonight, this rule does not" + (f" ({self.rules.title(name)})" if self.rules.title(name) else "")
                             for name in blocking)
        if longest == 0:
            return f"every constraint passes at some time {when}, but never all at once"
        return f"all constraints hold together for at most {longest / 60:.0f} min {when}; the observation needs {need / 60:.0f} min"

    def _blocking_rules_from(self, table: NightTable, i: int, need: float, k: int) -> list[str]:
        """The user constraints without which request ``i`` would still fit from grid instant ``k`` (one row recomputed)."""
        if not self.rules.constraints:
            return []
        steps = int(math.ceil(need / table.sky.step - 1e-9)) + 1
        masks, _ = constraint_masks(table.sky, [table.reqs[i]], table.cirs[i:i + 1], self.options.altitude_margin, separate=True, with_alt=False, rules=self.rules)
        base = np.ones((1, len(table.sky.times)), bool)
        for name in CONSTRAINT_NAMES:
            if name in masks:
                base &= masks[name]
        if run_lengths(base)[0, k:].max(initial=0) < steps:
            return []  # the built-in constraints alone already keep it out
        out = [name for name in self.rules.constraint_names if run_lengths(base & masks[name])[0, k:].max(initial=0) < steps]
        return out or list(self.rules.constraint_names)

    def _blocking_rules(self, table: NightTable, i: int, need: float) -> list[str]:
        """Return the user constraints without which request ``i`` would fit tonight (from the table's runs)."""
        if not self.rules.constraints:
            return []
        steps = int(math.ceil(need / table.sky.step - 1e-9)) + 1
        runs = table.rule_runs[i]
        if runs[0] < steps:
            return []  # the built-in constraints alone already keep it out
        out = [name for j, name in enumerate(self.rules.constraint_names) if runs[1 + j] < steps]
        return out or list(self.rules.constraint_names)

    def queue(self, t=None, *, limit: int | None = None, offset: int = 0, state: str | None = None) -> dict:
        """Return the files with their state and reason (a page of them), the count per state and the rejected folder files.

        ``offset``/``limit`` page through the queue in a stable order (the order files were
        added); ``state`` keeps one state only. States are computed for every file at once
        (arrays), reasons only for the page: a page of a 10,000-file queue is cheap.
        """
        t = to_unix(t)
        with self.lock:
            cached = self.table(self.night_of(t))
            st = self.state(cached, t)
            labels, _ = self._states(cached, st, t, first_rows=[])
            names, counts = np.unique(labels.astype(str), return_counts=True) if len(labels) else (np.array([], dtype=str), np.array([], dtype=int))
            rows = np.arange(len(labels)) if state is None else np.flatnonzero(labels == state)
            total = len(rows)
            page = rows[offset:] if limit is None else rows[offset:offset + limit]
            _, first = self._states(cached, st, t, first_rows=page)
            reasons = self._reasons_for(cached, st, t, labels, first, page)
            items = []
            for i, reason in zip(page, reasons):
                fid = cached.table.ids[i]
                qf = self.files[fid]
                h = self._history.get(fid)
                items.append({
                    "id": fid, "title": _short(qf.of.title), "target": qf.request.target, "priority": qf.request.priority,
                    "spectrograph": qf.request.spectrograph, "source": qf.source, "filename": qf.filename,
                    "duration": qf.request.duration, "state": labels[i], "reason": reason,
                    "visits": len(h.completed) if h else 0,
                    "last_observed": iso(max(h.completed)) if h and h.completed else None,
                })
                if qf.request.split_min_frames:  # a split file: how far its visit under way is
                    items[-1]["split"] = self._split_progress(qf, h)
            end = offset + len(items)
            return {"time": iso(t), "night": cached.table.sky.night.isoformat(), "total": total, "offset": offset, "limit": limit,
                    "next_offset": end if end < total else None, "counts": {str(k): int(v) for k, v in zip(names, counts)},
                    "files": items, "rejected": list(self.rejected.values())}

    def _split_progress(self, qf: QueuedFile, h: _History | None) -> dict:
        """Return the progress of a split file's visit under way: parts and science frames done, and what the next part is."""
        done, parts = (h.frames_done, h.parts_done) if h else (0, 0)
        asked = qf.request.science_count
        text = (f"{parts} part(s) done, {done}/{asked} frames" if done else f"0/{asked} frames") + f"; parts of at least {qf.request.split_min_frames} frames"
        return {"parts_done": parts, "frames_done": done, "frames_asked": asked, "min_frames": qf.request.split_min_frames, "text": text}

    def explain(self, file_id: str, t=None) -> dict:
        """Explain why a file is or is not scheduled tonight: each constraint, and when it becomes observable."""
        t = to_unix(t)
        with self.lock:
            qf = self.get_file(file_id)
            night = self.night_of(t)
            cached = self.table(night)
            table, sky = cached.table, cached.table.sky
            i = table.index[file_id]
            st = self.state(cached, t)
            state, reason = self._file_state(cached, st, t, file_id)
            masks, alt = constraint_masks(sky, [table.reqs[i]], table.cirs[i:i + 1], self.options.altitude_margin, separate=True, rules=self.rules)
            constraints = []
            for name in table.constraint_names:
                if name not in masks:
                    continue
                m = masks[name][0]
                first = np.flatnonzero(m)
                constraints.append({"name": name, "passes_tonight": bool(m.any()), "fraction": round(float(m.mean()), 3) if len(m) else 0.0,
                                    "first_pass": iso(sky.times[first[0]]) if len(first) else None, "user_rule": name in self.rules.constraint_names})
            plan = self.plan(night, start=t) if sky.start <= t < sky.end or t < sky.start else None
            planned = next((o for o in (plan or {}).get("observations", []) if o["file_id"] == file_id), None)
            window = table.first_window(i, max(t, st.not_before[i]), st.duration) if st.eligible[i] else None
            next_obs = iso(max(window[0], t)) if window else None
            altitude_never = not masks["altitude"][0].any()
            if next_obs is None and state in ("not_tonight", "not_due", "done_tonight", "held") and not altitude_never:
                next_obs = self._look_ahead(qf, night)
            return {
                "file_id": file_id, "title": qf.of.title, "target": qf.request.target, "night": night.isoformat(),
                "state": state, "reason": reason, "scheduled": planned is not None,
                "planned": {"start": planned["start"], "end": planned["end"], **({"part": planned["part"]} if "part" in planned else {})} if planned else None,
                "duration": qf.request.duration, "constraints": constraints,
                "highest_altitude": round(float(alt[0].max()), 2) if alt.size else None,
                "next_observable": next_obs,
                "visits": len(self._history[file_id].completed) if file_id in self._history else 0,
                **({"split": self._split_progress(qf, self._history.get(file_id))} if qf.request.split_min_frames else {}),
            }

    def _look_ahead(self, qf: QueuedFile, night: date) -> str | None:
        """Return when a file first fits in one of the next nights (one-row tables: cheap for any queue)."""
        for d in range(1, LOOKAHEAD_NIGHTS + 1):
            sky = self.sky(night + timedelta(days=d))
            one = _Cached(NightTable(sky, [qf.request], self.options, rules=self.rules), -1, {qf.of.id: qf.content_hash})
            st = self.state(one, sky.start)
            if not st.eligible[0]:
                continue
            w = one.table.first_window(0, max(sky.start, st.not_before[0]))
            if w is not None:
                return iso(w[0])
        return None

    def validate_plan(self, plan: dict, step: float = 10.0) -> list[dict]:
        """Re-check a plan (from :meth:`plan`) with the independent validator, user constraints included.

        Returns the violations (``{name, time, constraint, value, limit}``), empty when the plan is sound.
        """
        from rosace_scheduler.validation import check_from_file, validate

        checks = []
        with self.lock:
            for o in plan["observations"]:
                qf = self.files.get(o["file_id"])
                if qf is not None:
                    checks.append(check_from_file(qf.of, self.site, o["start"], o["end"], rules=self.rules, request=qf.request))
        return validate(checks, self.site, step=step)

    # ------------------------------------------------------------------ reference stars

    def reference(self, *, t=None, airmass: float | None = None, spectrograph: str | None = None, near=None, count: int = 3) -> list[dict]:
        """Return reference stars close in airmass to ``airmass`` at ``t`` (best first)."""
        return choose_reference(self.site, to_unix(t), airmass, spectrograph=spectrograph or self.spectrograph, near=near,
                                min_altitude=max(self.options.reference_min_altitude, self.site.min_altitude), count=count)
