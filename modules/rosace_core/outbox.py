"""A durable outbox: hand-offs between modules that survive a crash of either side.

Every hand-off (sequencer -> reduction, reduction -> share, share -> upstream
share server) is written to an SQLite table *before* it is sent, sent again
with exponential back-off until the receiver acknowledges it, and sent again
after a restart of the sender (the table is the outbox). Receivers are
idempotent (docs/dev/contracts.md), so a hand-off sent twice does no harm.

An entry has a unique id (a fresh uuid, never reused) and a ``key`` saying what
it carries (e.g. observation id + content hash): putting an entry whose key is
already waiting returns the waiting entry, and one whose key was already
acknowledged is not sent again, so a re-hand-off of the same content is a no-op.

Sending is two-phase when the receiver works in the background: ``send``
returns :class:`Sent` with a token (a job id) and the outbox later calls
``check(payload, token)`` until the receiver says :class:`Acked`; a receiver
that lost the work (restarted: the job is unknown) answers :class:`Lost` and
the entry is sent again. Written here because no library in the stack offers a
small embedded outbox (Celery/RQ need a broker process the observatory PC does
not run); it is SQLAlchemy Core on the module's own SQLite file.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, create_engine, delete, event, func, insert, select, update

log = logging.getLogger(__name__)

#: Entry states: waiting to be sent (or sent again), sent and awaiting acknowledgement,
#: acknowledged, given up (after ``max_attempts``; kept, visible in the status).
STATES = ("pending", "sent", "acked", "failed", "superseded")


@dataclass
class Acked:
    """The receiver has the hand-off for good; ``result`` is kept with the entry."""

    result: Any = None


@dataclass
class Sent:
    """The receiver accepted the hand-off and works on it; poll with ``token``."""

    token: str


@dataclass
class Lost:
    """The receiver no longer knows the hand-off (it restarted): send it again."""

    reason: str = ""


class Refused(Exception):
    """A permanent refusal (bad request): retrying cannot help; the entry is marked failed."""


def durable_sqlite(path: Path):
    """An SQLAlchemy engine on an SQLite file whose committed rows survive the process being killed.

    WAL + ``synchronous=FULL``; usable from several threads (30 s busy timeout).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path.as_posix()}", connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    return engine


