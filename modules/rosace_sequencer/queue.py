"""Where the robotic night gets its next observation and reports outcomes.

:class:`SchedulerQueue` asks the scheduler module over REST (``POST /next``,
``POST /outcomes``). :class:`FileQueue` runs a fixed list of Observing Files in
order, once each: the sequencer alone, without a scheduler.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from rosace_core.clock import now
from rosace_core.errors import RosaceError
from rosace_core.observing_file import ObservingFile

log = logging.getLogger(__name__)


@dataclass
class Planned:
    """One observation to run now."""

    observation_id: str
    file: ObservingFile
    source: str = "scheduler"
    reference: bool = False
    info: dict = field(default_factory=dict)


@dataclass
class Nothing:
    """Nothing to observe now: why, and when to ask again (None: not tonight)."""

    reason: str
    retry_at: datetime | None = None


class Queue(Protocol):
    def next(self, pointing: dict | None = None, safe: bool = True) -> Planned | Nothing:
        """Return the observation to run now, or why there is none."""

    def report(self, outcome: dict) -> None:
        """Tell the queue how an observation ended (outcome document of the contracts)."""


def new_observation_id(file_id: str) -> str:
    """Return a fresh observation id: UTC time, Observing File id and a short random suffix."""
    return f"{now().strftime('%Y%m%dT%H%M%S')}-{file_id}-{uuid.uuid4().hex[:4]}"


def run_frames(of: ObservingFile, frames) -> ObservingFile:
    """Return the file to run when the scheduler asks for ``frames`` science frames (a part of a split file).

    No number (an older scheduler), or the file's own count: the whole file, as before. Fewer:
    the same file with that many science frames; acquisition and calibrations run as written,
    so each part is calibrated on its own.
    """
    count = of.sequence.science.count
    if frames is None or isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames < count:
        if frames is not None and frames != count:
            log.warning("scheduler asked %r science frames of %s (it has %d): running the whole file", frames, of.id, count)
        return of
    science = of.sequence.science.model_copy(update={"count": frames})
    return of.model_copy(update={"sequence": of.sequence.model_copy(update={"science": science})})


class SchedulerQueue:
    """The scheduler module over REST."""

    def __init__(self, client):
        self.client = client

    def next(self, pointing: dict | None = None, safe: bool = True) -> Planned | Nothing:
        body: dict = {"time": now().isoformat(), "conditions": {"safe": safe}}
        if pointing:
            body["pointing"] = pointing
        answer = self.client.post("/next", body) or {}
        obs = answer.get("observation")
        if not obs:
            retry = answer.get("retry_at")
            return Nothing(answer.get("reason") or "nothing observable", datetime.fromisoformat(retry.replace("Z", "+00:00")) if retry else None)
        of = run_frames(ObservingFile.model_validate(obs["file"]), obs.get("science_frames"))
        # ``reference`` in the scheduler's answer is the reference star it *suggests* for
        # this science file (docs/scheduler.md), not a mark that this observation is one:
        # that comes from the file itself (observation._is_reference). Reading it as a mark
        # wrote ROSREF = T on every science frame of a file with `reference_star: auto`, and
        # the reduction then treated Be stars as flux standards.
        return Planned(str(obs.get("observation_id") or new_observation_id(of.id)), of, "scheduler", False, obs)

    def report(self, outcome: dict) -> None:
        self.client.post("/outcomes", outcome)


class FileQueue:
    """A fixed list of Observing Files, run in order, once each."""

    def __init__(self, files: list[ObservingFile]):
        self.files = list(files)
        self.reports: list[dict] = []

    def next(self, pointing: dict | None = None, safe: bool = True) -> Planned | Nothing:
        if not self.files:
            return Nothing("no more files", None)
        of = self.files.pop(0)
        return Planned(new_observation_id(of.id), of, "run")

    def report(self, outcome: dict) -> None:
        self.reports.append(outcome)


def report_safely(queue, outcome: dict) -> bool:
    """Report an outcome; log (never raise) when the queue cannot be reached."""
    try:
        queue.report(outcome)
        return True
    except RosaceError as exc:
        log.warning("could not report %s to the scheduler: %s", outcome.get("observation_id"), exc)
        return False
