"""Long actions as jobs: started in a thread, polled over REST, abortable.

A REST request that starts something long (open the roof, run an observation,
reduce a night) creates a :class:`Job` and returns 202 at once; the client polls
``/jobs/<id>``. The job function receives the job and should call
``job.check_abort()`` and ``job.progress(...)`` as it goes.
"""

from __future__ import annotations

import builtins
import itertools
import logging
import threading
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from rosace_core.clock import now
from rosace_core.errors import Aborted, NotFoundError, RosaceError

log = logging.getLogger(__name__)

STATES = ("queued", "running", "succeeded", "failed", "aborted")


@dataclass
class Job:
    """One long action and its state."""

    kind: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    state: str = "queued"
    message: str = ""
    fraction: float = 0.0
    result: Any = None
    error: str | None = None
    created: str = field(default_factory=lambda: now().isoformat())
    finished: str | None = None
    params: dict = field(default_factory=dict)
    _abort: threading.Event = field(default_factory=threading.Event, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> bool:
        return self.state in ("succeeded", "failed", "aborted")

    def progress(self, fraction: float | None = None, message: str | None = None) -> None:
        """Record progress (0-1) and a short human message."""
        if fraction is not None:
            self.fraction = max(0.0, min(1.0, float(fraction)))
        if message is not None:
            self.message = message

    def abort(self) -> None:
        """Ask the job to stop at its next check."""
        self._abort.set()

    @property
    def abort_requested(self) -> bool:
        return self._abort.is_set()

    def check_abort(self) -> None:
        """Raise Aborted if an abort was requested."""
        if self._abort.is_set():
            raise Aborted(f"job {self.id} aborted")

    def wait(self, timeout: float | None = None) -> bool:
        """Wait (wall seconds) for the job to finish; return True if it did."""
        return self._done.wait(timeout)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "message": self.message,
            "fraction": self.fraction,
            "result": self.result,
            "error": self.error,
            "created": self.created,
            "finished": self.finished,
            "params": self.params,
        }


class JobRunner:
    """Runs jobs in daemon threads and keeps the last ``keep`` of them."""

    def __init__(self, keep: int = 200):
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._keep = keep
        self._counter = itertools.count()

    def submit(self, kind: str, fn: Callable[[Job], Any], params: dict | None = None) -> Job:
        """Start ``fn(job)`` in a thread; its return value becomes ``job.result``."""
        job = Job(kind=kind, params=params or {})
        with self._lock:
            self._jobs[job.id] = job
            if len(self._jobs) > self._keep:
                for old in [j for j in self._jobs.values() if j.done][: len(self._jobs) - self._keep]:
                    self._jobs.pop(old.id, None)
        thread = threading.Thread(target=self._run, args=(job, fn), name=f"job-{kind}-{job.id}", daemon=True)
        thread.start()
        return job

    def _run(self, job: Job, fn: Callable[[Job], Any]) -> None:
        job.state = "running"
        try:
            job.result = fn(job)
            job.state = "succeeded"
            job.fraction = 1.0
        except Aborted as exc:
            job.state = "aborted"
            job.error = str(exc)
        except RosaceError as exc:
            job.state = "failed"
            job.error = str(exc)
            log.warning("job %s (%s) failed: %s", job.id, job.kind, exc)
        except Exception as exc:  # a bug: keep the trace in the log, a clean state in the job
            job.state = "failed"
            job.error = f"internal error: {exc!r}"
            log.error("job %s (%s) crashed:\n%s", job.id, job.kind, traceback.format_exc())
        finally:
            job.finished = now().isoformat()
            job._done.set()

    def get(self, job_id: str) -> Job:
        """Return a job; raise NotFoundError for an unknown id."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id!r}")
        return job

    def list(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def running(self, kind: str | None = None) -> builtins.list[Job]:  # list: the method above
        return [j for j in self.list() if not j.done and (kind is None or j.kind == kind)]