class Outbox:
    """One outbox (one destination) in an SQLite file; safe to use from several threads.

    ``send(payload) -> Acked | Sent`` and ``check(payload, token) -> Acked | Sent | Lost``
    may raise any exception for "not now" (the receiver is down): the entry is
    retried after ``backoff * 2**attempts`` seconds (at most ``max_backoff``,
    with a little jitter), :class:`Refused` for "never".
    """

    def __init__(self, path: Path | str, name: str, send: Callable[[dict], Acked | Sent], *,
                 check: Callable[[dict, str], Acked | Sent | Lost] | None = None,
                 on_ack: Callable[[dict, Any], None] | None = None,
                 backoff: float = 2.0, max_backoff: float = 30.0, check_every: float = 1.0, max_attempts: int = 0,
                 keep_acked: int = 2000):
        self.path = Path(path)
        self.name = name
        self._send, self._check, self._on_ack = send, check, on_ack
        self.backoff, self.max_backoff, self.check_every = float(backoff), float(max_backoff), float(check_every)
        self.max_attempts, self.keep_acked = int(max_attempts), int(keep_acked)
        self.engine = durable_sqlite(self.path)
        meta = MetaData()
        self.table = Table(
            f"outbox_{name}", meta,
            Column("id", String, primary_key=True),  # a fresh uuid per entry
            Column("key", String, nullable=False, index=True),  # what it carries (dedup)
            Column("payload", Text, nullable=False),
            Column("state", String, nullable=False, index=True),
            Column("token", String),  # the receiver's job id while "sent"
            Column("attempts", Integer, nullable=False, default=0),
            Column("next_try", Float, nullable=False, default=0.0),  # epoch seconds
            Column("created", Float, nullable=False),
            Column("acked", Float),
            Column("error", Text, default=""),
            Column("result", Text, default=""),
        )
        meta.create_all(self.engine)
        self._lock = threading.Lock()
        self._busy: set[str] = set()  # entries being sent/checked right now (in this process)
        self._released = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ entries

    def put(self, key: str, payload: dict, *, supersedes: str | None = None) -> str | None:
        """Persist a hand-off; return its entry id, or None when ``key`` was already acknowledged.

        A key already waiting (pending or sent) returns that entry's id (its
        payload is refreshed if it is still pending). ``supersedes``: a key
        prefix (e.g. ``"<observation id>:"``); entries with it still waiting
        are marked superseded and never sent again, so an older hand-off of the
        same observation cannot arrive after this one and undo it.
        """
        t = self.table
        text = json.dumps(payload, sort_keys=True)
        with self._lock, self.engine.begin() as conn:
            if supersedes:
                conn.execute(update(t).where(t.c.key.startswith(supersedes, autoescape=True), t.c.key != key,
                                             t.c.state.in_(("pending", "sent"))).values(state="superseded", error=f"superseded by {key}"))
            rows = conn.execute(select(t.c.id, t.c.state).where(t.c.key == key)).all()
            if any(state == "acked" for _, state in rows):
                return None
            waiting = [i for i, state in rows if state in ("pending", "sent")]
            if waiting:
                conn.execute(update(t).where(t.c.id == waiting[0], t.c.state == "pending").values(payload=text))
                return waiting[0]
            entry_id = uuid.uuid4().hex
            conn.execute(insert(t).values(id=entry_id, key=key, payload=text, state="pending", attempts=0, next_try=0.0,
                                          created=time.time(), error="", result=""))
        self._wake.set()
        return entry_id

    def get(self, entry_id: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(self.table).where(self.table.c.id == entry_id)).mappings().first()
        return _decoded(row) if row else None

    def entries(self, state: str | None = None, limit: int = 200) -> list[dict]:
        """Entries, oldest first (all states unless ``state``)."""
        q = select(self.table).order_by(self.table.c.created).limit(limit)
        if state:
            q = q.where(self.table.c.state == state)
        with self.engine.connect() as conn:
            return [_decoded(r) for r in conn.execute(q).mappings().all()]

    def state_of(self, key: str) -> str | None:
        """The state of the latest entry carrying ``key`` ("acked" wins), or None if there is none."""
        t = self.table
        with self.engine.connect() as conn:
            states = [r[0] for r in conn.execute(select(t.c.state).where(t.c.key == key).order_by(t.c.created)).all()]
        if "acked" in states:
            return "acked"
        return states[-1] if states else None

    def wait_drained(self, timeout: float = 60.0, poll: float = 0.1) -> bool:
        """Wait (wall seconds) until nothing is waiting; return False on timeout (for tests and benchmarks)."""
        end = time.monotonic() + timeout
        while self.waiting():
            if time.monotonic() > end:
                return False
            self._wake.set()
            time.sleep(poll)
        return True

    def acked_keys(self) -> set[str]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(select(self.table.c.key).where(self.table.c.state == "acked")).all()}

    def counts(self) -> dict:
        """``{waiting, pending, sent, acked, failed, oldest_waiting_s, last_error}`` for status documents."""
        t = self.table
        with self.engine.connect() as conn:
            by_state = dict(conn.execute(select(t.c.state, func.count()).group_by(t.c.state)).all())
            oldest = conn.execute(select(func.min(t.c.created)).where(t.c.state.in_(("pending", "sent")))).scalar()
            err = conn.execute(select(t.c.error).where(t.c.state.in_(("pending", "sent", "failed")), t.c.error != "")
                               .order_by(t.c.created.desc()).limit(1)).scalar()
        out: dict[str, Any] = {s: int(by_state.get(s, 0)) for s in STATES}
        out["waiting"] = out["pending"] + out["sent"]
        out["oldest_waiting_s"] = round(time.time() - oldest, 1) if oldest else None
        out["last_error"] = err or None
        return out

    def waiting(self) -> int:
        return self.counts()["waiting"]

    # ------------------------------------------------------------------ sending

    def _claim(self, entry_id: str, wait: bool = False) -> dict | None:
        with self._released:
            while entry_id in self._busy:
                if not wait:
                    return None
                self._released.wait(1.0)
            self._busy.add(entry_id)
        row = self.get(entry_id)
        if row is None or row["state"] not in ("pending", "sent"):
            self._release(entry_id)
            return None
        return row

    def _release(self, entry_id: str) -> None:
        with self._released:
            self._busy.discard(entry_id)
            self._released.notify_all()

    def _set(self, entry_id: str, **values) -> None:
        """Update a waiting entry (one superseded meanwhile stays superseded)."""
        t = self.table
        with self._lock, self.engine.begin() as conn:
            conn.execute(update(t).where(t.c.id == entry_id, t.c.state.in_(("pending", "sent"))).values(**values))

    def _delay(self, attempts: int) -> float:
        return min(self.max_backoff, self.backoff * 2 ** max(0, attempts - 1)) * random.uniform(0.9, 1.1)

    def process(self, entry_id: str, wait: bool = False) -> str | None:
        """Send (or check) one entry now; return its new state.

        If another thread is sending it, return None at once, or with ``wait``
        wait for that thread and return the state it left (without sending again).
        """
        with self._released:
            other = entry_id in self._busy
        if other and wait:
            self._claim(entry_id, wait=True)
            self._release(entry_id)
            return (self.get(entry_id) or {}).get("state")
        row = self._claim(entry_id)
        if row is None:
            return None
        try:
            return self._process(row)
        finally:
            self._release(entry_id)

    def _process(self, row: dict) -> str:
        eid, payload = row["id"], row["payload"]
        try:
            if row["state"] == "sent" and self._check is not None:
                answer = self._check(payload, row["token"])
                if isinstance(answer, Lost):  # the receiver restarted: its job is unknown
                    log.warning("outbox %s: %s lost by the receiver (%s): sending it again", self.name, row["key"], answer.reason)
                    answer = self._send(payload)
                    row = {**row, "state": "pending"}
            else:
                answer = self._send(payload)
        except Refused as exc:
            log.warning("outbox %s: %s refused for good: %s", self.name, row["key"], exc)
            self._set(eid, state="failed", error=str(exc)[:500], attempts=row["attempts"] + 1)
            return "failed"
        except Exception as exc:  # the receiver is down or answered an error: try again later
            attempts = row["attempts"] + 1
            if self.max_attempts and attempts >= self.max_attempts:
                log.warning("outbox %s: %s given up after %d attempts: %s", self.name, row["key"], attempts, exc)
                self._set(eid, state="failed", error=str(exc)[:500], attempts=attempts)
                return "failed"
            delay = self._delay(attempts)
            if attempts == 1 or attempts % 10 == 0:
                log.warning("outbox %s: %s not handed yet (attempt %d, next in %.0f s): %s", self.name, row["key"], attempts, delay, exc)
            self._set(eid, error=str(exc)[:500], attempts=attempts, next_try=time.time() + delay)
            return row["state"]
        if isinstance(answer, Sent):
            first = row["state"] == "pending"  # a check that still runs, or a resend already counted, is no new attempt
            self._set(eid, state="sent", token=answer.token, error="", next_try=time.time() + self.check_every,
                      attempts=row["attempts"] + (1 if first else 0))
            return "sent"
        result = answer.result if isinstance(answer, Acked) else None
        if self._on_ack is not None:
            try:
                self._on_ack(payload, result)
            except Exception:  # recording the acknowledgement must not resend a delivered hand-off
                log.error("outbox %s: acknowledgement handler failed:\n%s", self.name, traceback.format_exc())
        self._set(eid, state="acked", acked=time.time(), error="", result=json.dumps(result, default=str)[:4000])
        self._receiver_back()
        self._trim()
        return "acked"

    def _receiver_back(self) -> None:
        """The receiver answers again: what waits out its back-off goes now, not up to ``max_backoff`` later."""
        t = self.table
        backing_off = (t.c.state == "pending", t.c.next_try > time.time(), t.c.error != "")
        with self.engine.connect() as conn:
            if conn.execute(select(t.c.id).where(*backing_off).limit(1)).first() is None:
                return
        with self._lock, self.engine.begin() as conn:
            woken = conn.execute(update(t).where(*backing_off).values(next_try=0.0)).rowcount
        if woken:
            log.info("outbox %s: the receiver answers again; sending the %d waiting hand-off(s) now", self.name, woken)
            self._wake.set()

    def _trim(self) -> None:
        t = self.table
        with self._lock, self.engine.begin() as conn:
            n = conn.execute(select(func.count()).where(t.c.state == "acked")).scalar() or 0
            if n > self.keep_acked:
                old = select(t.c.id).where(t.c.state == "acked").order_by(t.c.acked).limit(n - self.keep_acked)
                conn.execute(delete(t).where(t.c.id.in_(old)))

    def due(self) -> list[str]:
        """Ids of the waiting entries whose time has come, oldest first."""
        t = self.table
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(t.c.id).where(t.c.state.in_(("pending", "sent")), t.c.next_try <= time.time())
                                                .order_by(t.c.created)).all()]

    def drain_once(self) -> int:
        """Process every due entry once; return how many are still waiting.

        When one cannot be sent (the receiver is down), the others due follow
        its back-off instead of each trying too: one probe per back-off
        interval, and when it gets through they all go (``_receiver_back``).
        """
        due = self.due()
        for i, entry_id in enumerate(due):
            if self._stop.is_set():
                break
            before = self.get(entry_id) or {}
            self.process(entry_id)
            after = self.get(entry_id) or {}
            if after.get("state") in ("pending", "sent") and after.get("attempts", 0) > before.get("attempts", 0) and after.get("error"):
                rest = due[i + 1:]
                if rest:
                    t = self.table
                    with self._lock, self.engine.begin() as conn:
                        conn.execute(update(t).where(t.c.id.in_(rest), t.c.state.in_(("pending", "sent")))
                                     .values(next_try=after["next_try"]))
                break
        return self.waiting()

    def retry_now(self) -> None:
        """Make every waiting entry due at once (the receiver is known to be back)."""
        t = self.table
        with self._lock, self.engine.begin() as conn:
            conn.execute(update(t).where(t.c.state.in_(("pending", "sent"))).values(next_try=0.0))
        self._wake.set()

    # ------------------------------------------------------------------ background worker

    def start(self) -> "Outbox":
        """Drain in a daemon thread: at start (what a crash left), on each put, and when retries fall due."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"outbox-{self.name}", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.drain_once()
                t = self.table
                with self.engine.connect() as conn:
                    nxt = conn.execute(select(func.min(t.c.next_try)).where(t.c.state.in_(("pending", "sent")))).scalar()
            except Exception:  # the database is locked or the disk full: keep the worker alive
                log.error("outbox %s: drain failed:\n%s", self.name, traceback.format_exc())
                nxt = time.time() + 5.0
            wait = 30.0 if nxt is None else min(30.0, max(0.05, nxt - time.time()))
            self._wake.wait(wait)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def close(self) -> None:
        self.stop()
        self.engine.dispose()


def waiting_text(counts: dict | None, receiver: str) -> str:
    """One line for a status bar: "3 waiting for reduction (oldest 5 min; last error: ...)", "" when none wait."""
    if not counts:
        return ""
    parts = []
    if counts.get("waiting"):
        text = f"{counts['waiting']} waiting for {receiver}"
        age = counts.get("oldest_waiting_s")
        if age and age >= 60:
            text += f" (oldest {age / 60:.0f} min)"
        if counts.get("last_error"):
            text += f"; last error: {str(counts['last_error'])[:120]}"
        parts.append(text)
    if counts.get("failed"):
        parts.append(f"{counts['failed']} refused by {receiver}")
    return "; ".join(parts)


def _decoded(row) -> dict:
    out = dict(row)
    out["payload"] = json.loads(out["payload"])
    return out


def content_key(*parts: str, files: list[str] | tuple[str, ...] = ()) -> str:
    """A key for :meth:`Outbox.put`: the parts plus the SHA-256 of the files' contents (missing files hash as their name)."""
    import hashlib

    h = hashlib.sha256()
    for f in files:
        h.update(str(f).encode())
        try:
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError:
            pass
    return ":".join([*parts, h.hexdigest()[:16]] if files else parts)
