"""The sequencer's journal: an SQLite database that survives a crash.

Every observation, its current step and every frame written are committed as
they happen, so a sequencer killed in the middle of an exposure finds on restart
where it was, which frames are already on disk, and whether a night was running.
The bias/dark library lives in the same database, and so do the hand-offs to
the reduction that lacked a library entry (handed again once it exists).
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy.exc import OperationalError

from rosace_core.clock import now
from rosace_core.outbox import durable_sqlite
from rosace_sequencer.frames import StorageError

metadata = MetaData()

observations = Table(
    "observations",
    metadata,
    Column("observation_id", String, primary_key=True),
    Column("file_id", String, nullable=False),
    Column("file_hash", String, nullable=False, default=""),
    Column("file_json", Text, nullable=False),
    Column("target", String, nullable=False, default=""),
    Column("source", String, nullable=False, default="run"),  # run | scheduler
    Column("state", String, nullable=False, default="running"),  # running | completed | failed | interrupted
    Column("step", String, nullable=False, default=""),
    Column("step_index", Integer, nullable=False, default=0),
    Column("night", String, nullable=False, default=""),
    Column("folder", String, nullable=False, default=""),
    Column("started", String, nullable=False),
    Column("ended", String),
    Column("message", Text, default=""),
    Column("reported", Integer, nullable=False, default=0),
    Column("attempts", Integer, nullable=False, default=1),
)

frames = Table(
    "frames",
    metadata,
    Column("path", String, primary_key=True),
    Column("observation_id", String, nullable=False, index=True),
    Column("imagetyp", String, nullable=False),
    Column("step", String, nullable=False, default=""),
    Column("step_index", Integer, nullable=False, default=0),
    Column("number", Integer, nullable=False, default=1),
    Column("exptime", Float, nullable=False, default=0.0),
    Column("written", String, nullable=False),
)

nights = Table(
    "nights",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("night", String, nullable=False),
    Column("state", String, nullable=False),  # running | finished | stopped | failed
    Column("started", String, nullable=False),
    Column("ended", String),
    Column("message", Text, default=""),
)

library = Table(
    "library",
    metadata,
    Column("path", String, primary_key=True),
    Column("kind", String, nullable=False),  # BIAS | DARK
    Column("temperature", Float, nullable=False),
    Column("exptime", Float, nullable=False),
    Column("binx", Integer, nullable=False),
    Column("biny", Integer, nullable=False),
    Column("created", String, nullable=False),
)

handoffs = Table(
    "handoffs",
    metadata,
    Column("observation_id", String, primary_key=True),
    Column("night", String, nullable=False, default=""),
    Column("needs", Text, nullable=False, default="[]"),  # JSON: every library need of the observation
    Column("unmet", Text, nullable=False, default="[]"),  # JSON: the needs the library could not serve at the last hand-off
    Column("handed", String, nullable=False),  # time of the last hand-off
    Column("count", Integer, nullable=False, default=1),  # hand-offs so far
)


def _iso(value: datetime | None = None) -> str:
    return (value or now()).isoformat()


class Journal:
    """The journal database (``<data root>/state/sequencer.sqlite`` by default)."""

    @contextmanager
    def _write(self):
        """A write transaction; a disk that is full or not writable is a StorageError (the night
        parks, alarms and resumes once it can write again), not a crash of the night."""
        try:
            with self._lock, self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            text = str(exc.orig).lower()
            if not any(word in text for word in ("full", "disk", "readonly", "read-only", "unable to open")):
                raise
            raise StorageError(f"the journal {self.path} cannot be written ({exc.orig}): disk full or not writable") from None

    def __init__(self, path: Path | str):
        self.path = Path(path)
        # WAL + synchronous=FULL: a committed row survives the process being killed.
        self.engine = durable_sqlite(self.path)
        metadata.create_all(self.engine)
        self._lock = threading.Lock()

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ observations

    def begin_observation(self, observation_id: str, file_dict: dict, *, file_id: str, file_hash: str, target: str,
                          night: str, folder: Path, source: str = "run") -> None:
        """Record that an observation starts (or starts again after a crash)."""
        with self._write() as conn:
            existing = conn.execute(select(observations.c.attempts).where(observations.c.observation_id == observation_id)).first()
            if existing is not None:
                conn.execute(update(observations).where(observations.c.observation_id == observation_id).values(
                    state="running", ended=None, attempts=existing[0] + 1, message="resumed", reported=0))
                return
            conn.execute(insert(observations).values(
                observation_id=observation_id, file_id=file_id, file_hash=file_hash, file_json=json.dumps(file_dict),
                target=target, source=source, state="running", step="", step_index=0, night=night,
                folder=str(folder), started=_iso(), message=""))

    def set_step(self, observation_id: str, step: str, index: int) -> None:
        with self._write() as conn:
            conn.execute(update(observations).where(observations.c.observation_id == observation_id).values(step=step, step_index=index))

    def finish_observation(self, observation_id: str, state: str, message: str = "") -> None:
        """Record the outcome: completed, failed or interrupted."""
        with self._write() as conn:
            conn.execute(update(observations).where(observations.c.observation_id == observation_id).values(
                state=state, ended=_iso(), message=message))

    def mark_reported(self, observation_id: str) -> None:
        with self._write() as conn:
            conn.execute(update(observations).where(observations.c.observation_id == observation_id).values(reported=1))

    def observation(self, observation_id: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(observations).where(observations.c.observation_id == observation_id)).mappings().first()
        return dict(row) if row else None

    def unfinished(self) -> list[dict]:
        """Return observations still marked running (the process died during them)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(observations).where(observations.c.state == "running")).mappings().all()
        return [dict(r) for r in rows]

    def unreported(self) -> list[dict]:
        """Return finished scheduler observations whose outcome has not reached the scheduler yet."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(observations).where(observations.c.state != "running", observations.c.reported == 0,
                                                           observations.c.source == "scheduler")).mappings().all()
        return [dict(r) for r in rows]

    def history(self, limit: int = 200, night: str | None = None) -> list[dict]:
        """Return observations, newest first, with their frames."""
        q = select(observations).order_by(observations.c.started.desc()).limit(limit)
        if night:
            q = q.where(observations.c.night == night)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(q).mappings().all()]
        for row in rows:
            row.pop("file_json", None)
            row["frames"] = [f["path"] for f in self.frames(row["observation_id"])]
        return rows

    # ------------------------------------------------------------------ frames

    def add_frame(self, path: Path, observation_id: str, imagetyp: str, *, step: str = "", step_index: int = 0,
                  number: int = 1, exptime: float = 0.0) -> bool:
        """Register a frame written to disk; return False if it was already registered."""
        with self._write() as conn:
            if conn.execute(select(frames.c.path).where(frames.c.path == str(path))).first():
                return False
            conn.execute(insert(frames).values(path=str(path), observation_id=observation_id, imagetyp=imagetyp, step=step,
                                               step_index=step_index, number=number, exptime=exptime, written=_iso()))
            return True

    def frames(self, observation_id: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(frames).where(frames.c.observation_id == observation_id).order_by(frames.c.path)).mappings().all()
        return [dict(r) for r in rows]

    # ------------------------------------------------------------------ nights

    def begin_night(self, night: str) -> int:
        with self._write() as conn:
            result = conn.execute(insert(nights).values(night=night, state="running", started=_iso()))
            return int(result.inserted_primary_key[0])

    def end_night(self, night_id: int, state: str, message: str = "") -> None:
        with self._write() as conn:
            conn.execute(update(nights).where(nights.c.id == night_id).values(state=state, ended=_iso(), message=message))

    def running_night(self) -> dict | None:
        """Return the night marked running (the process died during it), if any."""
        with self.engine.connect() as conn:
            row = conn.execute(select(nights).where(nights.c.state == "running").order_by(nights.c.id.desc())).mappings().first()
        return dict(row) if row else None

    # ------------------------------------------------------------------ bias/dark library

    def add_library_frame(self, path: Path, kind: str, temperature: float, exptime: float, binning: tuple[int, int]) -> None:
        with self._write() as conn:
            if conn.execute(select(library.c.path).where(library.c.path == str(path))).first():
                return
            conn.execute(insert(library).values(path=str(path), kind=kind, temperature=float(temperature), exptime=float(exptime),
                                                binx=int(binning[0]), biny=int(binning[1]), created=_iso()))

    def library_frames(self, kind: str | None = None) -> list[dict[str, Any]]:
        q = select(library)
        if kind:
            q = q.where(library.c.kind == kind)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings().all()]

    # ------------------------------------------------------------------ hand-offs to the reduction

    def record_handoff(self, observation_id: str, night: str, needs: list[dict], unmet: list[dict]) -> None:
        """Record that an observation was handed to the reduction, with the library needs it had and those unmet."""
        values = {"night": night, "needs": json.dumps(needs), "unmet": json.dumps(unmet), "handed": _iso()}
        with self._write() as conn:
            existing = conn.execute(select(handoffs.c.count).where(handoffs.c.observation_id == observation_id)).first()
            if existing is None:
                conn.execute(insert(handoffs).values(observation_id=observation_id, count=1, **values))
            else:
                conn.execute(update(handoffs).where(handoffs.c.observation_id == observation_id).values(count=existing[0] + 1, **values))

    def handoff(self, observation_id: str) -> dict | None:
        """Return one hand-off (needs and unmet decoded), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(handoffs).where(handoffs.c.observation_id == observation_id)).mappings().first()
        return _decoded(row) if row else None

    def unmet_handoffs(self, since: datetime | None = None) -> list[dict]:
        """Return hand-offs still lacking a library entry (handed at or after ``since``), oldest first."""
        q = select(handoffs).where(handoffs.c.unmet != "[]").order_by(handoffs.c.handed)
        if since is not None:
            q = q.where(handoffs.c.handed >= _iso(since))
        with self.engine.connect() as conn:
            return [_decoded(r) for r in conn.execute(q).mappings().all()]


def _decoded(row) -> dict:
    out = dict(row)
    out["needs"], out["unmet"] = json.loads(out["needs"] or "[]"), json.loads(out["unmet"] or "[]")
    return out
